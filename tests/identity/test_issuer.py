"""The development OpenID Connect issuer (pim/identity/issuer), served by uvicorn on
loopback and driven over real HTTP: discovery and JWKS, the device flow, the code
flow with PKCE, client credentials, refresh tokens, userinfo, and pim's own
verifier (pim/identity/oidc.py) accepting what it issues."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
import stat
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from pim.domain.policy import ActivationSettings
from pim.identity.issuer import PIM_CLI, IssuerSettings, create_issuer_app
from pim.identity.oidc import OidcConfig, OidcVerifier
from pim.identity.totp import current_code
from tests.identity.html_forms import read_page
from tests.identity.loopback import AUDIENCE, SERVICE_ID, SERVICE_PRINCIPAL, SERVICE_SECRET, Idp, running_issuer

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REDIRECT = "http://127.0.0.1:53682/callback"  # a loopback port the CLI would listen on (RFC 8252)
MFA = ActivationSettings(require_mfa=True)


@pytest.fixture
async def idp(demo):
    async with running_issuer(demo) as served:
        yield served


async def code_of(store, user: str) -> str:
    return current_code(await store.mfa_secret(user))


async def public_key(idp: Idp, token: str):
    """The key the issuer publishes for this token's kid (fetched over HTTP, as a relying party does)."""
    keys = (await idp.http.get(idp.url("/jwks"))).json()["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.PyJWK([k for k in keys if k["kid"] == kid][0]).key


async def access_claims(idp: Idp, token: str) -> dict:
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"  # RFC 9068
    return jwt.decode(token, await public_key(idp, token), algorithms=["RS256"], audience=AUDIENCE, issuer=idp.issuer)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def start_device_flow(idp: Idp, scope: str = "openid profile email") -> dict:
    response = await idp.http.post(idp.url("/device_authorization"), data={"client_id": PIM_CLI, "scope": scope})
    assert response.status_code == 200, response.text
    return response.json()


async def poll(idp: Idp, device_code: str) -> httpx.Response:
    return await idp.http.post(
        idp.url("/token"), data={"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": PIM_CLI}
    )


async def approve_device(idp: Idp, user_code: str, user: str, code: str, button: str = "Sign in") -> httpx.Response:
    page = read_page((await idp.http.get(idp.url("/device"))).text)
    values = {"User code": user_code, "User": user, "Code": code}
    return await idp.http.post(page.action, data=page.submission(values, button))


async def device_tokens(idp: Idp, store, user: str) -> tuple[dict, int, int]:
    """Tokens for `user` through the device flow, with the moments around their sign-in."""
    device = await start_device_flow(idp)
    before = int(time.time())
    approved = await approve_device(idp, device["user_code"], user, await code_of(store, user))
    after = int(time.time())
    assert approved.status_code == 200 and "Signed in" in approved.text, approved.text
    response = await poll(idp, device["device_code"])
    assert response.status_code == 200, response.text
    return response.json(), before, after


def authorize_query(challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": PIM_CLI,
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "st-" + secrets.token_hex(4),
        "nonce": "n-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


async def sign_in_for_code(idp: Idp, query: dict[str, str], user: str, code: str) -> httpx.Response:
    page = read_page((await idp.http.get(idp.url("/authorize"), params=query)).text)
    return await idp.http.post(page.action, data=page.submission({"User": user, "Code": code}, "Sign in"))


# --- discovery and keys ---------------------------------------------------------------------


async def test_discovery_names_every_endpoint_under_the_issuer(idp):
    response = await idp.http.get(idp.url("/.well-known/openid-configuration"))
    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == idp.issuer
    for endpoint, path in {
        "authorization_endpoint": "/authorize",
        "token_endpoint": "/token",
        "device_authorization_endpoint": "/device_authorization",
        "jwks_uri": "/jwks",
        "userinfo_endpoint": "/userinfo",
    }.items():
        assert document[endpoint] == idp.url(path)
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]
    assert {"openid", "profile", "offline_access"} <= set(document["scopes_supported"])
    assert set(document["grant_types_supported"]) == {"authorization_code", "refresh_token", DEVICE_GRANT, "client_credentials"}
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"client_secret_basic", "client_secret_post", "none"} == set(document["token_endpoint_auth_methods_supported"])

    (key,) = (await idp.http.get(document["jwks_uri"])).json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"]
    assert "d" not in key and "p" not in key  # the public half only


