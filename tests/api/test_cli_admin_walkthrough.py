"""The README's second walk-through, an administrator setting up a tenant from
nothing, run line by line through the HTTP API of a real `pim dev` (no seed):
`pim bootstrap root` is server-side and runs where `pim dev` does; every other
line is run by the person its `--as` names, signed in with `pim login` (lines
that name nobody: root). Lines marked "# refused" must fail with one line, exit 1.

The walk-through enrols ben for TOTP itself; in API mode everyone signs in with a
TOTP code, so root enrols the others (ann, gil) through the API before they first
act (tests/api/cli_api.py, `People.sign_in`)."""

from __future__ import annotations

import json
import re

import pytest

from tests.api.cli_api import People, running_pim_dev, without_as
from tests.devserver.test_admin_walkthrough import walkthrough_lines


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    with running_pim_dev(tmp_path_factory.mktemp("tenant")) as server:
        yield server


async def test_an_administrator_sets_up_a_tenant_from_nothing_through_the_api(dev):
    lines = walkthrough_lines()
    assert lines[0].startswith("pim bootstrap root")
    people = People(dev, administrator="root")
    code, out, err = await people.sh(lines[0], "root")  # server-side: the local store, no sign-in
    assert code == 0 and "otpauth://" in out, out + err
    for line in lines[1:]:
        command, user = without_as(line)
        code, out, err = await people.run(command, as_user=user)
        if "# refused" in line:
            assert code == 1 and out == "", f"{line}\n{out}{err}"
            assert re.fullmatch(r"error: [^\n]+\n", err), err  # one clear line
        else:
            assert code == 0, f"{line}\n{out}{err}"

    # What the administrator set up holds: ben activated the database group after root approved.
    code, out, _ = await people.run("pim members grp-db --json")
    assert [m["principal_id"] for m in json.loads(out)["members"]] == ["ben"]
    code, out, _ = await people.run("pim members grp-web --json")
    assert [m["principal_id"] for m in json.loads(out)["members"]] == ["ann"]
    code, out, _ = await people.run("pim audit --group grp-db --json")
    rows = json.loads(out)
    actions = [(row["action"], row["actor"]) for row in rows]
    for expected in [
        ("group_onboarded", "root"),
        ("assignment_created", "root"),
        ("policy_changed", "root"),
        ("activation_requested", "ben"),
        ("request_approved", "root"),
        ("access_granted", "ben"),
    ]:
        assert expected in actions, expected
    refusals = [row["details"]["reason"] for row in rows if row["action"] == "refused"]
    assert any("role-assignable" in reason for reason in refusals)
    assert any("own request" in reason for reason in refusals)
    code, out, _ = await people.run("pim audit verify --json")
    assert code == 0 and json.loads(out)["ok"] is True
