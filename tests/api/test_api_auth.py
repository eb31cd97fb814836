"""Who may call the API: only a bearer token that the company's issuer signed for
this API names a caller, and the caller is then what the token says, nothing else.
Attacks use every credential but the one that matters: another issuer's token,
a token for another audience, a doctored token, a header naming someone."""

from __future__ import annotations

import base64
import json
import uuid

from pim.identity.issuer import IssuerClient
from pim.identity.totp import current_code
from tests.api.harness import REQUESTS, device_sign_in, running_api
from tests.identity.loopback import TEST_CLIENTS, running_issuer

# The approver's inbox: a cheap authenticated read that any signed-in user may make.
ME = f"{REQUESTS}/filterByCurrentUser(on='approver')"
LIST_MINE = {"$filter": "principalId eq 'alice'"}


def assert_graph_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    return error


async def test_no_token_or_a_malformed_header_is_401_with_a_bearer_challenge(api):
    for headers in ({}, {"Authorization": "Basic YWxpY2U6cGFzcw=="}, {"Authorization": "Bearer"}):
        response = await api.get(None, REQUESTS, params=LIST_MINE, headers=headers)
        assert_graph_error(response, 401, "InvalidAuthenticationToken")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_header_or_body_naming_someone_is_no_identity(api):
    response = await api.get(None, REQUESTS, params=LIST_MINE, headers={"X-Principal-Id": "admin", "X-User": "admin"})
    assert_graph_error(response, 401, "InvalidAuthenticationToken")


async def test_a_doctored_token_is_401(api):
    token = await api.sign_in("alice")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"  # alice's signature over admin's name
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    error = assert_graph_error(await api.get(f"{header}.{forged}.{signature}", ME), 401, "InvalidAuthenticationToken")
    assert "signature" in error["message"]
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    error = assert_graph_error(await api.get(f"{unsigned}.{forged}.", ME), 401, "InvalidAuthenticationToken")
    assert "algorithm" in error["message"]


async def test_a_token_from_another_issuer_is_401_even_for_a_real_user(api):
    async with running_issuer(api.store) as other:
        token = await device_sign_in(other, "admin", current_code(await api.store.mfa_secret("admin")))
    error = assert_graph_error(await api.get(token, ME), 401, "InvalidAuthenticationToken")
    assert "not issued by" in error["message"]


async def test_a_token_for_another_audience_is_401(time_env, demo):
    async with running_api(time_env, demo, oidc_audience="https://another-api.example") as api:
        error = assert_graph_error(await api.get(await api.sign_in("alice"), ME), 401, "InvalidAuthenticationToken")
        assert "not issued for" in error["message"]


async def test_a_genuine_token_of_a_principal_this_tenant_does_not_know_is_403(time_env, demo):
    # The issuer knows carol; then carol is no longer a principal the API may act for.
    async with running_api(time_env, demo, oidc_principal_claim="email") as api:
        error = assert_graph_error(await api.get(await api.sign_in("carol"), ME), 401, "InvalidAuthenticationToken")
        assert "email" in error["message"]  # her token names her by sub, not by the configured claim


async def test_the_caller_is_the_token_subject_and_acts_for_nobody_else(dev_env, demo):
    async with running_api(dev_env, demo) as api:
        alice = await api.sign_in("alice")
        mine = await api.get(alice, f"{REQUESTS}/filterByCurrentUser(on='principal')")
        assert mine.status_code == 200 and mine.json()["value"] == []
        assert_graph_error(await api.get(alice, REQUESTS), 403, "Authorization_RequestDenied")  # everyone's: administrators
        bobs = await api.get(alice, REQUESTS, params={"$filter": "principalId eq 'bob'"})
        assert_graph_error(bobs, 403, "Authorization_RequestDenied")
        assert (await api.get(alice, REQUESTS, params=LIST_MINE)).status_code == 200


async def test_a_service_principal_acts_with_its_own_roles(dev_env, demo):
    async with running_api(dev_env, demo) as api:
        service = await api.service_token()
        assert_graph_error(await api.get(service, REQUESTS), 403, "Authorization_RequestDenied")
        await api.store.grant_role("svc-directory-sync", "Groups Administrator")
        listed = await api.get(service, REQUESTS)
        assert listed.status_code == 200, listed.text
        someone_else = {
            "action": "selfActivate",
            "accessId": "member",
            "principalId": "alice",
            "groupId": "grp-dev",
            "justification": "a service asking in alice's name",
        }
        refused = await api.post(service, REQUESTS, json=someone_else)
        assert "signed-in caller" in assert_graph_error(refused, 403, "Authorization_RequestDenied")["message"]


async def test_an_applications_token_never_names_a_user(dev_env, demo):
    """A confidential client whose tokens' subject is spelled like a user's id (here,
    a client registered at the issuer as "alice", acting as "alice") is an application:
    it is refused, not taken for alice."""
    impostor = IssuerClient.service("alice", "a-secret-for-the-impostor", "alice")
    async with running_api(dev_env, demo, issuer={"clients": (*TEST_CLIENTS, impostor)}) as api:
        response = await api.idp.http.post(
            api.idp.url("/token"), data={"grant_type": "client_credentials"}, auth=("alice", "a-secret-for-the-impostor")
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert_graph_error(await api.get(token, ME), 403, "Authorization_RequestDenied")


async def test_request_ids_are_echoed_and_client_request_ids_kept(api):
    client_request_id = str(uuid.uuid4())
    response = await api.get(None, ME, headers={"client-request-id": client_request_id})
    assert response.headers["client-request-id"] == client_request_id
    assert response.json()["error"]["innerError"]["client-request-id"] == client_request_id
    assert uuid.UUID(response.headers["request-id"])
    hostile = await api.get(None, ME, headers={"client-request-id": "x" * 500})
    assert "client-request-id" not in hostile.headers


async def test_an_unknown_host_name_is_refused(api):
    response = await api.get(await api.sign_in("alice"), ME, headers={"Host": "attacker.example"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "BadRequest"


async def test_cors_is_closed_by_default(api):
    preflight = await api.call(
        "OPTIONS",
        None,
        REQUESTS,
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_opens_to_configured_origins_only(time_env, demo):
    async with running_api(time_env, demo, api_cors_origins="https://portal.example") as api:
        allowed = await api.call(
            "OPTIONS", None, REQUESTS, headers={"Origin": "https://portal.example", "Access-Control-Request-Method": "POST"}
        )
        assert allowed.headers["access-control-allow-origin"] == "https://portal.example"
        other = await api.call(
            "OPTIONS", None, REQUESTS, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in other.headers


async def test_probes_need_no_token_and_say_nothing_more(api):
    assert (await api.get(None, "/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await api.get(None, "/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "checks": {"store": True, "temporal": True}}


async def test_requests_are_rate_limited_per_principal(time_env, demo):
    async with running_api(time_env, demo, api_rate_requests=3) as api:
        alice, bob = await api.sign_in("alice"), await api.sign_in("bob")
        for _ in range(3):
            assert (await api.get(alice, ME)).status_code == 200
        limited = await api.get(alice, ME)
        assert_graph_error(limited, 429, "TooManyRequests")
        assert int(limited.headers["Retry-After"]) >= 1
        assert (await api.get(bob, ME)).status_code == 200  # bob has his own budget
