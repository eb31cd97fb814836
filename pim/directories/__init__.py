"""Directories other than the store's own table, and the one place that picks one
from the settings (PIM_DIRECTORY): the worker, the admin CLI and `pim directory diff`
all go through `build_directory`, so that they write and read the same directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pim.directories.interface import Directory
from pim.directories.store_directory import StoreDirectory

if TYPE_CHECKING:
    from pim.runtime.settings import PimSettings
    from pim.store import Store


class DirectoryNotAvailable(RuntimeError):
    """PIM_DIRECTORY names a directory this installation cannot use."""


def build_directory(settings: PimSettings, store: Store) -> Directory:
    kind = settings.directory
    if kind == "store":
        return StoreDirectory(store)
    if kind == "ldap":
        from pim.directories.ldap import LdapDirectory  # ldap3 is only imported when it is used

        return LdapDirectory.from_settings(settings)
    if kind == "msgraph":
        from pim.directories.msgraph import GraphDirectory

        return GraphDirectory.from_settings(settings)
    raise DirectoryNotAvailable(f"PIM_DIRECTORY={kind!r}: expected store, ldap or msgraph")
