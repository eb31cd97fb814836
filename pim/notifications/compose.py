"""Compose the notifications an activity queues with its audit line: who is told
(pim/audience.py), their addresses, and what approvers need to decide."""

from __future__ import annotations

from datetime import datetime
from typing import Mapping, Sequence

from pim.domain.models import AccessType
from pim.domain.policy import NotificationRule
from pim.notifications.audience import audience, recipients
from pim.notifications.messages import approval_commands
from pim.notifications.model import Notification, Role, request_page_id
from pim.store import Store


async def compose(
    store: Store,
    *,
    key: str,
    event: str,
    at: datetime,
    rule: NotificationRule,
    people: Mapping[Role, Sequence[str]],
    subject: str,
    request_id: str | None = None,
    run_key: str | None = None,
    group_id: str | None,
    access: str | None,
    principal_id: str,
    details: Mapping[str, str] | None = None,
    contacts: Mapping[str, tuple[str | None, str]] | None = None,
) -> list[Notification]:
    """The notifications of one event. Approvers of a pending request each get their
    own, with the exact commands to approve and to deny; everyone else shares one.
    `run_key` (`{workflow id}#{run id}`) names the request's run: messages link to
    its page in the portal. `contacts`: addresses the caller read already (the
    store is asked for the others)."""
    pairs = audience(event, rule, people)
    if not pairs:
        return []
    known = dict(contacts or {})
    missing = [p for p, _ in pairs if p not in known]
    if missing:
        known.update(await store.contacts(missing))
    contacts = known
    common = dict(
        event=event,
        at=at,
        subject=subject,
        request_id=request_id,
        api_request_id=request_page_id(run_key),
        group_id=group_id,
        access=access,
        principal_id=principal_id,
        details=dict(details or {}),
    )
    approvers = [(p, role) for p, role in pairs if role == "approvers"]
    others = [(p, role) for p, role in pairs if role != "approvers"]
    notifications = []
    if others:
        notifications.append(Notification(key=key, recipients=recipients(others, contacts), **common))
    for approver_id, role in approvers:
        notifications.append(
            Notification(
                key=f"{key}:approver:{approver_id}",
                recipients=recipients([(approver_id, role)], contacts),
                actions=approval_commands(request_id or "", approver_id),
                **common,
            )
        )
    return notifications


def describe(access: str, group_id: str, principal_id: str) -> str:
    return f"{access} of {group_id} for {principal_id}"


async def group_rule(store: Store, group_id: str, access: str, at: datetime) -> tuple[NotificationRule, list[str]]:
    """The group's notification rule and administrators, as the store has them now
    (for events that carry no policy snapshot: decisions and assignments)."""
    found = await store.policy(group_id, AccessType(access))
    rule = found[0].notifications if found else NotificationRule()
    return rule, await store.group_administrators(group_id, at)
