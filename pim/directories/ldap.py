"""A `Directory` on LDAP: OpenLDAP (groupOfNames) or Active Directory (group).

A group is the entry at PIM_LDAP_GROUP_DN, a principal the DN at PIM_LDAP_USER_DN
(templates; ids are escaped as RDN values). Members are values of `member`;
owners are values of `owner` (OpenLDAP) or the single-valued `managedBy` (AD).

Errors become what the activity retries need:
- the group is missing, or is not a group: `ApplicationError(type=
  "directory_group_not_found", non_retryable=True)` from add, holds and holders.
  `remove` treats it as success: a group that is gone holds nobody, and a
  revocation must never fail for good (workflows/options.py REVOKE);
- no rights, a malformed DN, AD's principal missing, another AD owner:
  non-retryable for add (`directory_forbidden`, `directory_bad_request`,
  `directory_principal_not_found`, `directory_owner_conflict`), retryable for remove;
- server down, timeouts, busy, refused bind: retryable (`directory_unavailable`,
  `directory_auth_failed`), so Temporal retries until the server is back.

ldap3 is synchronous: every call runs in a thread with a connection of its own
(connect, bind, one or two operations, unbind). Grants are rare and a pool's
stale connections after a server restart are a worse problem than a handshake."""

from __future__ import annotations

import asyncio
import math
import ssl
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from ldap3 import (
    ANONYMOUS,
    AUTO_BIND_NO_TLS,
    BASE,
    MODIFY_ADD,
    MODIFY_DELETE,
    MODIFY_REPLACE,
    NONE,
    SIMPLE,
    Connection,
    Server,
    Tls,
)
from ldap3.core import exceptions as lx
from ldap3.core.results import (
    RESULT_ADMIN_LIMIT_EXCEEDED,
    RESULT_BUSY,
    RESULT_INSUFFICIENT_ACCESS_RIGHTS,
    RESULT_OTHER,
    RESULT_TIME_LIMIT_EXCEEDED,
    RESULT_UNAVAILABLE,
)
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn
from temporalio.exceptions import ApplicationError

from pim.directories.interface import GROUP_NOT_FOUND
from pim.domain.models import AccessType
from pim.runtime.logging import get_logger

if TYPE_CHECKING:
    from pim.runtime.settings import PimSettings

log = get_logger("pim.directories.ldap")

TRANSIENT_RESULTS = (RESULT_BUSY, RESULT_UNAVAILABLE, RESULT_OTHER, RESULT_TIME_LIMIT_EXCEEDED, RESULT_ADMIN_LIMIT_EXCEEDED)


@dataclass(frozen=True)
class Flavor:
    group_class: str
    owner_attribute: str
    single_owner: bool  # AD's managedBy holds one DN
    needs_member: bool  # groupOfNames: MUST member


FLAVORS = {
    "openldap": Flavor(group_class="groupOfNames", owner_attribute="owner", single_owner=False, needs_member=True),
    "ad": Flavor(group_class="group", owner_attribute="managedBy", single_owner=True, needs_member=False),
}
MEMBER_ATTRIBUTE = "member"


def escape_value(value: str) -> str:
    """An RDN value (RFC 4514); ldap3 leaves NUL as a backslash and a raw NUL."""
    return escape_rdn(value).replace("\\\x00", "\\00")


def unescape_value(value: str) -> str:
    """The inverse of RFC 4514 escaping: `\\,` and `\\2C` (hex pairs are UTF-8 bytes)."""
    out, i = bytearray(), 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out.append(int(pair, 16))
                i += 3
                continue
            char, i = value[i + 1], i + 1
        out.extend(char.encode())
        i += 1
    return out.decode(errors="replace")


