"""Fixtures for the directory tests: a real slapd (tests/directories/slapd.py), reset
to the base entries before each test that asks for it, and an LdapDirectory on it."""

from __future__ import annotations

import pytest

from pim.directories.ldap import LdapDirectory
from tests.directories.slapd import ROOT_DN, ROOT_PASSWORD, SUFFIX, Slapd


@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory):
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def slapd(slapd_server: Slapd) -> Slapd:
    """The session's slapd, running (a test may have stopped it) and holding the base entries only."""
    if slapd_server.process is None:
        slapd_server.start()
    slapd_server.reset()
    return slapd_server


def ldap_settings(server: Slapd) -> dict[str, str]:
    """The PIM_ environment for a worker or the CLI on this slapd."""
    return {
        "PIM_DIRECTORY": "ldap",
        "PIM_LDAP_URL": server.url,
        "PIM_LDAP_BASE_DN": SUFFIX,
        "PIM_LDAP_BIND_DN": ROOT_DN,
        "PIM_LDAP_BIND_PASSWORD": ROOT_PASSWORD,
        "PIM_LDAP_TIMEOUT": "3",
    }


@pytest.fixture
def ldap_directory(slapd: Slapd) -> LdapDirectory:
    return LdapDirectory(slapd.url, base_dn=SUFFIX, bind_dn=ROOT_DN, bind_password=ROOT_PASSWORD, timeout=2.5)