async def test_mounted_under_a_prefix_it_publishes_its_urls_under_the_prefix(demo):
    async with running_issuer(demo, prefix="/dev-issuer") as idp:
        assert idp.issuer.endswith("/dev-issuer")
        document = (await idp.http.get(idp.url("/.well-known/openid-configuration"))).json()
        assert document["issuer"] == idp.issuer and document["jwks_uri"] == idp.url("/jwks")
        device = await start_device_flow(idp)
        assert device["verification_uri"] == idp.url("/device")
        page = read_page((await idp.http.get(device["verification_uri_complete"])).text)
        assert page.action == idp.url("/device")
        assert page.inputs[page.labels["User code"]]["value"] == device["user_code"]


async def test_the_signing_key_is_kept_in_its_file_across_restarts(demo, tmp_path):
    key_file = tmp_path / "state" / "dev-issuer.key"
    settings = IssuerSettings(issuer="http://127.0.0.1:7280/dev-issuer", audience=AUDIENCE, key_file=key_file)
    first = create_issuer_app(demo, settings)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    second = create_issuer_app(demo, settings)
    assert first.state.issuer.key.kid == second.state.issuer.key.kid
    assert first.state.issuer.key.jwks() == second.state.issuer.key.jwks()
    in_memory = create_issuer_app(demo, IssuerSettings(issuer=settings.issuer, audience=AUDIENCE))
    assert in_memory.state.issuer.key.kid != first.state.issuer.key.kid


def test_settings_refuse_a_plain_http_issuer_off_loopback():
    with pytest.raises(ValueError, match="https"):
        IssuerSettings(issuer="http://idp.example.com", audience=AUDIENCE)
    assert IssuerSettings(issuer="https://idp.example.com/", audience=AUDIENCE).issuer == "https://idp.example.com"


# --- the device flow ------------------------------------------------------------------------


