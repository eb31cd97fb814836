"""The portal's session: one cookie, encrypted and authenticated (AES-GCM), holding
who signed in and their tokens. Nothing is kept on the server, so any replica of
the API serves any session.

The cookie is HttpOnly and SameSite=Lax, and Secure (named `__Host-pim-session`)
unless the page is plain http on a loopback address (`pim dev`). Its key is
PIM_PORTAL_SESSION_KEY, `KEY_ID:BASE64KEY[,...]` (the first one seals, all open:
rotation); `pim dev` keeps its own in .pim/portal-session.key.

Handlers read and change `request.session` (a dict); the middleware writes the
cookie back when it changed, and deletes it when the dict is emptied."""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
import zlib
from collections.abc import Sequence
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pim.identity.issuer.config import is_loopback
from pim.runtime.codec import parse_keys
from pim.runtime.settings import PimSettings

SETTING = "PIM_PORTAL_SESSION_KEY"
DEV_SESSION_KEY_FILE = Path(".pim") / "portal-session.key"
COOKIE = "pim-session"
SECURE_COOKIE = "__Host-pim-session"  # __Host-: Secure, Path=/, no Domain: no subdomain can set it
NONCE = 12
AAD = b"pim-portal-session-v1"
BORN = "born"  # when the session began (seconds since the epoch)
# Paths that are not the portal's: the API (bearer tokens only, never a cookie), its
# probes and document, and the development issuer, which keeps no session.
NOT_PORTAL = ("/v1.0/", "/api/", "/healthz", "/readyz", "/openapi.json", "/dev-issuer/", "/static/")
MAX_COOKIE = 4000  # browsers keep 4096 bytes per cookie, name and attributes included


def is_portal_path(path: str) -> bool:
    return not (path.startswith(NOT_PORTAL) or path in ("/api", "/v1.0", "/dev-issuer"))


class SessionCodec:
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError(f"{SETTING}: at least one key is needed")
        self._seal_id = keys[0][0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    @classmethod
    def from_setting(cls, text: str) -> SessionCodec:
        return cls(parse_keys(text, SETTING))

    def seal(self, data: dict[str, Any]) -> str:
        nonce = os.urandom(NONCE)
        packed = zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 9)
        sealed = self._ciphers[self._seal_id].encrypt(nonce, packed, AAD)
        return f"{self._seal_id}.{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, text: str) -> dict[str, Any] | None:
        """The session, or None for a cookie this key list did not seal (or altered)."""
        key_id, _, encoded = text.partition(".")
        cipher = self._ciphers.get(key_id)
        if cipher is None or not encoded or len(text) > MAX_COOKIE:
            return None
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            data = json.loads(zlib.decompress(cipher.decrypt(raw[:NONCE], raw[NONCE:], AAD)))
        except (binascii.Error, ValueError, InvalidTag, zlib.error):
            return None
        return data if isinstance(data, dict) else None

    def __repr__(self) -> str:
        return f"SessionCodec(keys={sorted(self._ciphers)})"


def configured_session_codec(settings: PimSettings, dev_file: Path | None = None) -> SessionCodec | None:
    """From PIM_PORTAL_SESSION_KEY, else `dev_file` when it exists, else None."""
    if settings.portal_session_key is not None:
        return SessionCodec.from_setting(settings.portal_session_key.get_secret_value())
    if dev_file is not None and dev_file.exists():
        return SessionCodec.from_setting(dev_file.read_text().strip())
    return None


def ensure_dev_session_key(path: Path = DEV_SESSION_KEY_FILE) -> str:
    """`pim dev`'s session key, created once with mode 0600; returned as the setting's text."""
    from pim.identity.proofs import write_private

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, f"dev:{base64.b64encode(os.urandom(32)).decode()}\n")
    return path.read_text().strip()


def new_session_key() -> str:
    """A fresh setting's value (`pim keys new`)."""
    return f"k1:{base64.b64encode(os.urandom(32)).decode()}"


def secure_request(scope: Scope) -> bool:
    """Whether the cookie must be Secure: anything but plain http on loopback."""
    if scope.get("scheme") == "https":
        return True
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:
        return True
    return not is_loopback(name)


class SessionMiddleware:
    """Loads `scope["session"]` from the cookie for the portal's paths, and writes it
    back on the response when a handler changed it."""

    def __init__(self, app: ASGIApp, codec: SessionCodec, lifetime: float) -> None:
        self.app, self.codec, self.lifetime = app, codec, lifetime

    def _read(self, scope: Scope, name: str) -> dict[str, Any]:
        cookies = SimpleCookie()
        try:
            cookies.load(dict(scope.get("headers") or []).get(b"cookie", b"").decode("latin-1"))
        except Exception:  # noqa: BLE001 - a malformed Cookie header is no session
            return {}
        morsel = cookies.get(name)
        data = self.codec.open(morsel.value) if morsel is not None else None
        if not data or not isinstance(data.get(BORN), (int, float)) or time.time() - data[BORN] > self.lifetime:
            return {}
        return data

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_portal_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        secure = secure_request(scope)
        name = SECURE_COOKIE if secure else COOKIE
        session = self._read(scope, name)
        scope["session"] = session
        before = json.dumps(session, sort_keys=True)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                after = scope["session"]
                if json.dumps(after, sort_keys=True) != before:
                    headers = MutableHeaders(scope=message)
                    headers.append("Set-Cookie", self._cookie(name, after, secure))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _cookie(self, name: str, session: dict[str, Any], secure: bool) -> str:
        attributes = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        if not session:
            return f"{name}=; Max-Age=0{attributes}"
        session.setdefault(BORN, int(time.time()))
        value = self.codec.seal(session)
        if len(value) > MAX_COOKIE - 100:
            # Too big for a browser to keep: the session cannot be kept (a very long token).
            from pim.runtime.logging import get_logger

            get_logger("pim.portal").warning("portal session too large for a cookie", size=len(value))
        left = max(60, int(self.lifetime - (time.time() - session[BORN])))
        return f"{name}={value}; Max-Age={left}{attributes}"
