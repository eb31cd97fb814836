"""What the tests of the native endpoints read in an answer: its status, and the
error's fields and codes (Graph's envelope: pim/api/errors.py)."""

from __future__ import annotations

from typing import Any

import httpx


def answered(response: httpx.Response, status: int = 200) -> Any:
    """The body of a response with `status`, or the failure with what the API said."""
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error of a response with `status`, with its targets and codes listed."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    details = error.get("details", [])
    error["targets"] = [d.get("target") for d in details]
    error["codes"] = [d.get("code") for d in details]
    return error
