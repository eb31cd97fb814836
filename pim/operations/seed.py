"""The demo tenant of SPEC section 8, loaded by `pim dev --seed demo`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pim.domain.models import AccessType
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
from pim.identity.totp import new_secret
from pim.store import Store

SEEDER = "seed"
USERS = {
    "admin": ["Global Administrator"],
    "dave": ["Groups Administrator"],
    "alice": [],
    "bob": [],
    "carol": [],
}


async def seed_demo(store: Store, at: datetime | None = None) -> bool:
    """Load the demo tenant once; returns False when it is already there."""
    at = at or datetime.now(UTC)
    if await store.group("grp-ops") is not None:
        return False
    for user, roles in USERS.items():
        await store.add_principal(user, "user", user.capitalize(), roles, email=f"{user}@example.com")
        await store.enroll_mfa(user, new_secret(), at)

    await store.onboard_group("grp-ops", "security", role_assignable=True, by=SEEDER, display_name="Operations")
    await store.set_policy(
        "grp-ops",
        AccessType.member,
        Policy(
            activation=ActivationSettings(
                approval=[ApprovalStage(approvers=["bob"], required=1)],
                require_mfa=True,
                require_justification=True,
                max_duration=timedelta(hours=8),
            )
        ),
        by=SEEDER,
    )
    await store.assign(
        "grp-ops",
        "alice",
        kind="eligible",
        starts_at=at,
        ends_at=at + timedelta(days=365),
        justification="on-call rotation",
        by=SEEDER,
    )
    await store.assign("grp-ops", "carol", kind="active", starts_at=at, justification="team lead", by=SEEDER)
    await store.assign(
        "grp-ops",
        "bob",
        access=AccessType.owner,
        kind="eligible",
        starts_at=at,
        ends_at=at + timedelta(days=365),
        justification="group owner on demand",
        by=SEEDER,
    )

    await store.onboard_group("grp-sre", "security", enable=False, by=SEEDER, display_name="SRE")
    for user in ("alice", "dave"):
        await store.assign("grp-sre", user, kind="active", starts_at=at, justification="SRE team", by=SEEDER)

    await store.onboard_group("grp-dev", "security", role_assignable=False, by=SEEDER, display_name="Development")
    await store.set_policy(
        "grp-dev",
        AccessType.member,
        Policy(activation=ActivationSettings(approval=[], require_justification=True, max_duration=timedelta(hours=4))),
        by=SEEDER,
    )
    await store.assign("grp-dev", "grp-sre", kind="eligible", starts_at=at, justification="SRE may work on dev", by=SEEDER)
    return True
