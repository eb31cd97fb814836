"""What an activation needs to know (eligibility facts, approvers, administrators,
contacts) and the claims on running activations. Grants and memberships are in
pim/store/grants.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Select, and_, delete, exists, literal, select, union, union_all
from sqlalchemy.orm import Session

from pim.domain import authorization as authz
from pim.domain.activation_rules import EligibilityFacts
from pim.domain.models import AccessType
from pim.domain.policy import ROLE_PREFIX, Policy
from pim.store.grants import is_live
from pim.store.sessions import UNSYNCED, Sessions, insert_new
from pim.store.tables import (
    ActivationClaimRow,
    AssignmentRow,
    DirectoryRoleRow,
    GrantRow,
    GroupRow,
    MfaEnrolmentRow,
    PolicyRow,
    PrincipalRow,
)


class AccessOperations(Sessions):
    # --- what an activation needs to know -----------------------------------

    async def eligibility_facts(self, group_id: str, access: AccessType, principal_id: str, at: datetime) -> EligibilityFacts:
        return await self.read(
            lambda session: _eligibility_facts(
                session, group_id, access, principal_id, at, _known(session, group_id, access, principal_id)
            )
        )

    async def expand_approvers(self, approvers: list[str], at: datetime) -> list[str]:
        """Users named directly, the active members of approver groups, and the holders
        of approver roles (`role:NAME`)."""
        return await self.read(lambda session: _expand_approvers(session, approvers, at))

    async def group_administrators(self, group_id: str, at: datetime) -> list[str]:
        """Who may manage the group (pim.domain.authorization): role holders and its current owners."""
        return await self.read(
            lambda session: _administrators(
                session, group_id, at, session.scalar(select(GroupRow.role_assignable).where(GroupRow.id == group_id))
            )
        )

    async def activation_facts(
        self,
        group_id: str,
        access: AccessType,
        principal_id: str,
        at: datetime,
        *,
        expand: Callable[[Policy], bool] = lambda _policy: True,
        contacts_of: Sequence[str] = (),
    ) -> ActivationFacts:
        """Everything the admission of a request, or its grant's re-check, reads, in
        one session: the policy in force, the eligibility facts, the approvers of
        each of the policy's stages (when `expand(policy)`), the group's
        administrators, and the contacts of the principal, the administrators, the
        first stage's approvers and `contacts_of` (for the notifications)."""

        def work(session: Session) -> ActivationFacts:
            known = _known(session, group_id, access, principal_id)
            policy = Policy.model_validate(known.policy_settings) if known.policy_settings is not None else None
            facts = _eligibility_facts(session, group_id, access, principal_id, at, known)
            approvers = (
                [_expand_approvers(session, stage.approvers, at) for stage in policy.activation.approval]
                if policy is not None and expand(policy)
                else []
            )
            administrators = _administrators(session, group_id, at, known.role_assignable)
            people = {principal_id, *administrators, *(approvers[0] if approvers else []), *contacts_of}
            return ActivationFacts(
                policy=policy,
                policy_version=known.policy_version,
                facts=facts,
                approvers=approvers,
                administrators=administrators,
                contacts=_contacts(session, people),
            )

        return await self.read(work)

    async def claim_activation(self, group_id: str, access: AccessType, principal_id: str, request_id: str, at: datetime) -> str:
        """Take the (group, access, principal) slot for this request; returns the
        request that holds it (this one unless another got there first)."""
        while True:
            holder = await self.transact(lambda session: self.claim_in(session, group_id, access, principal_id, request_id, at))
            if holder is not None:
                return holder
            # Released between the insert and the look-up (another process): look again.

    def claim_in(
        self, session: Session, group_id: str, access: AccessType, principal_id: str, request_id: str, at: datetime
    ) -> str | None:
        """`claim_activation` inside the caller's write transaction (`transact`); None
        when the slot was taken and released again meanwhile (try again)."""
        key = dict(group_id=group_id, access=AccessType(access).value, principal_id=principal_id)
        if insert_new(session, ActivationClaimRow, **key, request_id=request_id, claimed_at=at):
            return request_id
        return session.scalar(
            select(ActivationClaimRow.request_id).where(*(getattr(ActivationClaimRow, k) == v for k, v in key.items()))
        )

    async def claims(
        self, *, group_id: str | None = None, access: AccessType | None = None, principal_id: str | None = None
    ) -> list[ActivationClaimRow]:
        """Running activations (one claim each), filtered."""
        query = select(ActivationClaimRow)
        if group_id is not None:
            query = query.where(ActivationClaimRow.group_id == group_id)
        if access is not None:
            query = query.where(ActivationClaimRow.access == AccessType(access).value)
        if principal_id is not None:
            query = query.where(ActivationClaimRow.principal_id == principal_id)
        async with self.sessions() as session:
            return list(await session.scalars(query))

    async def release_activation(self, request_id: str) -> None:
        statement = delete(ActivationClaimRow).where(ActivationClaimRow.request_id == request_id)
        await self.transact(lambda session: session.execute(statement))

    async def end_activation(self, request_id: str) -> None:
        """An activation's grant row and its claim go together: one transaction
        instead of two on the revocation path, where a thousand expiring at once
        queue for SQLite's single writer."""
        await self.transact(lambda session: end_activation_in(session, request_id))


def end_activation_in(session: Session, request_id: str) -> None:
    """`end_activation` inside the caller's write transaction."""
    grant_row = delete(GrantRow).where(GrantRow.source_kind == "activation", GrantRow.source_id == request_id)
    session.execute(grant_row, execution_options=UNSYNCED)
    session.execute(delete(ActivationClaimRow).where(ActivationClaimRow.request_id == request_id), execution_options=UNSYNCED)


