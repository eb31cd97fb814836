"""Administrative operations as small named units: one operation, its checks,
its effect, its audit line. The CLI and services call these; every refusal is
audited with the actor and the reason."""

from pim.operations.context import AdminContext, Refused

__all__ = ["AdminContext", "Refused"]
