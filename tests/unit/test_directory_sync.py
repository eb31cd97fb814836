"""The directory comparison (pim.directories.sync), the LDAP DN templates and the
choice of directory from the settings: pure, no server."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from pim.directories import DirectoryNotAvailable, build_directory
from pim.directories.ldap import DnTemplate, LdapDirectory, dn_key, escape_value, unescape_value
from pim.directories.store_directory import StoreDirectory
from pim.directories.sync import compare
from pim.domain.models import AccessType
from pim.runtime.settings import PimSettings

BASE = "dc=pim,dc=test"


def test_compare_sorts_missing_unexpected_and_ok():
    diff = compare("grp-ops", AccessType.member, expected={"alice", "carol"}, held=["carol", "mallory", "carol"])
    assert (diff.missing, diff.unexpected, diff.ok) == (["alice"], ["mallory"], ["carol"])
    assert not diff.in_sync


def test_compare_in_sync_and_empty():
    assert compare("g", AccessType.owner, expected=["bob"], held={"bob"}).in_sync
    empty = compare("g", AccessType.member, expected=[], held=[])
    assert empty.in_sync and empty.ok == [] and empty.access is AccessType.member


ODD_IDS = [
    "o'brien",
    "a,b",
    "x+y=z",
    " lead",
    "trail ",
    "#hash",
    "back\\slash",
    'quote"d',
    "semi;colon<>",
    "café",
    "dots.and@at-sign_1",
]


@pytest.mark.parametrize("ident", ODD_IDS)
def test_user_template_round_trips_odd_ids(ident):
    users = DnTemplate("uid={principal_id},ou=people,{base}", "principal_id", BASE)
    dn = users.render(ident)
    assert dn.endswith(",ou=people,dc=pim,dc=test") and dn.count(",") >= 3
    assert users.ident(dn) == ident
    assert unescape_value(escape_value(ident)) == ident


def test_user_template_reads_what_the_server_returns():
    users = DnTemplate("uid={principal_id},ou=people,{base}", "principal_id", BASE)
    assert users.ident("UID=bob, OU=People,DC=pim,DC=test") == "bob"  # types, case and spaces as a server may write them
    assert users.ident("uid=a\\2Cb,ou=people,dc=pim,dc=test") == "a,b"  # hex escapes too
    assert users.ident("uid=caf\\C3\\A9,ou=people,dc=pim,dc=test") == "café"
    assert users.ident("cn=bob,ou=people,dc=pim,dc=test") is None
    assert users.ident("uid=bob,ou=people,dc=other,dc=test") is None
    assert users.ident("uid=bob,ou=sub,ou=people,dc=pim,dc=test") is None
    assert users.ident("not a dn") is None


def test_template_with_prefix_and_suffix():
    users = DnTemplate("cn=user-{principal_id}-x,{base}", "principal_id", BASE)
    assert users.render("bob") == "cn=user-bob-x,dc=pim,dc=test"
    assert users.ident("CN=User-bob-X,dc=pim,dc=test") == "bob"
    assert users.ident("cn=user--x,dc=pim,dc=test") is None


def test_template_needs_the_field_in_one_value():
    with pytest.raises(ValueError, match="exactly one"):
        DnTemplate("ou=people,{base}", "principal_id", BASE)


def test_dn_key_folds_case_spaces_and_escapes():
    assert dn_key("UID=Bob , ou=People,dc=pim,dc=test") == dn_key("uid=bob,ou=people,dc=pim,dc=test")
    assert dn_key("uid=a\\2cb,dc=x") == dn_key("uid=a\\,b,dc=x")
    assert dn_key("") == ()


def test_build_directory_follows_the_setting():
    store = object()
    assert isinstance(build_directory(PimSettings(directory="store"), store), StoreDirectory)
    ldap = build_directory(
        PimSettings(
            directory="ldap",
            ldap_url="ldaps://ldap.example:636",
            ldap_base_dn=BASE,
            ldap_bind_dn="cn=pim,dc=pim,dc=test",
            ldap_bind_password=SecretStr("hunter2-not-logged"),
            ldap_flavor="ad",
        ),
        store,
    )
    assert isinstance(ldap, LdapDirectory)
    assert ldap.flavor.group_class == "group" and ldap.flavor.owner_attribute == "managedBy"
    assert ldap.groups.render("grp-ops") == "cn=grp-ops,ou=groups,dc=pim,dc=test"
    assert "hunter2" not in repr(ldap) and "hunter2" not in repr(PimSettings(ldap_bind_password="hunter2"))


def test_ldap_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("PIM_DIRECTORY", "ldap")
    monkeypatch.setenv("PIM_LDAP_USER_DN", "cn={principal_id},ou=staff,{base}")
    monkeypatch.setenv("PIM_LDAP_BIND_PASSWORD", "s3cret")
    settings = PimSettings()
    assert settings.directory == "ldap" and settings.ldap_flavor == "openldap" and settings.ldap_empty_member == ""
    assert settings.ldap_bind_password.get_secret_value() == "s3cret" and "s3cret" not in str(settings.model_dump())
    assert LdapDirectory.from_settings(settings).users.render("bob") == "cn=bob,ou=staff"  # no base: the template is the whole DN


def test_msgraph_without_its_settings_is_a_clear_error():
    with pytest.raises((DirectoryNotAvailable, ValueError), match="(?i)graph"):
        build_directory(PimSettings(directory="msgraph"), object())
