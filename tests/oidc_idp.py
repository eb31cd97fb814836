"""A stand-in identity provider for tests: a real HTTP server on 127.0.0.1 that
publishes OIDC discovery and a JWKS, with keys generated here and tokens signed
here (PyJWT), so pim/oidc.py is exercised over the network as in production."""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "pim-test"
DROP = object()  # a claim override that removes the claim


@functools.lru_cache(maxsize=None)
def private_key(name: str):
    """One key per name for the whole run (RSA generation is the slow part)."""
    return ec.generate_private_key(ec.SECP256R1()) if name.startswith("ec") else rsa.generate_private_key(65537, 2048)


def public_jwk(name: str, kid: str | None = None) -> dict:
    key = private_key(name).public_key()
    jwk = (ECAlgorithm if name.startswith("ec") else RSAAlgorithm).to_jwk(key, as_dict=True)
    return {**jwk, "kid": kid or name, "use": "sig"}


def b64(data: bytes | dict) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class FakeIdp:
    def __init__(self) -> None:
        self.jwks: list[dict] = []
        self.hits: Counter[str] = Counter()
        self.down = False  # True: every answer is a 503
        self.failures = 0  # so many next answers are 503s (an outage that passes)
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                idp.hits[self.path] += 1
                documents = {
                    "/.well-known/openid-configuration": {"issuer": idp.issuer, "jwks_uri": idp.jwks_url},
                    "/jwks": {"keys": idp.jwks},
                }
                failing = idp.down or idp.failures > 0
                idp.failures = max(idp.failures - 1, 0)
                if failing or self.path not in documents:
                    self.send_response(503 if failing else 404)
                    self.end_headers()
                    return
                body = json.dumps(documents[self.path]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    def __enter__(self) -> "FakeIdp":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def publish(self, *names: str) -> None:
        self.jwks.extend(public_jwk(name) for name in names)

    def claims(self, sub: str = "alice", **overrides) -> dict:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
            "auth_time": now - 60,
            "amr": ["pwd", "mfa"],
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not DROP}

    def token(
        self, sub: str = "alice", *, key: str = "rsa-1", kid: str | None = None, alg: str | None = None, **overrides
    ) -> str:
        """A token signed with the named key (kid: the key's name unless given)."""
        alg = alg or ("ES256" if key.startswith("ec") else "RS256")
        return jwt.encode(self.claims(sub, **overrides), private_key(key), algorithm=alg, headers={"kid": kid or key})
