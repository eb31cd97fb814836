"""Guards the native endpoints share: who may read the tenant's oversight views,
and how often a caller's TOTP codes may be wrong before the API stops listening."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pim.api.auth import Caller
from pim.api.errors import forbidden
from pim.api.services import ApiServices
from pim.domain import authorization as authz
from pim.operations.context import Refused


def require_administrator(caller: Caller, what: str) -> None:
    """The audit log, its verification and the reconciler are the administrators':
    a caller holding any directory role (Caller.is_admin), 403 for anyone else."""
    if not caller.is_admin:
        roles = ", ".join(sorted(authz.GROUP_ROLES))
        raise forbidden(f"{what} is for administrators ({roles}); {caller.principal_id} holds none", "not_authorized")


@contextmanager
def counting_mfa_failures(api: ApiServices, caller: Caller, code: str | None) -> Iterator[None]:
    """Around an operation that verifies the caller's `code`: 429 once the caller has
    had too many wrong codes (PIM_API_RATE_MFA_FAILURES per 15 minutes), and a wrong
    one counted. The store's lockout holds across API instances whatever this allows."""
    if code is None:
        yield
        return
    if api.limiter.exceeded(api.mfa_failure_limit, caller.principal_id):
        api.limiter.check(api.mfa_failure_limit, caller.principal_id)  # raises 429 with Retry-After
    try:
        yield
    except Refused as refused:
        if refused.code.startswith("mfa_"):
            api.limiter.record(api.mfa_failure_limit, caller.principal_id)
        raise
