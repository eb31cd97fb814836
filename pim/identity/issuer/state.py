"""What the issuer remembers between requests, in memory with expiry (it serves one
process): authorization codes, device codes and refresh tokens, and who signed in
for them.

A code or refresh token is spent by its first use. Presented again, it revokes the
refresh tokens that came from the same sign-in (RFC 6749 section 4.1.2, RFC 9700
section 4.14): whoever replays one has stolen it, or the client is broken."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import TokenMixin
from authlib.oauth2.rfc8628 import DeviceCredentialMixin
from authlib.oidc.core import AuthorizationCodeMixin

# What stays known of a spent code or refresh token, and of an expired device
# code (so that polling it says expired_token rather than invalid_grant).
SPENT_MEMORY = 3600.0
AMR_TOTP = ("otp", "mfa")  # RFC 8176: a one-time password, and a second factor besides the user's name


@dataclass(frozen=True)
class SignedIn:
    """A user who proved themselves with their TOTP code at `auth_time` (seconds)."""

    principal_id: str
    name: str
    email: str | None
    auth_time: int
    amr: tuple[str, ...] = AMR_TOTP

    def get_user_id(self) -> str:  # authlib's user interface
        return self.principal_id


@dataclass
class CodeRecord(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    user: SignedIn
    expires_at: float
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.user.auth_time

    def get_amr(self) -> list[str]:
        return list(self.user.amr)

    def get_acr(self) -> None:
        return None


@dataclass
class DeviceRecord(DeviceCredentialMixin):
    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires_at: float
    interval: float
    last_poll: float | None = None
    user: SignedIn | None = None  # set when approved
    denied: bool = False

    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_user_code(self) -> str:
        return self.user_code

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    @property
    def pending(self) -> bool:
        return self.user is None and not self.denied and not self.is_expired()


@dataclass
class RefreshRecord(TokenMixin):
    token: str
    client_id: str
    scope: str
    user: SignedIn
    expires_at: float
    family: str  # the sign-in it descends from

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(int(self.expires_at - time.time()), 0)

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return False  # a revoked token is no longer held


def normalize_user_code(text: str) -> str:
    """RFC 8628 section 6.1: case and punctuation do not matter to whoever types it."""
    return re.sub(r"[^A-Z0-9]", "", text.upper())


class IssuerState:
    def __init__(self) -> None:
        self.codes: dict[str, CodeRecord] = {}
        self.devices: dict[str, DeviceRecord] = {}  # by device code
        self.user_codes: dict[str, str] = {}  # normalized user code -> device code
        self.refresh: dict[str, RefreshRecord] = {}
        self.spent: dict[str, tuple[str, float]] = {}  # spent code or refresh token -> (family, forget at)
        self.nonces: dict[tuple[str, str], float] = {}  # (client, nonce) -> forget at

    def purge(self) -> None:
        now = time.time()
        for code in [c for c, r in self.codes.items() if r.expires_at <= now]:
            del self.codes[code]
        for device in [d for d, r in self.devices.items() if r.expires_at + SPENT_MEMORY <= now]:
            self.user_codes.pop(normalize_user_code(self.devices.pop(device).user_code), None)
        for token in [t for t, r in self.refresh.items() if r.expires_at <= now]:
            del self.refresh[token]
        for spent in [s for s, (_, until) in self.spent.items() if until <= now]:
            del self.spent[spent]
        for nonce in [n for n, until in self.nonces.items() if until <= now]:
            del self.nonces[nonce]

    # --- authorization codes -----------------------------------------------------------------

    def add_code(self, record: CodeRecord) -> None:
        self.purge()
        self.codes[record.code] = record
        if record.nonce:
            self.nonces[(record.client_id, record.nonce)] = record.expires_at

    def take_code(self, code: str, client_id: str) -> CodeRecord | None:
        """The code's record, spent by this call whatever comes next (a wrong
        verifier spends it too); None when unknown, expired or another client's."""
        self.purge()
        record = self.codes.pop(code, None)
        if record is None:
            self._replayed(code)
            return None
        self.spent[code] = (code, time.time() + SPENT_MEMORY)
        return record if record.client_id == client_id else None

    def nonce_seen(self, client_id: str, nonce: str) -> bool:
        self.purge()
        return (client_id, nonce) in self.nonces

    # --- device codes ------------------------------------------------------------------------

    def add_device(self, record: DeviceRecord) -> None:
        self.purge()
        self.devices[record.device_code] = record
        self.user_codes[normalize_user_code(record.user_code)] = record.device_code

    def device(self, device_code: str) -> DeviceRecord | None:
        self.purge()
        return self.devices.get(device_code)

    def device_by_user_code(self, user_code: str) -> DeviceRecord | None:
        self.purge()
        device_code = self.user_codes.get(normalize_user_code(user_code))
        return self.devices.get(device_code) if device_code else None

    def finish_device(self, record: DeviceRecord) -> None:
        """Tokens were issued for it: its device code is spent."""
        self.devices.pop(record.device_code, None)
        self.user_codes.pop(normalize_user_code(record.user_code), None)

    # --- refresh tokens ----------------------------------------------------------------------

    def add_refresh(self, record: RefreshRecord) -> None:
        self.purge()
        self.refresh[record.token] = record

    def refresh_token(self, token: str) -> RefreshRecord | None:
        self.purge()
        record = self.refresh.get(token)
        if record is None:
            self._replayed(token)
        return record

    def spend_refresh(self, record: RefreshRecord) -> None:
        if self.refresh.pop(record.token, None) is not None:
            self.spent[record.token] = (record.family, time.time() + SPENT_MEMORY)

    def revoke_family(self, family: str) -> None:
        for token in [t for t, r in self.refresh.items() if r.family == family]:
            del self.refresh[token]

    def _replayed(self, credential: str) -> None:
        spent = self.spent.get(credential)
        if spent is not None:
            self.revoke_family(spent[0])
