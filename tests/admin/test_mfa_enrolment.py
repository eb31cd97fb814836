"""Enrolling someone's TOTP is an administrative operation: a User or Global
Administrator, or the user with their current code. Audited; the user is told."""

from __future__ import annotations

import time

import pytest

from pim.domain import authorization as authz
from pim.identity.totp import current_code
from pim.operations import AdminContext, Refused
from pim.operations.principals import enroll_mfa
from tests.conftest import TEST_SIGNER


def ctx(store, actor: str) -> AdminContext:
    return AdminContext(store, actor, signer=TEST_SIGNER)


async def enrolments(store, principal_id: str) -> list[tuple[str | None, str]]:
    return [(r.actor, r.action) for r in await store.audit(principal_id=principal_id) if r.action in ("mfa_enrolled", "refused")]


@pytest.mark.parametrize(
    ("actor", "roles", "allowed"),
    [
        ("admin", [authz.GLOBAL_ADMIN], True),
        ("ula", [authz.USER_ADMIN], True),
        ("pra", [authz.PRIVILEGED_ROLE_ADMIN], False),
        ("dave", [authz.GROUPS_ADMIN], False),
        ("bob", [], False),
    ],
)
async def test_who_may_enrol_alice(demo, actor, roles, allowed):
    if actor not in ("admin", "dave", "bob"):
        await demo.add_principal(actor, "user", actor, roles)
    before = await demo.mfa_secret("alice")
    if allowed:
        secret = await enroll_mfa(ctx(demo, actor), "alice")
        assert await demo.mfa_secret("alice") == secret != before
        assert (actor, "mfa_enrolled") in await enrolments(demo, "alice")
        told = await demo.notifications(request_id=None)
        assert any(n.event == "mfa_enrolled" and n.payload["principal_id"] == "alice" for n in told)
        assert not any(secret in str(n.payload) for n in told)
    else:
        with pytest.raises(Refused) as refused:
            await enroll_mfa(ctx(demo, actor), "alice")
        assert refused.value.code == "not_authorized"
        assert await demo.mfa_secret("alice") == before
        assert (actor, "refused") in await enrolments(demo, "alice")


async def test_a_user_re_enrols_only_with_their_current_code(demo):
    before = await demo.mfa_secret("alice")
    with pytest.raises(Refused):
        await enroll_mfa(ctx(demo, "alice"), "alice")
    with pytest.raises(Refused) as wrong:
        await enroll_mfa(ctx(demo, "alice"), "alice", "000000" if current_code(before) != "000000" else "111111")
    assert wrong.value.code == "mfa_invalid"
    assert await demo.mfa_secret("alice") == before
    secret = await enroll_mfa(ctx(demo, "alice"), "alice", current_code(before, time.time()))
    assert await demo.mfa_secret("alice") == secret != before


async def test_a_user_administrator_cannot_take_over_a_global_administrator(demo):
    await demo.add_principal("ula", "user", "ula", [authz.USER_ADMIN])
    before = await demo.mfa_secret("admin")
    with pytest.raises(Refused) as refused:
        await enroll_mfa(ctx(demo, "ula"), "admin")
    assert "privileged administrator" in str(refused.value)
    assert await demo.mfa_secret("admin") == before


async def test_secrets_are_encrypted_at_rest(demo):
    from sqlalchemy import select

    from pim.store.tables import MfaEnrolmentRow

    secret = await demo.mfa_secret("alice")
    async with demo.sessions() as session:
        stored = (await session.scalars(select(MfaEnrolmentRow).where(MfaEnrolmentRow.principal_id == "alice"))).one()
    assert stored.secret.startswith("v1:") and secret not in stored.secret
