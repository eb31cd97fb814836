"""`--mfa-code` is checked for the shape of a TOTP code (6 digits) before anything
is sent or opened: a malformed one is one line naming the option, exit 2, and the
code itself is never echoed."""

from __future__ import annotations

import pytest

from tests.cli.conftest import one_error_line

COMMANDS = [
    ["request", "grp-ops", "--as", "alice", "--justification", "INC-42"],
    ["assign", "grp-ops", "bob", "--active", "--permanent", "--as", "admin"],
    ["mfa", "enroll", "alice", "--as", "alice"],
    ["sign", "request", "grp-ops", "--as", "alice", "--justification", "INC-42"],
]


@pytest.mark.parametrize("code", ["12ab", "12345", "1234567", "١٢٣٤٥٦", " 12345"])
@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_malformed_code_is_refused_before_anything_is_sent(pim, args, code):
    # Temporal is unreachable and the store does not exist: exit 2 means neither was tried.
    line = one_error_line(pim(*args, "--mfa-code", code), 2)
    assert line == "error: --mfa-code: a TOTP code is 6 digits"
