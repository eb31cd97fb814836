"""Who hears of what: the policy's notification rules as a pure function.

| event                    | requestor | approvers | admins |
|--------------------------|-----------|-----------|--------|
| activation_requested     | yes       | yes (1)   | yes    |
| request_approved/denied  | yes       |           | yes    |
| activation_active/ended  | yes       |           | yes    |
| assignment_* (2)         | yes       |           | yes    |
| mfa_locked (3)           | yes       |           | yes    |

(1) only while approval is needed: they get the command to approve or deny.
(2) the "requestor" of an assignment is the assignee.
(3) the principal whose MFA is locked after too many wrong codes, and the
    administrators of the group the codes were for. A security alert: a policy's
    `notifications.recipients` and `notifications.events` do not silence it (a
    policy saved before the event existed lists every other event).
A policy narrows the others with `notifications.recipients` and `notifications.events`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from pim.domain.policy import NotificationRule
from pim.notifications.model import Recipient, Role

AUDIENCE: dict[str, tuple[Role, ...]] = {
    "activation_requested": ("requestor", "approvers", "admins"),
    "request_approved": ("requestor", "admins"),
    "request_denied": ("requestor", "admins"),
    "activation_active": ("requestor", "admins"),
    "activation_ended": ("requestor", "admins"),
    "assignment_eligible": ("requestor", "admins"),
    "assignment_active": ("requestor", "admins"),
    "assignment_expiring_soon": ("requestor", "admins"),
    "assignment_ended": ("requestor", "admins"),
    "mfa_locked": ("requestor", "admins"),
}
# Told whatever the policy's rule says.
ALWAYS_TOLD = frozenset({"mfa_locked"})


def audience(event: str, rule: NotificationRule, people: Mapping[Role, Sequence[str]]) -> list[tuple[str, Role]]:
    """(principal id, role) of everyone to tell, each once, in the first role that
    names them (a requestor who is also an admin is told as the requestor)."""
    always = event in ALWAYS_TOLD
    if event not in AUDIENCE or (event not in rule.events and not always):
        return []
    told: dict[str, Role] = {}
    for role in AUDIENCE[event]:
        if role in rule.recipients or always:
            for principal_id in people.get(role, ()):
                told.setdefault(principal_id, role)
    return list(told.items())


def recipients(pairs: Sequence[tuple[str, Role]], contacts: Mapping[str, tuple[str | None, str]]) -> list[Recipient]:
    return [
        Recipient(principal_id=p, role=role, email=contacts.get(p, (None, p))[0], display_name=contacts.get(p, (None, p))[1])
        for p, role in pairs
    ]
