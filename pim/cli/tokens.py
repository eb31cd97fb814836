"""Where `pim login` keeps what it got from the issuer: one JSON file per user,
`tokens.json` in PIM_CONFIG_DIR, else $XDG_CONFIG_HOME/pim, else ~/.config/pim,
readable by its owner only (mode 0600, in a directory of mode 0700), with one
session per API URL. A file that others may read is refused, as ssh refuses a
private key anyone can read: it holds credentials.

A session is renewed with its refresh token when its access token has expired
(or the API refused it). Issuers rotate refresh tokens and may treat an old one
presented twice as stolen, so a renewal holds a lock on the directory: two
commands started together renew once."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pim.cli.errors import CliError

FILE_NAME = "tokens.json"
LOCK_NAME = "tokens.lock"
# An access token this close to its expiry is renewed first: it could expire on its way.
EARLY = 30.0


class Session(BaseModel):
    """What the issuer gave one sign-in, and where to renew it."""

    access_token: str
    expires_at: float | None = None  # seconds since the epoch; None: the issuer did not say
    refresh_token: str | None = None
    token_endpoint: str
    client_id: str
    issuer: str

    def __repr__(self) -> str:  # never a token in a traceback or a log line
        return f"Session(issuer={self.issuer!r}, client_id={self.client_id!r}, expires_at={self.expires_at!r})"

    __str__ = __repr__

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at - EARLY <= time.time()


class TokenFile(BaseModel):
    version: int = 1
    sessions: dict[str, Session] = {}


def config_dir() -> Path:
    """PIM_CONFIG_DIR, else $XDG_CONFIG_HOME/pim, else ~/.config/pim."""
    from pim.runtime.settings import load_settings

    configured = load_settings().config_dir
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "pim"


def token_path() -> Path:
    return config_dir() / FILE_NAME


def key_of(api_url: str) -> str:
    """Sessions are kept by API URL as people write it, give or take a final slash."""
    return api_url.rstrip("/")


def _read() -> TokenFile:
    path = token_path()
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return TokenFile()
    if mode & 0o077:
        raise CliError(
            f"{path} may be read by others (mode {mode:o}): `chmod 600 {path}` (it holds your tokens), or remove it and sign in again"
        )
    try:
        return TokenFile.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError, ValidationError):
        raise CliError(f"{path} cannot be read as pim's token file: remove it and run `pim login`") from None


def _write(content: TokenFile) -> None:
    """The whole file replaced at once (a reader never sees half of it), mode 0600 from its first byte."""
    path = token_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{FILE_NAME}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content.model_dump_json(indent=2) + "\n")
    os.chmod(partial, 0o600)  # an umask never widens what os.open was given, but a stale file may
    os.replace(partial, path)


@contextmanager
def locked() -> Iterator[None]:
    """The token file to this command alone while it reads, renews and writes a session."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def load(api_url: str) -> Session | None:
    return _read().sessions.get(key_of(api_url))


def save(api_url: str, session: Session) -> None:
    content = _read()
    content.sessions[key_of(api_url)] = session
    _write(content)


def forget(api_url: str) -> bool:
    """Whether there was a session for `api_url` (now gone)."""
    content = _read()
    if content.sessions.pop(key_of(api_url), None) is None:
        return False
    _write(content)
    return True


def session_from(answer: dict[str, Any], *, token_endpoint: str, client_id: str, issuer: str) -> Session:
    """A session from a token endpoint's answer (RFC 6749 section 5.1)."""
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise CliError(f"the issuer {issuer} answered without an access token")
    lifetime = answer.get("expires_in")
    refresh = answer.get("refresh_token")
    return Session(
        access_token=token,
        expires_at=time.time() + float(lifetime) if isinstance(lifetime, (int, float)) else None,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        token_endpoint=token_endpoint,
        client_id=client_id,
        issuer=issuer,
    )