async def test_the_device_flow_end_to_end(idp, demo):
    device = await start_device_flow(idp)
    assert device["verification_uri"] == idp.url("/device")
    assert device["expires_in"] == 600 and device["interval"] == 5

    pending = await poll(idp, device["device_code"])
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")
    too_fast = await poll(idp, device["device_code"])  # within the interval
    assert (too_fast.status_code, too_fast.json()["error"]) == (400, "slow_down")

    # The verification page, as the user sees it with the link the device showed.
    page = read_page((await idp.http.get(device["verification_uri_complete"])).text)
    assert page.method == "post" and page.action == idp.url("/device")
    assert page.inputs[page.labels["User code"]]["value"] == device["user_code"]
    assert {page.field_named(label) for label in ("User code", "User", "Code")} == {"user_code", "user", "code"}
    assert "pim command line" in page.text  # who is asking
    before = int(time.time())
    approved = await approve_device(idp, device["user_code"].lower(), "alice", await code_of(demo, "alice"))
    assert approved.status_code == 200 and "Signed in" in approved.text

    response = await poll(idp, device["device_code"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    assert tokens["refresh_token"] and tokens["id_token"]
    claims = await access_claims(idp, tokens["access_token"])
    assert claims["iss"] == idp.issuer and claims["sub"] == "alice" and claims["aud"] == AUDIENCE
    assert claims["client_id"] == PIM_CLI and claims["scope"] == "openid profile email"
    assert claims["amr"] == ["otp", "mfa"]
    assert before <= claims["auth_time"] <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]

    id_token = jwt.decode(
        tokens["id_token"], await public_key(idp, tokens["id_token"]), algorithms=["RS256"], audience=PIM_CLI, issuer=idp.issuer
    )
    assert id_token["sub"] == "alice" and id_token["name"] == "Alice" and id_token["email"] == "alice@example.com"
    assert id_token["auth_time"] == claims["auth_time"] and id_token["amr"] == ["otp", "mfa"]

    again = await poll(idp, device["device_code"])  # a device code gives tokens once
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


async def test_a_denied_device_request_gets_access_denied(idp):
    device = await start_device_flow(idp)
    denied = await approve_device(idp, device["user_code"], "", "", button="Deny")
    assert denied.status_code == 200 and "denied" in denied.text
    response = await poll(idp, device["device_code"])
    assert (response.status_code, response.json()["error"]) == (400, "access_denied")


async def test_a_wrong_code_on_the_device_page_approves_nothing(idp, demo):
    device = await start_device_flow(idp)
    right = await code_of(demo, "alice")
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    refused = await approve_device(idp, device["user_code"], "alice", wrong)
    assert refused.status_code == 400
    page = read_page(refused.text)
    assert page.alerts == ["Sign-in failed: the user or the code is not right. Wait for the next code and try again."]
    assert page.inputs[page.labels["User"]]["value"] == "alice"
    assert page.inputs[page.labels["Code"]]["value"] == ""  # never echoed
    assert (await poll(idp, device["device_code"])).json()["error"] == "authorization_pending"
    unknown = await approve_device(idp, "BCDF-GHJK", "alice", right)
    assert unknown.status_code == 400 and "not valid" in read_page(unknown.text).alerts[0]


async def test_an_expired_device_code_says_expired_token(demo):
    async with running_issuer(demo, device_code_lifetime=timedelta(seconds=1)) as idp:
        device = await start_device_flow(idp)
        assert device["expires_in"] == 1
        await asyncio.sleep(1.2)
        response = await poll(idp, device["device_code"])
        assert (response.status_code, response.json()["error"]) == (400, "expired_token")
        late = await approve_device(idp, device["user_code"], "alice", await code_of(demo, "alice"))
        assert late.status_code == 400 and "expired" in read_page(late.text).alerts[0]


# --- the code flow --------------------------------------------------------------------------


async def test_the_code_flow_with_pkce(idp, demo):
    verifier, challenge = pkce()
    query = authorize_query(challenge)
    shown = await idp.http.get(idp.url("/authorize"), params=query)
    assert shown.status_code == 200 and shown.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in shown.headers["content-security-policy"]
    page = read_page(shown.text)
    assert page.method == "post" and page.action == idp.url("/authorize")
    assert page.field_named("User") == "user" and page.field_named("Code") == "code"
    assert page.button("Sign in")
    assert parse_qs(page.hidden()["authorization_request"]) == {k: [v] for k, v in query.items()}

    before = int(time.time())
    response = await idp.http.post(
        page.action, data=page.submission({"User": "bob", "Code": await code_of(demo, "bob")}, "Sign in")
    )
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    returned = parse_qs(location.query)
    assert returned["state"] == [query["state"]]

    exchange = {"grant_type": "authorization_code", "code": returned["code"][0], "redirect_uri": REDIRECT}
    tokens = await idp.http.post(idp.url("/token"), data={**exchange, "client_id": PIM_CLI, "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text
    claims = await access_claims(idp, tokens.json()["access_token"])
    assert claims["sub"] == "bob" and claims["amr"] == ["otp", "mfa"] and before <= claims["auth_time"] <= int(time.time())
    id_token = tokens.json()["id_token"]
    id_claims = jwt.decode(id_token, await public_key(idp, id_token), algorithms=["RS256"], audience=PIM_CLI)
    assert id_claims["nonce"] == query["nonce"] and id_claims["auth_time"] == claims["auth_time"]
    assert id_claims["sub"] == "bob" and id_claims["name"] == "Bob" and "email" not in id_claims  # scope has no email

    replayed = await idp.http.post(idp.url("/token"), data={**exchange, "client_id": PIM_CLI, "code_verifier": verifier})
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_grant")


async def test_the_token_exchange_needs_the_right_verifier(idp, demo):
    verifier, challenge = pkce()
    response = await sign_in_for_code(idp, authorize_query(challenge), "carol", await code_of(demo, "carol"))
    code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": PIM_CLI}
    wrong = await idp.http.post(idp.url("/token"), data={**exchange, "code_verifier": pkce()[0]})
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    assert "access_token" not in wrong.json()
    missing = await idp.http.post(idp.url("/token"), data=exchange)
    assert missing.status_code == 400 and "access_token" not in missing.json()
    # The failed attempt spent the code: the right verifier comes too late.
    late = await idp.http.post(idp.url("/token"), data={**exchange, "code_verifier": verifier})
    assert (late.status_code, late.json()["error"]) == (400, "invalid_grant")


async def test_a_public_client_must_use_pkce_s256(idp):
    _, challenge = pkce()
    for query in (
        {k: v for k, v in authorize_query(challenge).items() if not k.startswith("code_challenge")},
        authorize_query(challenge, code_challenge_method="plain"),
    ):
        response = await idp.http.get(idp.url("/authorize"), params=query)
        assert response.status_code == 302  # back to the client, which can tell its user
        returned = parse_qs(urlsplit(response.headers["location"]).query)
        assert returned["error"] == ["invalid_request"] and returned["state"] == [query["state"]]


async def test_an_unregistered_redirect_uri_is_never_redirected_to(idp):
    _, challenge = pkce()
    query = authorize_query(challenge, redirect_uri="https://evil.example/callback")
    response = await idp.http.get(idp.url("/authorize"), params=query)
    assert response.status_code == 400 and "location" not in response.headers
    assert "evil.example" not in response.text  # what the request said is not echoed to the person either
    unknown = await idp.http.get(idp.url("/authorize"), params=authorize_query(challenge, client_id="nobody"))
    assert unknown.status_code == 400 and "location" not in unknown.headers
    assert "invalid_client" in read_page(unknown.text).text


async def test_a_wrong_code_issues_nothing(idp, demo):
    _, challenge = pkce()
    query = authorize_query(challenge)
    right = await code_of(demo, "dave")
    for user, code in (("dave", f"{(int(right) + 1) % 1_000_000:06d}"), ("mallory", right), ("grp-ops", right)):
        response = await sign_in_for_code(idp, query, user, code)
        assert response.status_code == 400 and "location" not in response.headers
        page = read_page(response.text)
        assert page.alerts == ["Sign-in failed: the user or the code is not right. Wait for the next code and try again."]
        assert page.hidden()["authorization_request"] == urlencode(query)  # the request survives for the next try


async def test_five_wrong_codes_lock_the_sign_in(idp, demo):
    _, challenge = pkce()
    query = authorize_query(challenge)
    right = await code_of(demo, "alice")
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert (await sign_in_for_code(idp, query, "alice", wrong)).status_code == 400
    locked = await sign_in_for_code(idp, query, "alice", right)  # the right code, too late
    assert locked.status_code == 429 and "location" not in locked.headers
    assert "locked" in read_page(locked.text).alerts[0]
    assert [line.action for line in await demo.audit(principal_id="alice")].count("mfa_locked") == 1


async def test_everything_on_the_sign_in_page_is_escaped(idp):
    _, challenge = pkce()
    hostile = '"><script>alert(1)</script>'
    query = authorize_query(challenge, state=hostile)
    response = await idp.http.get(idp.url("/authorize"), params=query)
    assert response.status_code == 200
    assert "<script>" not in response.text
    assert read_page(response.text).hidden()["authorization_request"] == urlencode(query)


# --- client credentials ---------------------------------------------------------------------


async def test_a_service_client_gets_a_token_for_its_principal(idp):
    basic = await idp.http.post(idp.url("/token"), data={"grant_type": "client_credentials"}, auth=(SERVICE_ID, SERVICE_SECRET))
    assert basic.status_code == 200, basic.text
    assert "refresh_token" not in basic.json()
    claims = await access_claims(idp, basic.json()["access_token"])
    assert claims["sub"] == SERVICE_PRINCIPAL and claims["client_id"] == SERVICE_ID
    assert "amr" not in claims and "auth_time" not in claims

    posted = await idp.http.post(
        idp.url("/token"),
        data={"grant_type": "client_credentials", "client_id": SERVICE_ID, "client_secret": SERVICE_SECRET},
    )
    assert posted.status_code == 200

    for auth, data in (
        ((SERVICE_ID, "not-the-secret"), {}),
        (None, {"client_id": SERVICE_ID, "client_secret": "not-the-secret"}),
        (None, {"client_id": SERVICE_ID}),
    ):
        refused = await idp.http.post(idp.url("/token"), data={"grant_type": "client_credentials", **data}, auth=auth)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        assert refused.headers["www-authenticate"].startswith("Basic")

    public = await idp.http.post(idp.url("/token"), data={"grant_type": "client_credentials", "client_id": PIM_CLI})
    assert public.status_code in (400, 401) and "access_token" not in public.json()


async def test_the_token_endpoint_answers_errors_as_the_rfc_says(idp):
    unknown = await idp.http.post(idp.url("/token"), data={"grant_type": "password", "client_id": PIM_CLI})
    assert (unknown.status_code, unknown.json()["error"]) == (400, "unsupported_grant_type")
    assert unknown.headers["content-type"] == "application/json"
    no_code = await idp.http.post(idp.url("/token"), data={"grant_type": DEVICE_GRANT, "client_id": PIM_CLI})
    assert (no_code.status_code, no_code.json()["error"]) == (400, "invalid_request")
    bad_scope = await idp.http.post(idp.url("/device_authorization"), data={"client_id": PIM_CLI, "scope": "openid admin"})
    assert (bad_scope.status_code, bad_scope.json()["error"]) == (400, "invalid_scope")
    service = await idp.http.post(idp.url("/device_authorization"), data={"client_id": SERVICE_ID})
    assert service.status_code in (400, 401) and "device_code" not in service.json()
    huge = await idp.http.post(idp.url("/token"), data={"grant_type": "x" * 70_000})
    assert (huge.status_code, huge.json()["error"]) == (413, "invalid_request")


# --- refresh tokens -------------------------------------------------------------------------


async def test_a_refresh_keeps_the_sign_in_time_and_rotates(idp, demo):
    tokens, _, _ = await device_tokens(idp, demo, "dave")
    signed_in = (await access_claims(idp, tokens["access_token"]))["auth_time"]
    await asyncio.sleep(1.1)  # so that a new sign-in time would show
    refreshed = await idp.http.post(
        idp.url("/token"), data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": PIM_CLI}
    )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    claims = await access_claims(idp, new["access_token"])
    assert claims["auth_time"] == signed_in < claims["iat"]
    assert claims["amr"] == ["otp", "mfa"] and claims["sub"] == "dave"
    id_claims = jwt.decode(new["id_token"], await public_key(idp, new["id_token"]), algorithms=["RS256"], audience=PIM_CLI)
    assert id_claims["auth_time"] == signed_in
    assert new["refresh_token"] != tokens["refresh_token"]

    # The old refresh token is spent; presenting it again revokes its successor too.
    replay = await idp.http.post(
        idp.url("/token"), data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": PIM_CLI}
    )
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    after = await idp.http.post(
        idp.url("/token"), data={"grant_type": "refresh_token", "refresh_token": new["refresh_token"], "client_id": PIM_CLI}
    )
    assert (after.status_code, after.json()["error"]) == (400, "invalid_grant")


# --- userinfo -------------------------------------------------------------------------------


async def test_userinfo_names_the_signed_in_user(idp, demo):
    tokens, _, _ = await device_tokens(idp, demo, "carol")
    response = await idp.http.get(idp.url("/userinfo"), headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "carol", "name": "Carol", "email": "carol@example.com"}

    anonymous = await idp.http.get(idp.url("/userinfo"))
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    id_token = await idp.http.get(idp.url("/userinfo"), headers={"Authorization": f"Bearer {tokens['id_token']}"})
    assert id_token.status_code == 401  # an ID token is no access token
    service = await idp.http.post(idp.url("/token"), data={"grant_type": "client_credentials"}, auth=(SERVICE_ID, SERVICE_SECRET))
    as_service = await idp.http.get(idp.url("/userinfo"), headers={"Authorization": f"Bearer {service.json()['access_token']}"})
    assert as_service.status_code in (401, 403)


# --- pim's verifier -------------------------------------------------------------------------


async def test_pims_oidc_verifier_accepts_its_tokens(idp, demo):
    tokens, _, _ = await device_tokens(idp, demo, "alice")
    verifier = OidcVerifier(OidcConfig(issuer=idp.issuer, audiences=(AUDIENCE,)))  # keys found through discovery
    verdict = await verifier.verify(tokens["access_token"], "alice", MFA)
    assert verdict.violations == [] and verdict.replay_key

    wrong_person = await verifier.verify(tokens["access_token"], "bob", MFA)
    assert [v.code for v in wrong_person.violations] == ["mfa_wrong_subject"]
    other_audience = OidcVerifier(OidcConfig(issuer=idp.issuer, audiences=("another-api",)))
    assert [v.code for v in (await other_audience.verify(tokens["access_token"], "alice", MFA)).violations] == [
        "mfa_wrong_audience"
    ]

    service = await idp.http.post(idp.url("/token"), data={"grant_type": "client_credentials"}, auth=(SERVICE_ID, SERVICE_SECRET))
    no_mfa = await verifier.verify(service.json()["access_token"], SERVICE_PRINCIPAL, MFA)
    assert [v.code for v in no_mfa.violations] == ["mfa_insufficient"]  # a service signs nobody in
