"""Graph request ids: one activation run, written URL-safe.

An activation's workflow id (`activation/grp-ops/member/alice`) is reused by the
next activation of the same access, so a Graph request is the pair (workflow id,
run id), encoded base64url without padding. Anything that does not decode to such
a pair is not a request of ours (404)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
WORKFLOW_ID = re.compile(r"activation/[A-Za-z0-9._@-]{1,128}/(member|owner)/[A-Za-z0-9._@-]{1,128}")
MAX_ENCODED = 512


@dataclass(frozen=True)
class RequestRef:
    workflow_id: str
    run_id: str

    @property
    def id(self) -> str:
        raw = f"{self.workflow_id}#{self.run_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_request_id(encoded: str) -> RequestRef | None:
    if not encoded or len(encoded) > MAX_ENCODED or not re.fullmatch(r"[A-Za-z0-9_-]+", encoded):
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    workflow_id, sep, run_id = raw.partition("#")
    if not sep or not WORKFLOW_ID.fullmatch(workflow_id) or not RUN_ID.fullmatch(run_id):
        return None
    return RequestRef(workflow_id, run_id)