@dataclass(frozen=True)
class ActivationFacts:
    """What `AccessOperations.activation_facts` read, in one session."""

    policy: Policy | None  # None: the group has no such policy (not enabled in PIM)
    policy_version: int | None
    facts: EligibilityFacts
    approvers: list[list[str]]  # per stage of `policy`, when expanded: requester not removed
    administrators: list[str]
    contacts: dict[str, tuple[str | None, str]]  # (email, display name) by principal


class _Known(NamedTuple):
    """One row of what an activation's checks look up by key (`_known`)."""

    group_exists: bool
    group_enabled: bool | None
    role_assignable: bool | None
    principal_kind: str | None
    policy_settings: dict | None
    policy_version: int | None
    claim_holder: str | None
    mfa_enrolled: bool


def _known(session: Session, group_id: str, access: AccessType, principal_id: str) -> _Known:
    """The group, the principal, the policy, the claim and the enrolment, each looked
    up by its key: one statement of scalar subqueries instead of six."""
    access_value = AccessType(access).value
    group = GroupRow.id == group_id
    policy = and_(PolicyRow.group_id == group_id, PolicyRow.access == access_value)
    claim = and_(
        ActivationClaimRow.group_id == group_id,
        ActivationClaimRow.access == access_value,
        ActivationClaimRow.principal_id == principal_id,
    )
    row = session.execute(
        select(
            exists().where(group),
            select(GroupRow.pim_enabled).where(group).scalar_subquery(),
            select(GroupRow.role_assignable).where(group).scalar_subquery(),
            select(PrincipalRow.kind).where(PrincipalRow.id == principal_id).scalar_subquery(),
            select(PolicyRow.settings).where(policy).scalar_subquery(),
            select(PolicyRow.version).where(policy).scalar_subquery(),
            select(ActivationClaimRow.request_id).where(claim).scalar_subquery(),
            exists().where(MfaEnrolmentRow.principal_id == principal_id),
        )
    ).one()
    return _Known(*row)


def _eligibility_facts(
    session: Session, group_id: str, access: AccessType, principal_id: str, at: datetime, known: _Known
) -> EligibilityFacts:
    facts = EligibilityFacts(
        group_exists=known.group_exists,
        group_enabled=bool(known.group_enabled),
        principal_kind=known.principal_kind,  # "user" or "group", as the table holds
    )
    if not known.group_exists or known.principal_kind is None:
        return facts
    # Direct eligibility, or through a group the principal is an active member of (one
    # level). One list of candidates, so that each is looked up by the assignments'
    # index: `principal_id = ? OR principal_id IN (...)` read every eligible
    # assignment of the group, on every activation.
    member_of = select(GrantRow.group_id).where(
        GrantRow.principal_id == principal_id,
        GrantRow.access == AccessType.member.value,
        is_live(GrantRow.starts_at, GrantRow.ends_at, at),
    )
    candidates = union_all(select(literal(principal_id)), member_of)
    sources = session.execute(
        select(AssignmentRow.principal_id, AssignmentRow.ends_at).where(
            AssignmentRow.group_id == group_id,
            AssignmentRow.access == AccessType(access).value,
            AssignmentRow.kind == "eligible",
            AssignmentRow.removed_at.is_(None),
            is_live(AssignmentRow.starts_at, AssignmentRow.ends_at, at),
            AssignmentRow.principal_id.in_(candidates),
        )
    ).all()
    facts.eligible_via = sorted({"direct" if a.principal_id == principal_id else f"group:{a.principal_id}" for a in sources})
    ends = [a.ends_at for a in sources]
    facts.eligible_until = None if (not ends or None in ends) else max(ends)
    facts.running_request_id = known.claim_holder
    facts.mfa_enrolled = bool(known.mfa_enrolled)
    return facts


def _expand_approvers(session: Session, approvers: list[str], at: datetime) -> list[str]:
    users: set[str] = set()
    for approver in approvers:
        if approver.startswith(ROLE_PREFIX):
            role = approver.removeprefix(ROLE_PREFIX)
            users.update(session.scalars(select(DirectoryRoleRow.principal_id).where(DirectoryRoleRow.role == role)))
            continue
        principal = session.get(PrincipalRow, approver)
        if principal is None:
            continue
        if principal.kind == "user":
            users.add(approver)
        else:  # the group's active members
            users.update(session.scalars(_live_holders(approver, AccessType.member, at)))
    return sorted(users)


def _administrators(session: Session, group_id: str, at: datetime, role_assignable: bool | None) -> list[str]:
    """Who may manage the group (pim.domain.authorization): the holders of the roles
    that manage it, and its current owners. `role_assignable` None: no such group."""
    if role_assignable is None:
        return []
    roles = list(authz.roles_that_manage(role_assignable))
    holders = select(DirectoryRoleRow.principal_id).where(DirectoryRoleRow.role.in_(roles))
    owners = _live_holders(group_id, AccessType.owner, at)
    return sorted(set(session.scalars(union(holders, owners))))


def _live_holders(group_id: str, access: AccessType, at: datetime) -> Select[str]:
    """The principals a live grant gives this access to the group."""
    return select(GrantRow.principal_id).where(
        GrantRow.group_id == group_id,
        GrantRow.access == AccessType(access).value,
        is_live(GrantRow.starts_at, GrantRow.ends_at, at),
    )


def _contacts(session: Session, principal_ids: set[str]) -> dict[str, tuple[str | None, str]]:
    if not principal_ids:
        return {}
    rows = session.execute(
        select(PrincipalRow.id, PrincipalRow.email, PrincipalRow.display_name).where(PrincipalRow.id.in_(sorted(principal_ids)))
    )
    return {row.id: (row.email, row.display_name or row.id) for row in rows}
