"""The store, told as small stories: what an operator or an activity would check."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pyotp
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from pim.directories.store_directory import StoreDirectory
from pim.domain.models import AccessType
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
from pim.identity import totp as mfa
from pim.operations.seed import seed_demo
from pim.store.admin import StoreError
from pim.store.database import Store, alembic_config, upgrade
from pim.store.tables import Base
from tests.conftest import TEST_SECRETS

MEMBER, OWNER = AccessType.member, AccessType.owner
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _sqlite_path(url: str) -> str:
    return url.split("///", 1)[1]


def _tables(url: str) -> set[str]:
    with closing(sqlite3.connect(_sqlite_path(url))) as conn:
        return {row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")}


async def _warm_pool(store: Store, n: int = 10) -> None:
    """Open the pool's connections first, so concurrent calls really overlap
    (creating connections otherwise serialises the first round)."""
    await asyncio.gather(*(store.principal(f"warm-{i}") for i in range(n)))


async def _user(store: Store, *ids: str) -> None:
    for principal_id in ids:
        await store.add_principal(principal_id, "user")


# --- migrations ---------------------------------------------------------------


async def test_migrations_create_the_schema_on_an_empty_file(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'fresh.db'}"
    await asyncio.to_thread(upgrade, url)

    assert set(Base.metadata.tables) <= _tables(url)
    with closing(sqlite3.connect(_sqlite_path(url))) as conn:
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert conn.execute("select version_num from alembic_version").fetchall() == [(head,)]


async def test_upgrading_twice_is_harmless(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}"
    await asyncio.to_thread(upgrade, url)
    store = Store.open(url, secrets=TEST_SECRETS)
    try:
        await store.add_principal("alice")
        await asyncio.to_thread(upgrade, url)
        assert (await store.principal("alice")) is not None
    finally:
        await store.close()
    with closing(sqlite3.connect(_sqlite_path(url))) as conn:
        assert conn.execute("select count(*) from alembic_version").fetchone() == (1,)


async def test_migrated_schema_matches_the_models(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    await asyncio.to_thread(upgrade, db_url)

    def diff():
        engine = create_engine(f"sqlite:///{_sqlite_path(db_url)}")
        try:
            with engine.connect() as conn:
                return compare_metadata(MigrationContext.configure(conn), Base.metadata)
        finally:
            engine.dispose()

    assert await asyncio.to_thread(diff) == []


# --- the demo tenant (SPEC section 8) -------------------------------------------


async def test_demo_seed_grp_ops(store):
    at = _now()
    assert await seed_demo(store, at) is True

    ops = await store.group("grp-ops")
    assert (ops.kind, ops.role_assignable, ops.pim_enabled) == ("security", True, True)

    policy, version = await store.policy("grp-ops", MEMBER)
    assert version == 2  # default policy, then the demo one
    assert [(s.approvers, s.required) for s in policy.activation.approval] == [(["bob"], 1)]
    assert policy.activation.require_mfa is True
    assert policy.activation.require_justification is True
    assert policy.activation.max_duration == timedelta(hours=8)

    by_principal = {(a.principal_id, a.access): a for a in await store.assignments(group_id="grp-ops")}
    assert set(by_principal) == {("alice", "member"), ("carol", "member"), ("bob", "owner")}

    alice = by_principal["alice", "member"]
    assert alice.kind == "eligible"
    assert alice.ends_at is not None
    assert abs((alice.ends_at - alice.starts_at) - timedelta(days=365)) < timedelta(days=1)

    carol = by_principal["carol", "member"]
    assert (carol.kind, carol.ends_at) == ("active", None)
    assert await store.has_membership("grp-ops", MEMBER, "carol")
    assert await store.active_members("grp-ops", _now()) == ["carol"]

    bob = by_principal["bob", "owner"]
    assert bob.kind == "eligible"

    facts = await store.eligibility_facts("grp-ops", MEMBER, "alice", _now())
    assert facts.eligible_via == ["direct"]
    assert facts.eligible_until == alice.ends_at
    assert facts.mfa_enrolled is True
    assert (await store.eligibility_facts("grp-ops", OWNER, "bob", _now())).eligible_via == ["direct"]
    assert (await store.eligibility_facts("grp-ops", MEMBER, "bob", _now())).eligible_via == []


async def test_demo_seed_grp_sre_and_grp_dev(store):
    await seed_demo(store)

    sre = await store.group("grp-sre")
    assert (sre.kind, sre.pim_enabled) == ("security", False)
    assert await store.policy("grp-sre", MEMBER) is None
    assert await store.active_members("grp-sre", _now()) == ["alice", "dave"]
    assert [m.principal_id for m in await store.memberships("grp-sre", MEMBER)] == ["alice", "dave"]

    dev = await store.group("grp-dev")
    assert (dev.kind, dev.role_assignable, dev.pim_enabled) == ("security", False, True)
    policy, _ = await store.policy("grp-dev", MEMBER)
    assert policy.activation.approval == []
    assert policy.activation.require_justification is True
    assert policy.activation.max_duration == timedelta(hours=4)

    # grp-sre is eligible in grp-dev; it does not become an active member.
    assert [(a.principal_id, a.kind) for a in await store.assignments(group_id="grp-dev")] == [("grp-sre", "eligible")]
    assert await store.active_members("grp-dev", _now()) == []

    for user in ("alice", "dave"):
        facts = await store.eligibility_facts("grp-dev", MEMBER, user, _now())
        assert facts.eligible_via == ["group:grp-sre"], user
        assert facts.eligible_until is None  # the group's eligibility is permanent
    assert (await store.eligibility_facts("grp-dev", MEMBER, "bob", _now())).eligible_via == []


async def test_demo_users_roles_and_mfa(store):
    await seed_demo(store)

    for user in ("admin", "dave", "alice", "bob", "carol"):
        assert (await store.principal(user)).kind == "user"
        secret = await store.mfa_secret(user)
        assert secret, user
        assert mfa.matching_step(secret, mfa.current_code(secret)) is not None
    # grp-ops is role-assignable: a Groups Administrator does not manage it.
    assert await store.group_administrators("grp-ops", _now()) == ["admin"]
    assert await store.group_administrators("grp-dev", _now()) == ["admin", "dave"]
    assert await store.roles_of("admin") == ["Global Administrator"]
    assert await store.roles_of("dave") == ["Groups Administrator"]


async def test_seeding_twice_returns_false_and_duplicates_nothing(store):
    assert await seed_demo(store) is True
    before = (
        [a.id for a in await store.assignments()],
        await store.policy("grp-ops", MEMBER),
        await store.live_grants("grp-sre", MEMBER, _now()),
        {u: await store.mfa_secret(u) for u in ("admin", "alice")},
    )

    assert await seed_demo(store) is False

    after = (
        [a.id for a in await store.assignments()],
        await store.policy("grp-ops", MEMBER),
        await store.live_grants("grp-sre", MEMBER, _now()),
        {u: await store.mfa_secret(u) for u in ("admin", "alice")},
    )
    assert after[0] == before[0]
    assert len(after[0]) == 6
    assert after[1][1] == before[1][1]
    assert [g.id for g in after[2]] == [g.id for g in before[2]]
    assert after[3] == before[3]  # secrets not re-enrolled
    assert [g.id for g in await store.groups()] == ["grp-dev", "grp-ops", "grp-sre"]


async def test_demo_seed_at_a_given_instant_is_consistent_at_that_instant(store):
    """`seed_demo(store, at)` takes an instant; the tenant it builds should hold as of
    that instant, not only from the wall-clock moment the seed ran."""
    at = _now() - timedelta(hours=1)
    await seed_demo(store, at)

    assert await store.active_members("grp-ops", at) == ["carol"]
    assert await store.active_members("grp-sre", at) == ["alice", "dave"]
    assert (await store.eligibility_facts("grp-dev", MEMBER, "alice", at)).eligible_via == ["group:grp-sre"]


# --- onboarding and policies ------------------------------------------------------


@pytest.mark.parametrize("kind", ["dynamic", "synced"])
async def test_dynamic_and_synced_groups_cannot_be_enabled(store, kind):
    with pytest.raises(StoreError) as refused:
        await store.onboard_group(f"grp-{kind}", kind, enable=True, by="admin")
    assert refused.value.code == "group_kind_not_supported"
    assert await store.group(f"grp-{kind}") is None

    # Known to the directory but not enabled: that is allowed.
    await store.onboard_group(f"grp-{kind}", kind, enable=False, by="admin")
    group = await store.group(f"grp-{kind}")
    assert (group.kind, group.pim_enabled) == (kind, False)
    assert await store.policy(f"grp-{kind}", MEMBER) is None


@pytest.mark.parametrize("kind", ["dynamic", "synced"])
async def test_a_known_dynamic_or_synced_group_cannot_be_enabled_by_naming_another_kind(store, kind):
    """SPEC 1: dynamic and synced groups can *never* be enabled. The kind the
    directory already records must win over the kind given on a later call."""
    await store.onboard_group("grp-x", kind, enable=False, by="admin")

    with pytest.raises(StoreError) as refused:
        await store.onboard_group("grp-x", "security", enable=True, by="admin")
    assert refused.value.code == "group_kind_not_supported"
    group = await store.group("grp-x")
    assert (group.kind, group.pim_enabled) == (kind, False)


async def test_onboarding_creates_default_member_and_owner_policies(store):
    await store.onboard_group("grp-a", "security", by="admin", display_name="Group A")

    group = await store.group("grp-a")
    assert group.pim_enabled and group.enabled_by == "admin" and group.enabled_at is not None
    assert (await store.principal("grp-a")).kind == "group"
    for access in (MEMBER, OWNER):
        policy, version = await store.policy("grp-a", access)
        assert version == 1
        assert policy == Policy()
        assert policy.activation.max_duration == timedelta(hours=8)
        assert policy.activation.require_mfa is False
        assert policy.activation.approval == []


async def test_enabling_a_known_group_later_and_onboarding_again(store):
    await store.onboard_group("grp-a", "security", enable=False, by="admin")
    assert await store.policy("grp-a", MEMBER) is None

    await store.onboard_group("grp-a", "security", by="dave")
    assert (await store.group("grp-a")).enabled_by == "dave"
    custom = Policy(activation=ActivationSettings(max_duration=timedelta(hours=2)))
    await store.set_policy("grp-a", MEMBER, custom, by="admin")

    # Onboarding again neither resets the policy nor re-enables.
    await store.onboard_group("grp-a", "security", by="admin")
    assert (await store.group("grp-a")).enabled_by == "dave"
    assert await store.policy("grp-a", MEMBER) == (custom, 2)


async def test_set_policy_bumps_the_version(store):
    await store.onboard_group("grp-a", "security", by="admin")
    first = Policy(activation=ActivationSettings(require_mfa=True))
    second = Policy(activation=ActivationSettings(approval=[ApprovalStage(approvers=["bob", "carol"], required=2)]))

    assert await store.set_policy("grp-a", MEMBER, first, by="admin") == 2
    assert await store.set_policy("grp-a", MEMBER, second, by="admin") == 3
    assert await store.policy("grp-a", MEMBER) == (second, 3)
    assert await store.policy("grp-a", OWNER) == (Policy(), 1)  # the other access type is untouched


async def test_set_policy_on_a_group_not_enabled_is_refused(store):
    await store.onboard_group("grp-a", "security", enable=False, by="admin")
    with pytest.raises(StoreError) as refused:
        await store.set_policy("grp-a", MEMBER, Policy(), by="admin")
    assert refused.value.code == "group_not_enabled"


async def test_assigning_to_unknown_group_or_principal_is_refused(store):
    await store.onboard_group("grp-a", "security", by="admin")
    await _user(store, "alice")
    with pytest.raises(StoreError) as refused:
        await store.assign("grp-nope", "alice", by="admin")
    assert refused.value.code == "group_not_found"
    with pytest.raises(StoreError) as refused:
        await store.assign("grp-a", "nobody", by="admin")
    assert refused.value.code == "principal_not_found"
    assert await store.assignments() == []


# --- grants counted per source -----------------------------------------------------


async def test_ending_an_activation_keeps_access_given_by_an_assignment(store):
    await store.onboard_group("grp-a", "security", by="admin")
    await _user(store, "carol")
    start = _now() - timedelta(minutes=1)
    assignment_id = await store.assign("grp-a", "carol", kind="active", starts_at=start, by="admin")
    await store.add_grant(
        "grp-a", MEMBER, "carol", source_kind="activation", source_id="req-1", starts_at=start, ends_at=start + timedelta(hours=1)
    )
    now = _now()

    sources = await store.live_grants("grp-a", MEMBER, now, "carol")
    assert sorted((g.source_kind, g.source_id) for g in sources) == [("activation", "req-1"), ("assignment", assignment_id)]
    others = await store.other_live_sources("grp-a", MEMBER, "carol", source_id="req-1", at=now)
    assert [(g.source_kind, g.source_id) for g in others] == [("assignment", assignment_id)]

    await store.remove_grant("activation", "req-1")

    left = await store.live_grants("grp-a", MEMBER, now, "carol")
    assert [(g.source_kind, g.source_id) for g in left] == [("assignment", assignment_id)]
    assert await store.active_members("grp-a", now) == ["carol"]
    assert await store.has_membership("grp-a", MEMBER, "carol")


async def test_a_lone_activation_has_no_other_source(store):
    start = _now()
    await store.add_grant("grp-a", MEMBER, "alice", source_kind="activation", source_id="req-1", starts_at=start)
    assert await store.other_live_sources("grp-a", MEMBER, "alice", source_id="req-1", at=start) == []
    await store.remove_grant("activation", "req-1")
    await store.remove_grant("activation", "req-1")  # removing twice is harmless
    assert await store.live_grants("grp-a", MEMBER, start) == []


async def test_ending_an_activation_drops_its_grant_and_its_claim_and_nothing_else(store):
    start = _now()
    await store.onboard_group("grp-a", "security", by="admin")
    await _user(store, "alice", "bob")
    for principal, request in (("alice", "req-1"), ("bob", "req-2")):
        await store.claim_activation("grp-a", MEMBER, principal, request, start)
        await store.add_grant("grp-a", MEMBER, principal, source_kind="activation", source_id=request, starts_at=start)

    await store.end_activation("req-1")
    await store.end_activation("req-1")  # a retried revocation: harmless

    assert [g.principal_id for g in await store.live_grants("grp-a", MEMBER, start)] == ["bob"]
    assert (await store.eligibility_facts("grp-a", MEMBER, "alice", start)).running_request_id is None
    assert (await store.eligibility_facts("grp-a", MEMBER, "bob", start)).running_request_id == "req-2"


async def test_add_grant_is_idempotent_per_source(store):
    start = _now()
    for _ in range(3):
        await store.add_grant(
            "grp-a",
            MEMBER,
            "alice",
            source_kind="activation",
            source_id="req-1",
            starts_at=start,
            ends_at=start + timedelta(hours=1),
        )
    await store.add_grant(
        "grp-a", MEMBER, "alice", source_kind="activation", source_id="req-2", starts_at=start, ends_at=start + timedelta(hours=1)
    )

    grants = await store.live_grants("grp-a", MEMBER, start)
    assert sorted(g.source_id for g in grants) == ["req-1", "req-2"]
    assert await store.active_members("grp-a", start) == ["alice"]


async def test_grants_are_per_access_type_and_principal(store):
    start = _now()
    await store.add_grant("grp-a", OWNER, "bob", source_kind="activation", source_id="req-o", starts_at=start)
    await store.add_grant("grp-a", MEMBER, "alice", source_kind="activation", source_id="req-m", starts_at=start)

    assert [g.principal_id for g in await store.live_grants("grp-a", OWNER, start)] == ["bob"]
    assert await store.active_members("grp-a", start) == ["alice"]
    assert await store.live_grants("grp-a", MEMBER, start, "bob") == []


async def test_a_time_bound_grant_is_live_only_between_its_start_and_end(store):
    starts, ends = T0, T0 + timedelta(hours=1)
    await store.add_grant("grp-a", MEMBER, "alice", source_kind="activation", source_id="req-1", starts_at=starts, ends_at=ends)

    assert await store.live_grants("grp-a", MEMBER, starts - timedelta(seconds=1)) == []
    assert len(await store.live_grants("grp-a", MEMBER, starts)) == 1
    assert len(await store.live_grants("grp-a", MEMBER, ends - timedelta(microseconds=1))) == 1
    assert await store.live_grants("grp-a", MEMBER, ends) == []
    assert await store.live_grants("grp-a", MEMBER, ends + timedelta(days=1)) == []


async def test_grant_instants_come_back_in_utc_whatever_zone_was_given(store):
    paris = datetime(2030, 6, 1, 14, 0, tzinfo=ZoneInfo("Europe/Paris"))
    await store.add_grant(
        "grp-a", MEMBER, "alice", source_kind="activation", source_id="req-1", starts_at=paris, ends_at=paris + timedelta(hours=1)
    )
    # 14:00-15:00 in Paris (summer) is 12:00-13:00 UTC: live at 12:30 UTC.
    (grant,) = await store.live_grants("grp-a", MEMBER, datetime(2030, 6, 1, 12, 30, tzinfo=UTC))
    assert grant.starts_at == paris and grant.starts_at.tzinfo is not None
    assert grant.starts_at.utcoffset() == timedelta(0)


async def test_naive_datetimes_are_refused(store):
    with pytest.raises(Exception, match="naive"):
        await store.add_grant(
            "grp-a", MEMBER, "alice", source_kind="activation", source_id="req-1", starts_at=datetime(2030, 1, 1)
        )


# --- claims on running activations ------------------------------------------------------


async def test_one_running_activation_per_group_access_principal(store):
    assert await store.claim_activation("grp-a", MEMBER, "alice", "req-1", T0) == "req-1"
    assert await store.claim_activation("grp-a", MEMBER, "alice", "req-1", T0) == "req-1"  # same request: idempotent
    assert await store.claim_activation("grp-a", MEMBER, "alice", "req-2", T0) == "req-1"

    # Other slots are independent.
    assert await store.claim_activation("grp-a", OWNER, "alice", "req-3", T0) == "req-3"
    assert await store.claim_activation("grp-a", MEMBER, "bob", "req-4", T0) == "req-4"

    await store.release_activation("req-1")
    assert await store.claim_activation("grp-a", MEMBER, "alice", "req-2", T0) == "req-2"
    assert await store.claim_activation("grp-a", OWNER, "alice", "req-9", T0) == "req-3"  # untouched by the release


async def test_eligibility_facts_name_the_running_request(store):
    await store.onboard_group("grp-a", "security", by="admin")
    await _user(store, "alice")
    await store.claim_activation("grp-a", MEMBER, "alice", "req-1", T0)
    assert (await store.eligibility_facts("grp-a", MEMBER, "alice", T0)).running_request_id == "req-1"
    await store.release_activation("req-1")
    assert (await store.eligibility_facts("grp-a", MEMBER, "alice", T0)).running_request_id is None


async def test_concurrent_claims_for_one_slot_have_exactly_one_winner(store):
    await _warm_pool(store)
    for round_ in range(3):
        principal = f"user-{round_}"
        request_ids = [f"req-{round_}-{i}" for i in range(10)]
        results = await asyncio.gather(
            *(store.claim_activation("grp-a", MEMBER, principal, rid, T0) for rid in request_ids), return_exceptions=True
        )
        winner = results[0]
        assert winner in request_ids
        assert results == [winner] * 10
        # The slot really is held by the winner.
        assert await store.claim_activation("grp-a", MEMBER, principal, "req-late", T0) == winner


# --- eligibility -----------------------------------------------------------------------------


async def test_eligibility_follows_time_bounds_and_nesting_one_level(store):
    await store.onboard_group("grp-b", "security", by="admin")
    await store.onboard_group("grp-a", "security", enable=False, by="admin")
    await _user(store, "alice", "bob")
    await store.assign("grp-b", "alice", kind="eligible", starts_at=T0, ends_at=T0 + timedelta(days=30), by="admin")
    await store.assign("grp-b", "grp-a", kind="eligible", starts_at=T0, by="admin")
    await store.assign("grp-a", "bob", kind="active", starts_at=T0, ends_at=T0 + timedelta(days=1), by="admin")

    assert (await store.eligibility_facts("grp-b", MEMBER, "alice", T0 - timedelta(seconds=1))).eligible_via == []
    facts = await store.eligibility_facts("grp-b", MEMBER, "alice", T0)
    assert (facts.eligible_via, facts.eligible_until) == (["direct"], T0 + timedelta(days=30))
    assert (await store.eligibility_facts("grp-b", MEMBER, "alice", T0 + timedelta(days=30))).eligible_via == []

    assert (await store.eligibility_facts("grp-b", MEMBER, "bob", T0)).eligible_via == ["group:grp-a"]
    # bob's active membership of grp-a ended, so the nested eligibility goes with it.
    assert (await store.eligibility_facts("grp-b", MEMBER, "bob", T0 + timedelta(days=2))).eligible_via == []
    # Member eligibility does not make anyone eligible as owner.
    assert (await store.eligibility_facts("grp-b", OWNER, "alice", T0)).eligible_via == []


async def test_eligibility_facts_for_unknown_group_or_principal(store):
    await store.onboard_group("grp-a", "security", enable=False, by="admin")
    facts = await store.eligibility_facts("grp-nope", MEMBER, "alice", T0)
    assert (facts.group_exists, facts.group_enabled, facts.principal_kind) == (False, False, None)
    facts = await store.eligibility_facts("grp-a", MEMBER, "nobody", T0)
    assert (facts.group_exists, facts.group_enabled, facts.principal_kind, facts.eligible_via) == (True, False, None, [])


async def test_expand_approvers_names_users_and_active_members_of_groups(store):
    await seed_demo(store)
    assert await store.expand_approvers(["bob", "grp-sre", "ghost"], _now()) == ["alice", "bob", "dave"]


# --- MFA -----------------------------------------------------------------------------------------


async def test_a_totp_step_is_accepted_once(store):
    await _user(store, "alice")
    await store.enroll_mfa("alice", mfa.new_secret(), T0)

    assert await store.consume_totp_step("alice", 1000, "req-1") is True
    assert await store.consume_totp_step("alice", 1000, "req-1") is True  # an activity retry
    assert await store.consume_totp_step("alice", 1000, "req-2") is False  # a replay by another request
    assert await store.consume_totp_step("alice", 999, "req-1") is False  # an older step
    assert await store.consume_totp_step("alice", 999, "req-3") is False
    assert await store.consume_totp_step("alice", 1001, "req-2") is True  # the next step is fresh
    assert await store.consume_totp_step("alice", 1000, "req-1") is False  # and the old one is now older


async def test_consume_totp_step_without_enrolment_is_refused(store):
    await _user(store, "alice")
    assert await store.consume_totp_step("alice", 1000, "req-1") is False
    assert await store.consume_totp_step("ghost", 1000, "req-1") is False


async def test_re_enrolling_resets_the_secret_and_the_replay_guard(store):
    await _user(store, "alice")
    await store.enroll_mfa("alice", "A" * 32, T0)
    assert await store.consume_totp_step("alice", 1000, "req-1") is True
    await store.enroll_mfa("alice", "B" * 32, T0 + timedelta(days=1))
    assert await store.mfa_secret("alice") == "B" * 32
    assert await store.consume_totp_step("alice", 1000, "req-2") is True


async def test_concurrent_uses_of_one_step_accept_only_one_request(store):
    """Replay protection under concurrency: two activities presenting the same
    code at the same moment must not both be accepted."""
    await _user(store, "alice")
    await store.enroll_mfa("alice", mfa.new_secret(), T0)
    await _warm_pool(store)
    for step in range(1000, 1003):
        results = await asyncio.gather(
            *(store.consume_totp_step("alice", step, f"req-{step}-{i}") for i in range(10)), return_exceptions=True
        )
        assert results.count(True) == 1, (step, results)


def test_matching_step_finds_the_step_of_the_current_code():
    secret = mfa.new_secret()
    at = 1_900_000_000.0
    code = mfa.current_code(secret, at)
    expected = pyotp.TOTP(secret, interval=mfa.TOTP_INTERVAL).timecode(datetime.fromtimestamp(at, UTC))

    assert mfa.matching_step(secret, code, at) == expected
    # One step of clock drift either side is tolerated, and names the step of the code.
    assert mfa.matching_step(secret, code, at + mfa.TOTP_INTERVAL) == expected
    assert mfa.matching_step(secret, code, at - mfa.TOTP_INTERVAL) == expected
    assert mfa.matching_step(secret, code, at + 3 * mfa.TOTP_INTERVAL) is None


def test_matching_step_rejects_wrong_or_non_digit_codes():
    secret = mfa.new_secret()
    at = 1_900_000_000.0
    good = mfa.current_code(secret, at)
    window = {mfa.current_code(secret, at + k * mfa.TOTP_INTERVAL) for k in (-1, 0, 1)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in window)

    assert mfa.matching_step(secret, wrong, at) is None
    assert mfa.matching_step(secret, "abcdef", at) is None
    assert mfa.matching_step(secret, f" {good}", at) is None
    assert mfa.matching_step(secret, "", at) is None
    assert mfa.matching_step(secret, mfa.current_code(secret), None) is not None  # defaults to now


# --- audit ------------------------------------------------------------------------------------------


async def test_audit_dedupe_key_writes_one_row(store):
    for _ in range(3):
        await store.append_audit(
            at=T0,
            action="activation.granted",
            actor="alice",
            request_id="req-1",
            group_id="grp-a",
            access="member",
            principal_id="alice",
            dedupe_key="req-1/granted",
        )
    await store.append_audit(at=T0, action="note", group_id="grp-a")
    await store.append_audit(at=T0, action="note", group_id="grp-a")  # no key: both written

    rows = await store.audit()
    assert [(r.action, r.dedupe_key) for r in rows] == [
        ("activation.granted", "req-1/granted"),
        ("note", None),
        ("note", None),
    ]
    # The caller's time (T0, years away) does not date the line: it is kept as the event's.
    assert rows[0].details == {"event_at": "2030-01-01T12:00:00.000000Z"}


async def test_audit_filters_and_order(store):
    before = datetime.now(UTC)
    await store.append_audit(
        action="requested", group_id="grp-a", principal_id="alice", request_id="req-1", details={"duration": "PT1H"}
    )
    await store.append_audit(at=T0, action="requested", group_id="grp-b", principal_id="bob", request_id="req-2")
    await store.append_audit(action="granted", group_id="grp-a", principal_id="alice", request_id="req-1")
    middle = (await store.audit())[-1].at
    await store.append_audit(
        at=datetime.now(UTC), action="approved", actor="bob", group_id="grp-a", principal_id="carol", request_id="req-3"
    )

    # Insertion order, and the store's clock: each line dated at insert, never before the one before it.
    lines = await store.audit()
    assert [r.action for r in lines] == ["requested", "requested", "granted", "approved"]
    assert [r.at for r in lines] == sorted(r.at for r in lines)
    assert before <= lines[0].at <= lines[-1].at <= datetime.now(UTC) and lines[0].at.tzinfo is not None
    assert [r.request_id for r in await store.audit(group_id="grp-a")] == ["req-1", "req-1", "req-3"]
    assert [r.action for r in await store.audit(principal_id="alice")] == ["requested", "granted"]
    assert [r.action for r in await store.audit(request_id="req-1")] == ["requested", "granted"]
    assert [r.request_id for r in await store.audit(since=middle)][-2:] == ["req-1", "req-3"]
    assert [r.action for r in await store.audit(group_id="grp-a", principal_id="carol", since=middle)] == ["approved"]
    # A caller's time close to the store's is not repeated; a distant one is kept as the event's.
    assert lines[0].details == {"duration": "PT1H"} and lines[3].details == {}
    assert lines[1].details == {"event_at": "2030-01-01T12:00:00.000000Z"} and lines[1].at < T0


async def test_concurrent_audit_with_one_dedupe_key_writes_one_row(store):
    await _warm_pool(store)
    outcomes = await asyncio.gather(
        *(store.append_audit(at=T0, action="granted", dedupe_key="k") for _ in range(10)), return_exceptions=True
    )
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert len(await store.audit()) == 1


# --- the built-in directory ---------------------------------------------------------------------


async def test_store_directory_is_idempotent(store):
    directory = StoreDirectory(store)
    assert await directory.holds("grp-a", MEMBER, "alice") is False

    await directory.add("grp-a", MEMBER, "alice")
    await directory.add("grp-a", MEMBER, "alice")
    assert await directory.holds("grp-a", MEMBER, "alice") is True
    assert await directory.holds("grp-a", OWNER, "alice") is False
    assert [m.principal_id for m in await store.memberships("grp-a", MEMBER)] == ["alice"]

    await directory.remove("grp-a", MEMBER, "alice")
    await directory.remove("grp-a", MEMBER, "alice")
    assert await directory.holds("grp-a", MEMBER, "alice") is False
    assert await store.memberships("grp-a", MEMBER) == []


async def test_concurrent_directory_adds_of_one_membership(store):
    directory = StoreDirectory(store)
    await _warm_pool(store)
    outcomes = await asyncio.gather(*(directory.add("grp-a", MEMBER, "alice") for _ in range(10)), return_exceptions=True)
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert await directory.holds("grp-a", MEMBER, "alice") is True


async def test_concurrent_add_grant_for_one_source(store):
    start = _now()
    await _warm_pool(store)
    outcomes = await asyncio.gather(
        *(
            store.add_grant("grp-a", MEMBER, "alice", source_kind="activation", source_id="req-1", starts_at=start)
            for _ in range(10)
        ),
        return_exceptions=True,
    )
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert len(await store.live_grants("grp-a", MEMBER, start)) == 1
