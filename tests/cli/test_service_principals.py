"""`pim users add --service`: a service principal, what an application's
client-credentials token names (pim/api/auth.py), which may hold directory roles."""

from __future__ import annotations

import json

from tests.cli.conftest import ok, one_error_line


def test_a_service_principal_is_added_and_granted_a_role(pim):
    ok(pim("db", "upgrade"))
    ok(pim("bootstrap", "root"))
    assert ok(pim("users", "add", "svc-sync", "--service", "--name", "Directory sync", "--as", "root")) == (
        "service principal svc-sync added\n"
    )
    assert ok(pim("roles", "grant", "svc-sync", "Groups Administrator", "--as", "root")) == (
        "svc-sync is now Groups Administrator\n"
    )
    assert ok(pim("users", "add", "ann", "--as", "root")) == "user ann added\n"
    audit = json.loads(ok(pim("audit", "--principal", "svc-sync", "--json")))
    assert [(e["action"], e["actor"]) for e in audit] == [("service_principal_added", "root"), ("role_granted", "root")]
    # A group is no principal to grant a role to.
    ok(pim("groups", "create", "grp-web", "--kind", "security", "--as", "root"))
    assert "no user or service principal" in one_error_line(
        pim("roles", "grant", "grp-web", "Groups Administrator", "--as", "root"), 1
    )
