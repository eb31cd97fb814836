"""The Temporal dev server of `pim dev`: a child process that dies with it.

`temporal server start-dev` is started with the flags temporalio's
`WorkflowEnvironment.start_local` gives it (its state in a SQLite file, PIM's
search attributes registered), but by this process and, on Linux, with a
parent-death signal (PR_SET_PDEATHSIG): however `pim dev` ends, SIGKILL
included, the kernel sends its server SIGTERM, and the next `pim dev` finds the
port free. The server's output (its banner and its errors) goes to a log file.

When a port is taken, `port_holder` finds what listens on it, from
/proc/net/tcp{,6} and /proc/PID/fd, so that the refusal can name it."""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Awaitable, Callable, Iterable, TypeVar

from temporalio.common import SearchAttributeKey

T = TypeVar("T")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LISTEN = "0A"  # the TCP state in /proc/net/tcp


class DevServerFailed(Exception):
    """The dev server did not start (its reason, from its log, is the message)."""


class StateInUse(Exception):
    """Another `pim dev` keeps its state in this directory."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def lock_state(state_dir: Path) -> IO[str]:
    """An exclusive lock on STATE_DIR for as long as the returned file stays open
    (the kernel drops it when this process ends, however it ends): two dev servers
    on one Temporal database would corrupt it. StateInUse names the holder's pid."""
    lock = (state_dir / "dev.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise StateInUse(holder) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def server_command(
    binary: str,
    *,
    port: int,
    namespace: str,
    db_filename: Path,
    ui_port: int | None,
    search_attributes: Iterable[SearchAttributeKey],
    log_level: str = "error",
) -> list[str]:
    """The command line WorkflowEnvironment.start_local builds (temporalio 1.x)."""
    command = [binary, "server", "start-dev", "--port", str(port), "--namespace", namespace, "--ip", "127.0.0.1"]
    command += ["--log-format", "pretty", "--log-level", log_level]
    for flag in (
        "frontend.enableServerVersionCheck=false",
        "frontend.enableUpdateWorkflowExecution=true",
        "frontend.enableUpdateWorkflowExecutionAsyncAccepted=true",
    ):
        command += ["--dynamic-config-value", flag]
    command += ["--db-filename", str(db_filename)]
    command += ["--headless"] if ui_port is None else ["--ui-port", str(ui_port)]
    for key in search_attributes:
        command += ["--search-attribute", f"{key.name}={key._metadata_type}"]
    return command


def start_server(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    """The server as a child of this thread (call it from the main thread: the
    parent-death signal follows the thread that forked), in its own process group
    (a Ctrl-C in the terminal reaches `pim dev`, which stops the server itself),
    its output written to `log`."""
    with log.open("wb") as output:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_die_with_parent(),
        )


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before exec: ask for SIGTERM when this process dies, and
    leave at once if it already has (then nobody would send it)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return in_child


async def wait_until_serving(
    process: subprocess.Popen[bytes], connect: Callable[[], Awaitable[T]], log: Path, timeout: float = 60
) -> T:
    """`connect()`'s result once the server answers; DevServerFailed when the
    server exits first (with the last line it wrote) or does not answer in time."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise DevServerFailed(f"the Temporal dev server exited with code {process.returncode}: {last_line(log)}")
        try:
            return await connect()
        except RuntimeError:  # what the SDK raises while nothing listens yet
            if time.monotonic() > deadline:
                raise DevServerFailed(f"the Temporal dev server did not answer within {timeout:.0f} s (see {log})") from None
            await asyncio.sleep(0.1)


async def stop_server(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM (the server closes its database), then SIGKILL after `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        deadline = time.monotonic() + grace
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            process.kill()
    process.wait()


def last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no output)"
    return lines[-1] if lines else "(no output)"


# --- who holds a port -----------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    pid: int
    command: list[str]
    parent_pid: int | None
    parent_command: list[str]

    @property
    def is_dev_server(self) -> bool:
        return self.command[1:3] == ["server", "start-dev"]

    @property
    def parent_is_pim_dev(self) -> bool:
        return any(Path(arg).name == "pim" for arg in self.parent_command[:2]) and "dev" in self.parent_command


def port_is_free(port: int) -> bool:
    """Whether the dev server could listen on 127.0.0.1:PORT (TIME_WAIT is no conflict:
    the server sets SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_holder(port: int, proc: Path = Path("/proc")) -> Holder | None:
    """The process listening on TCP PORT, when this user may see it (Linux)."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    sockets = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if entry.name.isdigit() and sockets & _links(entry / "fd"):
            pid = int(entry.name)
            parent = _parent_pid(proc, pid)
            return Holder(pid, _command(proc, pid), parent, _command(proc, parent) if parent else [])
    return None


def _links(fd_dir: Path) -> set[str]:
    """What a process's descriptors point at; an fd closed meanwhile is skipped, a
    process gone or another user's has none."""
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return set()
    links = set()
    for fd in fds:
        try:
            links.add(os.readlink(fd))
        except OSError:
            continue
    return links


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _command(proc: Path, pid: int) -> list[str]:
    try:
        return [arg.decode(errors="replace") for arg in (proc / str(pid) / "cmdline").read_bytes().split(b"\0") if arg]
    except OSError:
        return []


def _parent_pid(proc: Path, pid: int) -> int | None:
    try:
        return int((proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def in_use(what: str, port: int, holder: Holder | None, option: str = "--port") -> str:
    """The refusal of a taken port, naming what holds it and how to stop it (or which `option` picks another)."""
    if holder is None:
        return f"{what} is in use (by a process this user cannot see); stop it or pick another {option}"
    shown = _shown(holder.command)
    if holder.is_dev_server and holder.parent_is_pim_dev:
        return (
            f"{what} is in use by `{shown}` (pid {holder.pid}) of a `pim dev` that is running (pid {holder.parent_pid}); "
            f"stop that one (Ctrl-C) or pick another {option}"
        )
    if holder.is_dev_server:
        return (
            f"{what} is in use by `{shown}` (pid {holder.pid}), probably left by an earlier `pim dev`; "
            f"stop it with `kill {holder.pid}`"
        )
    return f"{what} is in use by `{shown}` (pid {holder.pid}); stop it or pick another {option}"


def _shown(command: list[str], limit: int = 60) -> str:
    if not command:
        return "?"
    if command[1:3] == ["server", "start-dev"]:
        return f"{Path(command[0]).name} server start-dev"
    text = " ".join([Path(command[0]).name, *command[1:]])
    return text if len(text) <= limit else text[: limit - 3] + "..."