def split_dn(dn: str) -> list[tuple[str, str]]:
    """(attribute type, escaped value) per RDN. Lenient where servers are (spaces around
    separators, `;` for `,`), unlike ldap3's parse_dn, which rejects an escaped trailing
    space once it strips. A multi-valued RDN (`+`) stays one value. ValueError if no DN."""
    rdns, buf, i = [], "", 0
    while i < len(dn):
        if dn[i] == "\\":
            buf, i = buf + dn[i : i + 2], i + 2
            continue
        if dn[i] in ",;":
            rdns.append(buf)
            buf = ""
        else:
            buf += dn[i]
        i += 1
    rdns.append(buf)
    if len(rdns) == 1 and not rdns[0].strip():
        return []
    parts = []
    for rdn in rdns:
        attr, sep, value = rdn.partition("=")
        if not sep or not attr.strip():
            raise ValueError(f"not a DN: {dn!r}")
        value = value.lstrip(" ")
        while value.endswith(" "):
            body = value[:-1]
            if (len(body) - len(body.rstrip("\\"))) % 2:  # an escaped space: part of the value
                break
            value = body
        parts.append((attr.strip(), value))
    return parts


def dn_key(dn: str) -> tuple[tuple[str, str], ...]:
    """A DN for comparison: attribute types and values folded to lower case, values
    unescaped. Good enough for the case-insensitive naming attributes (uid, cn, ou,
    dc) that user and group DNs are made of; a string that is no DN compares as is."""
    try:
        return tuple((attr.lower(), unescape_value(value).lower()) for attr, value in split_dn(dn))
    except ValueError:
        return (("", dn),)


class DnTemplate:
    """A DN template with one id field, both ways: render an id into a DN, and read
    the id back out of a DN the directory returns (None when it does not fit)."""

    _SENTINEL = "PIMIDSENTINEL0"

    def __init__(self, template: str, field: str, base: str) -> None:
        if not base:  # templates end in ",{base}": without a base, the rest is the whole DN
            template = template.replace(",{base}", "").replace("{base}", "")
        self.template, self.field, self.base = template, field, base
        parts = split_dn(template.format(**{field: self._SENTINEL, "base": base}))
        spots = [i for i, (_, value) in enumerate(parts) if self._SENTINEL in value]
        if len(spots) != 1:
            raise ValueError(f"DN template {template!r} must hold {{{field}}} in exactly one RDN value")
        self.spot = spots[0]
        prefix, _, suffix = parts[self.spot][1].partition(self._SENTINEL)
        self.prefix, self.suffix = unescape_value(prefix).lower(), unescape_value(suffix).lower()
        self.shape = [(attr.lower(), unescape_value(value).lower()) for attr, value in parts]

    def render(self, ident: str) -> str:
        return self.template.format(**{self.field: escape_value(ident), "base": self.base})

    def ident(self, dn: str) -> str | None:
        try:
            parts = split_dn(dn)
        except ValueError:
            return None
        if len(parts) != len(self.shape):
            return None
        ident = None
        for i, ((attr, value), (want_attr, want_value)) in enumerate(zip(parts, self.shape)):
            if attr.lower() != want_attr:
                return None
            value = unescape_value(value)
            if i == self.spot:
                folded = value.lower()
                if not (folded.startswith(self.prefix) and folded.endswith(self.suffix)) or len(value) < len(self.prefix) + len(
                    self.suffix
                ):
                    return None
                ident = value[len(self.prefix) : len(value) - len(self.suffix)]
            elif value.lower() != want_value:
                return None
        return ident or None


