"""What LdapDirectory makes of each kind of ldap3 exception, without a server: every
one becomes the ApplicationError the activity's retries expect (never an
AttributeError from describing an exception that has no LDAP result), and no
message names the bind password. The same against a real slapd: tests/directories."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from ldap3.core import exceptions as lx
from ldap3.core.results import (
    RESULT_BUSY,
    RESULT_INSUFFICIENT_ACCESS_RIGHTS,
    RESULT_INVALID_CREDENTIALS,
    RESULT_OTHER,
    RESULT_UNWILLING_TO_PERFORM,
)
from temporalio.exceptions import ApplicationError

from pim.directories import ldap
from pim.directories.ldap import LdapDirectory, _describe
from pim.domain.models import AccessType

PASSWORD = "never-in-a-message-42"
BIND_DN = "cn=pim,dc=pim,dc=test"


def result(code: int, description: str | None, message: str | None = None) -> lx.LDAPOperationResult:
    """An LDAPOperationResult as ldap3 raises it (the subclass for the result code)."""
    return lx.LDAPOperationResult(result=code, description=description, dn="", message=message, response_type="bindResponse")


# (exception, ApplicationError type, retryable even for add, text the message holds)
CASES = [
    pytest.param(
        lx.LDAPBindError("automatic bind not successful - invalidCredentials"),
        "directory_auth_failed",
        True,
        "automatic bind not successful - invalidCredentials",
        id="bind-error",
    ),
    pytest.param(lx.LDAPBindError(), "directory_auth_failed", True, "LDAPBindError", id="bind-error-without-text"),
    pytest.param(
        result(RESULT_INVALID_CREDENTIALS, "invalidCredentials"), "directory_auth_failed", True, "invalidCredentials", id="49"
    ),
    pytest.param(
        lx.LDAPSocketOpenError("socket connection error while opening: [Errno 111] Connection refused"),
        "directory_unavailable",
        True,
        "Connection refused",
        id="refused",
    ),
    pytest.param(
        lx.LDAPSocketReceiveError("error receiving data: timed out"), "directory_unavailable", True, "timed out", id="timeout"
    ),
    pytest.param(lx.LDAPResponseTimeoutError("no response from server"), "directory_unavailable", True, "", id="no-response"),
    pytest.param(
        lx.LDAPSessionTerminatedByServerError("session terminated by server"), "directory_unavailable", True, "", id="ended"
    ),
    pytest.param(result(RESULT_BUSY, "busy", "try later"), "directory_unavailable", True, "busy (try later)", id="busy"),
    pytest.param(result(RESULT_OTHER, None), "directory_unavailable", True, "80", id="other-without-description"),
    pytest.param(
        result(RESULT_INSUFFICIENT_ACCESS_RIGHTS, "insufficientAccessRights", "no write access"),
        "directory_forbidden",
        False,
        "insufficientAccessRights (no write access)",
        id="forbidden",
    ),
    pytest.param(
        result(RESULT_UNWILLING_TO_PERFORM, "unwillingToPerform"), "directory_bad_request", False, "unwilling", id="unwilling"
    ),
    pytest.param(lx.LDAPOperationResult(), "directory_bad_request", False, "None", id="operation-result-without-result"),
    pytest.param(lx.LDAPInvalidDnError("bad DN"), "directory_bad_request", False, "bad DN", id="invalid-dn"),
]


class FailingConnection:
    """Stands in for ldap3's Connection: fails at the bind or at the first operation."""

    def __init__(self, error: Exception, *, at_bind: bool) -> None:
        self.error, self.at_bind, self.bound = error, at_bind, False

    def __call__(self, server: object, **kwargs: object) -> FailingConnection:
        assert kwargs["password"] == PASSWORD
        if self.at_bind:
            raise self.error
        self.bound = True
        return self

    def modify(self, *args: object, **kwargs: object) -> bool:
        raise self.error

    search = modify

    def unbind(self) -> None:
        self.bound = False


def directory() -> LdapDirectory:
    return LdapDirectory("ldap://ldap.invalid", base_dn="dc=pim,dc=test", bind_dn=BIND_DN, bind_password=PASSWORD)


@pytest.mark.parametrize("at_bind", [True, False], ids=["at-bind", "at-operation"])
@pytest.mark.parametrize(("error", "kind", "retryable", "text"), CASES)
async def test_every_ldap3_failure_becomes_the_application_error_for_it(
    monkeypatch: pytest.MonkeyPatch, error: Exception, kind: str, retryable: bool, text: str, at_bind: bool
) -> None:
    connection = FailingConnection(error, at_bind=at_bind)
    monkeypatch.setattr(ldap, "Connection", connection)
    for call, permanent in (
        (directory().add("grp-ops", AccessType.member, "bob"), True),
        (directory().remove("grp-ops", AccessType.member, "bob"), False),
        (directory().holders("grp-ops", AccessType.owner), True),
    ):
        with pytest.raises(ApplicationError) as caught:
            await call
        failure = caught.value
        assert failure.type == kind
        assert failure.non_retryable is (permanent and not retryable)
        assert text in failure.message
        assert PASSWORD not in str(failure) and failure.__cause__ is None
        assert not connection.bound  # unbound again after a failed operation


@pytest.mark.parametrize(("error", "kind", "retryable", "text"), CASES)
def test_describe_takes_any_ldap3_exception(error: lx.LDAPException, kind: str, retryable: bool, text: str) -> None:
    described = _describe(error)
    assert described and "ldap3" not in described


def tlv(tag: int, body: bytes) -> bytes:
    assert len(body) < 128  # BER's short length form is all this needs
    return bytes([tag, len(body)]) + body


@pytest.fixture
def unfinished_bind_server() -> Iterator[str]:
    """An LDAP server that answers every bind with saslBindInProgress: a result ldap3
    does not raise for, so that the bind ends unbound and ldap3 itself raises LDAPBindError."""
    bind_response = tlv(0x61, tlv(0x0A, bytes([14])) + tlv(0x04, b"") + tlv(0x04, b""))
    listener = socket.create_server(("127.0.0.1", 0))
    stopped = threading.Event()

    def serve() -> None:
        while not stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with client:
                request = client.recv(4096)  # LDAPMessage: SEQUENCE { messageID INTEGER, ... }
                message_id = request[4 : 4 + request[3]] if len(request) > 4 else b"\x01"
                client.sendall(tlv(0x30, tlv(0x02, message_id) + bind_response))
                client.recv(4096)  # the unbind, or the end of the connection

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"ldap://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopped.set()
        listener.close()
        thread.join(5)


async def test_a_bind_that_ldap3_reports_as_ldap_bind_error_is_retryable(unfinished_bind_server: str) -> None:
    directory = LdapDirectory(
        unfinished_bind_server, base_dn="dc=pim,dc=test", bind_dn=BIND_DN, bind_password=PASSWORD, timeout=2
    )
    with pytest.raises(ApplicationError) as caught:
        await directory.add("grp-ops", AccessType.member, "bob")
    assert caught.value.type == "directory_auth_failed" and not caught.value.non_retryable
    assert "saslBindInProgress" in caught.value.message and PASSWORD not in str(caught.value)
