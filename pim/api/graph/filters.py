"""OData `$filter` as far as these resources support it: `eq` comparisons joined by
`and`, on the properties each resource lists, with single-quoted string values
(`groupId eq 'grp-ops' and status eq 'PendingApproval'`). Anything else is a 400
that names `$filter`, never a silently wider answer.

Graph compares enum values without regard to case (`status eq 'pendingapproval'`,
`assignmentType eq 'Activated'`): so do the resources here (`same_value`)."""

from __future__ import annotations

import re

from pim.api.errors import bad_request

MAX_FILTER = 1000
# One comparison: a property, eq, and a quoted string ('' is a quote inside it) or null.
COMPARISON = re.compile(r"\s*([A-Za-z][A-Za-z0-9]*)\s+eq\s+('(?:[^']|'')*'|null)", re.ASCII)
AND = re.compile(r"\s+and(?=\s)", re.ASCII)


def parse_filter(text: str | None, allowed: frozenset[str] | set[str]) -> dict[str, str | None]:
    """{property: value} from `$filter`; raises 400 for anything outside the grammar."""
    if text is None or not text.strip():
        return {}
    if len(text) > MAX_FILTER:
        raise bad_request(f"$filter: longer than {MAX_FILTER} characters", "$filter")
    found: dict[str, str | None] = {}
    position, text = 0, text.strip()
    while True:
        match = COMPARISON.match(text, position)
        if match is None:
            raise bad_request(
                "$filter: only comparisons `property eq 'value'` joined by `and` are supported", "$filter", "unsupported_filter"
            )
        name, literal = match.groups()
        if name not in allowed:
            raise bad_request(
                f"$filter: {name} cannot be filtered on here (supported: {', '.join(sorted(allowed))})",
                "$filter",
                "unsupported_filter",
            )
        if name in found:
            raise bad_request(f"$filter: {name} is compared twice", "$filter", "unsupported_filter")
        found[name] = None if literal == "null" else literal[1:-1].replace("''", "'")
        position = match.end()
        if position == len(text):
            return found
        joined = AND.match(text, position)
        if joined is None:
            raise bad_request("$filter: comparisons are joined by `and`", "$filter", "unsupported_filter")
        position = joined.end()


def same_value(found: str | None, wanted: str | None) -> bool:
    """Whether `found` passes a comparison with `wanted` (None: not filtered on), case aside."""
    return wanted is None or (found is not None and found.casefold() == wanted.casefold())