class LdapDirectory:
    def __init__(
        self,
        url: str,
        *,
        base_dn: str = "",
        bind_dn: str | None = None,
        bind_password: str | None = None,
        group_dn: str = "cn={group_id},ou=groups,{base}",
        user_dn: str = "uid={principal_id},ou=people,{base}",
        flavor: str = "openldap",
        empty_member: str = "",
        ca_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"LDAP flavor {flavor!r}: expected one of {', '.join(FLAVORS)}")
        self.url = url
        self.flavor = FLAVORS[flavor]
        self.groups = DnTemplate(group_dn, "group_id", base_dn)
        self.users = DnTemplate(user_dn, "principal_id", base_dn)
        self.empty_member = empty_member
        self._empty_key = dn_key(empty_member)
        self._bind_dn, self._password = bind_dn, bind_password
        self._timeout = timeout
        self._tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file) if url.lower().startswith("ldaps://") else None

    @classmethod
    def from_settings(cls, settings: PimSettings) -> LdapDirectory:
        password = settings.ldap_bind_password.get_secret_value() if settings.ldap_bind_password else None
        return cls(
            settings.ldap_url,
            base_dn=settings.ldap_base_dn,
            bind_dn=settings.ldap_bind_dn,
            bind_password=password,
            group_dn=settings.ldap_group_dn,
            user_dn=settings.ldap_user_dn,
            flavor=settings.ldap_flavor,
            empty_member=settings.ldap_empty_member,
            ca_file=settings.ldap_ca_file,
            timeout=settings.ldap_timeout,
        )

    def __repr__(self) -> str:  # never the password
        return f"LdapDirectory(url={self.url!r}, bind_dn={self._bind_dn!r}, group_class={self.flavor.group_class!r})"

    def _attribute(self, access: AccessType) -> str:
        return self.flavor.owner_attribute if AccessType(access) is AccessType.owner else MEMBER_ATTRIBUTE

    # The Directory protocol: each call in a worker thread.

    async def add(self, group_id: str, access: AccessType, principal_id: str) -> None:
        await asyncio.to_thread(self._add, group_id, AccessType(access), principal_id)

    async def remove(self, group_id: str, access: AccessType, principal_id: str) -> None:
        await asyncio.to_thread(self._remove, group_id, AccessType(access), principal_id)

    async def holds(self, group_id: str, access: AccessType, principal_id: str) -> bool:
        return await asyncio.to_thread(self._holds, group_id, AccessType(access), principal_id)

    async def holders(self, group_id: str, access: AccessType) -> set[str]:
        """Principal ids; a value that does not fit the user template is reported as its DN."""
        found = await asyncio.to_thread(self._values, group_id, AccessType(access))
        return {self.users.ident(dn) or dn for dn in found}

    # Blocking implementations.

    def _add(self, group_id: str, access: AccessType, principal_id: str) -> None:
        group, user, attribute = self.groups.render(group_id), self.users.render(principal_id), self._attribute(access)
        with self._connection("add", permanent=True) as conn:
            if access is AccessType.owner and self.flavor.single_owner:
                return self._set_single_owner(conn, group_id, group, user, attribute)
            try:
                conn.modify(group, {attribute: [(MODIFY_ADD, [user])]})
            except (lx.LDAPAttributeOrValueExistsResult, lx.LDAPEntryAlreadyExistsResult):
                return  # already there (AD answers entryAlreadyExists)
            except lx.LDAPNoSuchObjectResult as error:
                # The group, or (AD checks member DNs) the principal: ask about the group.
                self._require_group(conn, group_id, group)
                raise ApplicationError(
                    f"principal {principal_id!r} not found in the directory ({user})",
                    type="directory_principal_not_found",
                    non_retryable=True,
                ) from error
            if attribute == MEMBER_ATTRIBUTE and self.flavor.needs_member:
                self._drop_placeholder(conn, group)
        log.info("ldap_added", group_id=group_id, access=access.value, principal_id=principal_id)

    def _remove(self, group_id: str, access: AccessType, principal_id: str) -> None:
        group, user, attribute = self.groups.render(group_id), self.users.render(principal_id), self._attribute(access)
        with self._connection("remove", permanent=False) as conn:
            try:
                if access is AccessType.owner and self.flavor.single_owner:
                    self._clear_single_owner(conn, group_id, group, user, attribute)
                else:
                    self._remove_value(conn, group, attribute, user)
            except lx.LDAPNoSuchObjectResult:
                # The group (or, in AD, the principal's entry) is gone: it cannot hold the access.
                log.warning(
                    "ldap_remove_target_missing",
                    group_id=group_id,
                    access=access.value,
                    principal_id=principal_id,
                    group_dn=group,
                    user_dn=user,
                )
                return
        log.info("ldap_removed", group_id=group_id, access=access.value, principal_id=principal_id)

    def _remove_value(self, conn: Connection, group: str, attribute: str, user: str) -> None:
        try:
            conn.modify(group, {attribute: [(MODIFY_DELETE, [user])]})
        except lx.LDAPNoSuchAttributeResult:
            return  # not there: nothing to take away
        except lx.LDAPObjectClassViolationResult:
            if not (attribute == MEMBER_ATTRIBUTE and self.flavor.needs_member):
                raise
            # The last member of a groupOfNames: the placeholder takes its place, in one operation.
            try:
                conn.modify(group, {attribute: [(MODIFY_ADD, [self.empty_member]), (MODIFY_DELETE, [user])]})
            except lx.LDAPNoSuchAttributeResult:
                return  # removed meanwhile by someone else
        except lx.LDAPUnwillingToPerformResult:
            # AD's answer to removing a value that is not there (ERROR_MEMBER_NOT_IN_GROUP).
            if dn_key(user) not in {dn_key(v) for v in self._read(conn, group, attribute)}:
                return
            raise

    def _drop_placeholder(self, conn: Connection, group: str) -> None:
        """After an add, the stand-in for "nobody" is no longer needed (tidiness only)."""
        try:
            conn.modify(group, {MEMBER_ATTRIBUTE: [(MODIFY_DELETE, [self.empty_member])]})
        except (lx.LDAPNoSuchAttributeResult, lx.LDAPObjectClassViolationResult):
            pass

    def _set_single_owner(self, conn: Connection, group_id: str, group: str, user: str, attribute: str) -> None:
        current = self._read(conn, group, attribute, group_id=group_id)
        if any(dn_key(v) == dn_key(user) for v in current):
            return
        if current:
            # Replacing would silently take ownership away from someone PIM may not manage.
            raise ApplicationError(
                f"group {group_id!r} already has an owner ({current[0]}) and {attribute} holds one",
                type="directory_owner_conflict",
                non_retryable=True,
            )
        conn.modify(group, {attribute: [(MODIFY_REPLACE, [user])]})

    def _clear_single_owner(self, conn: Connection, group_id: str, group: str, user: str, attribute: str) -> None:
        for value in self._read(conn, group, attribute):
            if dn_key(value) == dn_key(user):
                try:
                    conn.modify(group, {attribute: [(MODIFY_DELETE, [value])]})
                except lx.LDAPNoSuchAttributeResult:
                    pass

    def _holds(self, group_id: str, access: AccessType, principal_id: str) -> bool:
        group, user, attribute = self.groups.render(group_id), self.users.render(principal_id), self._attribute(access)
        with self._connection("holds", permanent=True) as conn:
            query = f"(&(objectClass={self.flavor.group_class})({attribute}={escape_filter_chars(user)}))"
            try:
                if conn.search(group, query, search_scope=BASE, attributes=["1.1"]):
                    return True
            except lx.LDAPNoSuchObjectResult:
                raise self._group_not_found(group_id, group) from None
            self._require_group(conn, group_id, group)
            return False

    def _values(self, group_id: str, access: AccessType) -> list[str]:
        group, attribute = self.groups.render(group_id), self._attribute(access)
        with self._connection("holders", permanent=True) as conn:
            values = self._read(conn, group, attribute, group_id=group_id)
        return [v for v in values if dn_key(v) != self._empty_key]

    def _read(self, conn: Connection, group: str, attribute: str, group_id: str | None = None) -> list[str]:
        """The attribute's values on the group entry (AD's ranged `member` is followed by ldap3)."""
        try:
            conn.search(group, f"(objectClass={self.flavor.group_class})", search_scope=BASE, attributes=[attribute])
        except lx.LDAPNoSuchObjectResult:
            if group_id is None:
                raise
            raise self._group_not_found(group_id, group) from None
        entries = [r for r in conn.response or [] if r.get("type") == "searchResEntry"]
        if not entries:
            if group_id is None:
                return []
            raise self._group_not_found(group_id, group)
        raw = entries[0].get("raw_attributes") or {}
        values: list[bytes | str] = next((v for k, v in raw.items() if k.split(";")[0].lower() == attribute.lower()), [])
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    def _require_group(self, conn: Connection, group_id: str, group: str) -> None:
        try:
            found = conn.search(group, f"(objectClass={self.flavor.group_class})", search_scope=BASE, attributes=["1.1"])
        except lx.LDAPNoSuchObjectResult:
            found = False
        if not found or not conn.response:
            raise self._group_not_found(group_id, group)

    def _group_not_found(self, group_id: str, group: str) -> ApplicationError:
        return ApplicationError(
            f"group {group_id!r} not found in the directory (no {self.flavor.group_class} at {group})",
            type=GROUP_NOT_FOUND,
            non_retryable=True,
        )

    @contextmanager
    def _connection(self, operation: str, *, permanent: bool) -> Iterator[Connection]:
        """A bound connection; LDAP failures become the ApplicationErrors described above.
        `permanent`: whether errors that no retry fixes may stop the activity for good."""
        conn = None
        try:
            # A Server of its own each time: ldap3 marks an address that once failed as
            # unavailable, and a shared Server would refuse the server after it came back.
            server = Server(self.url, connect_timeout=self._timeout, get_info=NONE, tls=self._tls)
            conn = Connection(
                server,
                user=self._bind_dn,
                password=self._password,
                authentication=SIMPLE if self._bind_dn else ANONYMOUS,
                auto_bind=AUTO_BIND_NO_TLS,
                receive_timeout=math.ceil(self._timeout),  # ldap3 packs it as whole seconds
                raise_exceptions=True,
                read_only=False,
            )
            yield conn
        except ApplicationError:
            raise
        except (lx.LDAPInvalidCredentialsResult, lx.LDAPBindError) as error:
            raise ApplicationError(
                f"LDAP bind to {self.url} as {self._bind_dn!r} refused during {operation}: {_describe(error)}",
                type="directory_auth_failed",
            ) from None
        except lx.LDAPOperationResult as error:
            if error.result in TRANSIENT_RESULTS:
                raise ApplicationError(
                    f"LDAP {operation} at {self.url}: {_describe(error)}", type="directory_unavailable"
                ) from None
            kind = "directory_forbidden" if error.result == RESULT_INSUFFICIENT_ACCESS_RIGHTS else "directory_bad_request"
            raise ApplicationError(
                f"LDAP {operation} refused by {self.url}: {_describe(error)}", type=kind, non_retryable=permanent
            ) from None
        except lx.LDAPInvalidDnError as error:
            raise ApplicationError(
                f"LDAP {operation}: invalid DN ({error})", type="directory_bad_request", non_retryable=permanent
            ) from None
        except lx.LDAPException as error:  # socket, timeout, session ended by the server
            raise ApplicationError(
                f"LDAP server {self.url} unreachable during {operation}: {type(error).__name__}: {error}",
                type="directory_unavailable",
            ) from None
        finally:
            if conn is not None and conn.bound:
                try:
                    conn.unbind()
                except lx.LDAPException:
                    pass


def _describe(error: lx.LDAPException) -> str:
    """The result and the server's message, without ldap3's repr of the request. Only an
    LDAPOperationResult carries a result: the others (LDAPBindError, when a bind ends
    unbound without a result ldap3 raises for; socket errors, timeouts) give their text."""
    if isinstance(error, lx.LDAPOperationResult):
        return f"{error.description or error.result}" + (f" ({error.message})" if error.message else "")
    return str(error) or type(error).__name__
