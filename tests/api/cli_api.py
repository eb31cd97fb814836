"""The command line in API mode against a real `pim dev`: the process started on free
ports in a directory of its own (as a person runs it), its banner read for
PIM_API_URL, and `pim` lines run by bash as each person would run them, each with
a token file of their own (PIM_CONFIG_DIR), as on their own machine.

    with running_pim_dev(tmp, seed="demo") as dev:
        people = People(dev, administrator="admin")
        code, out, err = await people.run("pim request grp-ops --duration 2h ...", as_user="alice")

A person signs in with `pim login --user U --code C` the first time they act. The
code is that of the previous 30-second step, which the issuer accepts (clock
drift): the current one stays unused for the walk-throughs' own `--mfa-code
"$(pim mfa code U)"`, since a code is accepted once."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pim.identity.secrets import configured_cipher
from pim.identity.totp import current_code
from pim.runtime.settings import PimSettings
from pim.store import Store
from tests.devserver.test_pim_dev import free_port, read_until

BIN = Path(sys.executable).parent
PIM = str(BIN / "pim")
TOTP_STEP = 30
STEP_MARGIN = 5.0  # seconds: more than `pim login` takes to present the code


@dataclass
class DevServer:
    directory: Path  # where `pim dev` runs: its .pim/ holds the store and the keys
    process: subprocess.Popen[bytes]
    temporal_port: int
    api_url: str

    def environment(self, config_dir: Path) -> dict[str, str]:
        """What a person's shell holds in API mode: the API's URL and their own token file."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIM_", "TEMPORAL_", "XDG_"))}
        return {
            **clean,
            "PATH": f"{BIN}:{clean['PATH']}",
            "PIM_API_URL": self.api_url,
            "PIM_CONFIG_DIR": str(config_dir),
            "PIM_LOG_LEVEL": "WARNING",
        }

    async def totp_secret(self, user: str) -> str | None:
        """`user`'s TOTP secret, read from `pim dev`'s own store with its key."""
        state = self.directory / ".pim"
        cipher = configured_cipher(PimSettings(mfa_secret_key=None), dev_file=state / "mfa-secret.key")
        store = Store.open(f"sqlite+aiosqlite:///{state / 'pim.db'}", secrets=cipher)
        try:
            return await store.mfa_secret(user)
        finally:
            await store.close()

    async def previous_code(self, user: str) -> str:
        """`user`'s TOTP code of the previous step, good for a few seconds more at least:
        close to the end of a step it would be two steps old by the time it is checked."""
        secret = await self.totp_secret(user)
        assert secret is not None, f"{user} has no TOTP enrolment"
        left = TOTP_STEP - time.time() % TOTP_STEP
        if left < STEP_MARGIN:
            await asyncio.sleep(left + 0.1)
        return current_code(secret, time.time() - TOTP_STEP)


@contextmanager
def running_pim_dev(directory: Path, seed: str | None = None) -> Iterator[DevServer]:
    """`pim dev [--seed SEED]` in `directory`, on free ports, until the block ends (SIGTERM)."""
    temporal_port, api_port = free_port(), free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIM_", "TEMPORAL_"))}
    command = [PIM, "dev", "--port", str(temporal_port), "--api-port", str(api_port)] + (["--seed", seed] if seed else [])
    process = subprocess.Popen(
        command, cwd=directory, env={**clean, "PIM_LOG_LEVEL": "WARNING"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        banner = read_until(process, "Press Ctrl-C to stop")
        found = re.search(r"^PIM_API_URL=(\S+)$", banner, re.MULTILINE)
        assert found, banner
        assert found.group(1) == f"http://localhost:{api_port}"
        assert f"the portal: http://localhost:{api_port}/" in banner
        yield DevServer(directory, process, temporal_port, found.group(1))
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


@dataclass
class People:
    """Everyone who uses the API, each with their own token file; `administrator` runs
    the lines that name nobody (the listings, the audit log)."""

    dev: DevServer
    administrator: str
    signed_in: set[str] = field(default_factory=set)

    def config_dir(self, user: str) -> Path:
        return self.dev.directory / "people" / user

    async def sh(self, line: str, user: str) -> tuple[int, str, str]:
        """`line` run by bash in `pim dev`'s directory, in `user`'s environment."""
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            line,
            cwd=self.dev.directory,
            env=self.dev.environment(self.config_dir(user)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def sign_in(self, user: str) -> None:
        """`pim login` as `user`, once. Everyone signs in with a TOTP code: someone not
        enrolled yet is enrolled by the administrator first, through the API."""
        if user in self.signed_in:
            return
        if user != self.administrator and await self.dev.totp_secret(user) is None:
            code, out, err = await self.run(f"pim mfa enroll {user}")
            assert code == 0 and out.startswith("otpauth://"), out + err
        code, out, err = await self.sh(f"pim login --user {user} --code {await self.dev.previous_code(user)}", user)
        assert (code, out) == (0, f"signed in to {self.dev.api_url} as {user}\n"), out + err
        self.signed_in.add(user)

    async def run(self, line: str, as_user: str | None = None) -> tuple[int, str, str]:
        """`line` run by `as_user` (the administrator when None), signed in first."""
        user = as_user or self.administrator
        await self.sign_in(user)
        return await self.sh(line, user)


def without_as(line: str) -> tuple[str, str | None]:
    """A walk-through's line as API mode takes it: `--as U` dropped, and U, who signs in instead."""
    found = re.search(r"\s--as (\S+)", line)
    if found is None:
        return line, None
    return line[: found.start()] + line[found.end() :], found.group(1)
