"""The portal's parts that need no browser: the session cookie's sealing, where a
sign-in may return to, how refusals find their fields, the CSRF wall in front of
every portal POST (and not in front of the API), and how times are written."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from pim.api.app import create_app
from pim.portal.backend import ApiError
from pim.portal.formats import human_duration, time_left, when
from pim.portal.pages import safe_next
from pim.portal.session import SessionCodec, is_portal_path
from pim.runtime.settings import PimSettings


def key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def test_the_session_is_sealed_and_opens_only_with_its_keys():
    old, new = key("old"), key("new")
    sealed = SessionCodec.from_setting(old).seal({"user": {"id": "alice"}, "csrf": "t"})
    assert "alice" not in sealed  # encrypted, not only signed
    assert SessionCodec.from_setting(f"{new},{old}").open(sealed) == {"user": {"id": "alice"}, "csrf": "t"}  # rotation
    assert SessionCodec.from_setting(new).open(sealed) is None
    key_id, _, body = sealed.partition(".")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    assert SessionCodec.from_setting(old).open(f"{key_id}.{flipped}") is None
    assert SessionCodec.from_setting(old).open("garbage") is None
    with pytest.raises(ValueError, match="PIM_PORTAL_SESSION_KEY"):
        SessionCodec.from_setting("k1:c2hvcnQ=")


@pytest.mark.parametrize(
    ("asked", "followed"),
    [
        ("/requests/abc?x=1", "/requests/abc?x=1"),
        ("/", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/signin?next=/x", "/"),
        ("/signout", "/"),
        ("/auth/callback?code=1", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("", "/"),
        (None, "/"),
        ("/" + "a" * 3000, "/"),
    ],
)
def test_a_sign_in_returns_only_to_a_same_site_path(asked, followed):
    assert safe_next(asked) == followed


def test_refusals_find_their_fields_and_the_rest_goes_above_the_form():
    refused = ApiError(
        400,
        "RoleAssignmentRequestPolicyValidationFailed",
        "...",
        [
            {"code": "duration_exceeds_max", "message": "duration: PT9H exceeds the maximum of PT8H", "target": "duration"},
            {"code": "ticket_invalid", "message": "ticket.number: does not match INC-\\d+", "target": "ticket.number"},
            {"code": "approval_unsatisfiable", "message": "approval[0]: needs 1 approvals but only 0 approver(s)"},
        ],
    )
    assert refused.by_field({"duration": "duration", "ticket": "ticket"}) == {
        "duration": "PT9H exceeds the maximum of PT8H",
        "ticket": "does not match INC-\\d+",
        "": "approval[0]: needs 1 approvals but only 0 approver(s)",
    }
    assert {"duration_exceeds_max", "RoleAssignmentRequestPolicyValidationFailed"} <= refused.codes


def test_the_portals_paths_and_the_apis():
    for path in ("/", "/requests", "/requests/abc", "/approvals", "/admin/groups", "/signin", "/apiary"):
        assert is_portal_path(path), path
    for path in (
        "/api/requests",
        "/api",
        "/v1.0/x",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/dev-issuer/authorize",
        "/static/x",
    ):
        assert not is_portal_path(path), path


async def test_every_portal_post_needs_the_token_and_the_api_never_does():
    settings = PimSettings(oidc_issuer="https://login.example.com", portal_session_key=SecretStr(key("k")))
    app = create_app(settings=settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        for path in ("/signout", "/activate/grp-ops/member", "/no/such/page"):
            refused = await http.post(path, data={"csrf": "guess"})
            assert refused.status_code == 403 and "This form cannot be accepted" in refused.text, path
            assert "text/html" in refused.headers["content-type"]
        for path in ("/api/nothing", "/v1.0/nothing"):  # the API's answer, in its envelope: no CSRF wall there
            api = await http.post(path, json={})
            assert api.status_code == 404 and api.json()["error"]["code"] == "ResourceNotFound", path
        page = await http.get("/", follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/signin?next=/")
        page = await http.get("/requests/abc?x=1", follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/signin?next=/requests/abc%3Fx%3D1")
        missing = await http.get("/no/such/page")
        assert missing.status_code == 404 and "There is no such page." in missing.text  # a page, not JSON
        assert "frame-ancestors 'none'" in missing.headers["content-security-policy"]


def test_the_api_refuses_to_serve_a_portal_without_its_key():
    with pytest.raises(ValueError, match="PIM_PORTAL_SESSION_KEY is not set"):
        create_app(settings=PimSettings(oidc_issuer="https://login.example.com"))
    create_app(settings=PimSettings(oidc_issuer="https://login.example.com", portal=False))  # the API alone


def test_times_and_durations_as_people_read_them():
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    assert when("2026-12-02T14:05:09Z") == "2026-12-02 14:05 UTC"
    assert human_duration("PT8H") == "8 h" and human_duration("PT1H30M") == "1 h 30 min"
    assert human_duration("P1DT4H30M") == "1 d 4 h" and human_duration("PT45S") == "45 s"
    assert time_left(now + timedelta(hours=1, minutes=59, seconds=30), now) == "1 h 59 min left"
    assert time_left(now + timedelta(seconds=20), now) == "less than a minute left"
    assert time_left(now - timedelta(seconds=1), now) == "ended"
