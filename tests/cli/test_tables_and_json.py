"""What the list commands print when stdout is not a terminal (a script, a pipe):
a header and one line per row, never wrapped or cut at 80 columns, no colour
codes; and with --json, the documented keys."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import ok

ROTA = "web team rota, " * 12  # an audit line far wider than 80 columns


@pytest.fixture
def tenant(pim):
    """An administrator sets up a small tenant with the command line (no Temporal needed)."""
    ok(pim("db", "upgrade"))
    ok(pim("bootstrap", "root"))
    ok(pim("users", "add", "ann", "--as", "root"))
    ok(pim("groups", "onboard", "grp-web", "--kind", "security", "--as", "root"))
    ok(pim("groups", "create", "grp-team", "--kind", "security", "--role-assignable", "--as", "root"))
    assignment_id = ok(pim("assign", "grp-team", "ann", "--active", "--permanent", "--justification", ROTA, "--as", "root"))
    return pim, assignment_id.strip()


def rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()]


def test_groups_list_is_a_table_and_json(tenant):
    pim, _ = tenant
    out = ok(pim("groups", "list"))
    assert rows(out) == [["group", "kind", "flags"], ["grp-team", "security", "role-assignable"], ["grp-web", "security", "pim"]]
    assert json.loads(ok(pim("groups", "list", "--json"))) == [
        {"id": "grp-team", "kind": "security", "role_assignable": True, "pim_enabled": False},
        {"id": "grp-web", "kind": "security", "role_assignable": False, "pim_enabled": True},
    ]


def test_assignments_list_is_a_table_and_json(tenant):
    pim, assignment_id = tenant
    out = ok(pim("assignments", "list"))
    assert rows(out) == [
        ["id", "kind", "access", "group", "principal", "state", "ends"],
        [assignment_id, "active", "member", "grp-team", "ann", "active", "permanent"],
    ]
    (listed,) = json.loads(ok(pim("assignments", "list", "--json")))
    assert set(listed) == {
        "id",
        "group_id",
        "access",
        "principal_id",
        "kind",
        "state",
        "starts_at",
        "ends_at",
        "created_by",
        "justification",
    }
    assert (listed["id"], listed["ends_at"], listed["justification"]) == (assignment_id, None, ROTA)


def test_a_long_audit_line_stays_one_line_without_colour_codes(tenant):
    pim, assignment_id = tenant
    out = ok(pim("audit", "--group", "grp-team"))
    lines = out.splitlines()
    assert lines[0].split() == ["at", "action", "actor", "group", "principal", "details"]
    (created,) = [line for line in lines if " assignment_created " in line]
    assert f"assignment_id={assignment_id}" in created and ROTA.strip() in created and len(created) > 200
    assert "\x1b" not in out and all(line == line.rstrip() for line in lines)
    entries = json.loads(ok(pim("audit", "--group", "grp-team", "--json")))
    assert [e["action"] for e in entries] == ["group_created", "assignment_created"]
    assert set(entries[0]) == {"at", "action", "actor", "request_id", "group_id", "access", "principal_id", "details"}


def test_members_is_a_table_and_json(tenant):
    pim, assignment_id = tenant
    assert rows(ok(pim("members", "grp-team"))) == [
        ["principal", "sources"],
        ["ann", "assignment", assignment_id, "(permanent)"],
    ]
    members = json.loads(ok(pim("members", "grp-team", "--json")))
    assert (members["group_id"], members["access"]) == ("grp-team", "member")
    assert [(m["principal_id"], [s["kind"] for s in m["sources"]]) for m in members["members"]] == [("ann", ["assignment"])]
    assert ok(pim("members", "grp-web")) == "nobody holds member of grp-web\n"
    assert json.loads(ok(pim("members", "grp-web", "--eligible", "--json")))["eligible"] == []


def test_user_text_in_a_cell_is_shown_as_text(tenant):
    """Rich markup and terminal escape sequences typed by a user are never interpreted."""
    pim, _ = tenant
    ok(
        pim(
            "assign",
            "grp-team",
            "root",
            "--active",
            "--permanent",
            "--justification",
            "[bold]x[/bold] \x1b[31mred",
            "--as",
            "root",
        )
    )
    out = ok(pim("audit", "--group", "grp-team"))
    assert "[bold]x[/bold] \\x1b[31mred" in out and "\x1b" not in out


def test_health_is_a_table_and_json_and_exits_1_when_a_check_fails(tenant):
    pim, _ = tenant
    result = pim("health")
    assert result.exit_code == 1  # Temporal is unreachable
    table = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert result.stdout.split()[:3] == ["check", "status", "detail"] and table == {"temporal": "FAILING", "store": "ok"}
    checks = json.loads(pim("health", "--json").stdout)
    assert [(c["name"], c["ok"]) for c in checks] == [("temporal", False), ("store", True)]
    assert all(set(c) == {"name", "ok", "detail"} for c in checks)
