"""`pim dev` owns its Temporal dev server: killed outright (SIGKILL), it takes the
server with it and the port is free again within seconds; a port that is taken
at start is refused in one line that names what holds it; the banner gives the
absolute paths of the state."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pim.runtime.devserver import lock_state, port_holder, port_is_free
from pim.runtime.temporal import find_binary

PIM = str(Path(sys.executable).parent / "pim")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")


def free_port(spare_above: int = 0) -> int:
    """A port nothing listens on (and, with spare_above, nor on port + spare_above)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + spare_above <= 65535 and (not spare_above or port_is_free(port + spare_above)):
            return port


def environment() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIM_", "TEMPORAL_"))}
    return {**clean, "PIM_LOG_LEVEL": "WARNING"}


def read_until(process: subprocess.Popen[bytes], marker: str, timeout: float = 90) -> str:
    """What the process printed up to `marker` (read from the pipe as it comes)."""
    assert process.stdout is not None
    fd, seen = process.stdout.fileno(), b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and marker.encode() not in seen:
            if selector.select(timeout=0.5):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                seen += chunk
    if marker.encode() not in seen:
        raise AssertionError(f"no {marker!r} within {timeout} s (exit {process.poll()}):\n{seen.decode(errors='replace')}")
    return seen.decode(errors="replace")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def wait_free(port: int, timeout: float) -> float:
    began = time.monotonic()
    while not port_is_free(port):
        assert time.monotonic() - began < timeout, f"port {port} still taken after {timeout} s: {port_holder(port)}"
        time.sleep(0.1)
    return time.monotonic() - began


def test_a_killed_pim_dev_takes_its_server_with_it(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [PIM, "dev", "--port", str(port)],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        banner = read_until(process, "Press Ctrl-C to stop")
        state = tmp_path.resolve() / ".pim"
        for path in ("pim.db", "temporal.db", "temporal.log", "proof-signing.key", "mfa-secret.key", "mfa-seal.key"):
            assert str(state / path) in banner, path
        assert f"cd {tmp_path.resolve()}" in banner and f"PIM_TEMPORAL_ADDRESS=localhost:{port}" in banner
        servers = children(process.pid)
        assert len(servers) == 1 and port_holder(port) is not None and port_holder(port).pid == servers[0]
        second = subprocess.run(  # one `pim dev` per directory: two servers on one database would corrupt it
            [PIM, "dev", "--port", str(free_port())], cwd=tmp_path, env=environment(), capture_output=True, text=True
        )
        assert (second.returncode, second.stderr) == (
            1,
            f"error: another `pim dev` (pid {process.pid}) keeps its state in {state}: stop it, "
            "or run this one from another directory\n",
        )

        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert wait_free(port, timeout=10) < 10
        deadline = time.monotonic() + 30  # the server closes its listener first, then the rest
        while Path(f"/proc/{servers[0]}").exists():
            assert time.monotonic() < deadline, f"the server {servers[0]} outlived its `pim dev`"
            time.sleep(0.1)
        lock_state(state).close()  # and the directory is free for the next `pim dev`
    finally:
        if process.poll() is None:
            process.kill()
        if process.stdout:
            process.stdout.close()


def test_a_server_left_on_the_port_is_named(tmp_path):
    port = free_port()
    stale = subprocess.Popen(  # as an earlier `pim dev` would have left it: a server nobody stops
        [find_binary("temporal"), "server", "start-dev", "--port", str(port), "--headless"]
        + ["--ip", "127.0.0.1", "--db-filename", str(tmp_path / "stale.db"), "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while port_is_free(port):
            assert time.monotonic() < deadline and stale.poll() is None, "the stale server did not start"
            time.sleep(0.1)
        result = subprocess.run(
            [PIM, "dev", "--port", str(port)], cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=60
        )
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"error: --port {port} is in use by `temporal server start-dev` (pid {stale.pid}), "
            f"probably left by an earlier `pim dev`; stop it with `kill {stale.pid}`\n"
        )
        assert not (tmp_path / ".pim").exists()  # refused before anything was made
    finally:
        stale.terminate()
        stale.wait(timeout=30)


def test_a_taken_web_ui_port_and_a_bad_port_are_one_line(tmp_path):
    port = free_port(spare_above=1000)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port + 1000))
        squatter.listen()
        result = subprocess.run(
            [PIM, "dev", "--port", str(port), "--ui"], cwd=tmp_path, env=environment(), capture_output=True, text=True
        )
    assert (result.returncode, result.stdout) == (1, "")
    assert re.fullmatch(
        rf"error: --ui: port {port + 1000} \(the Web UI's, --port \+ 1000\) is in use by `\S*python\S*[^`]*` "
        rf"\(pid {os.getpid()}\); stop it or pick another --port\n",
        result.stderr,
    ), result.stderr
    for args, message in (
        (["--port", "99999"], "error: --port: 99999 is not a port (1 to 65535)\n"),
        (["--port", "0"], "error: --port: 0 is not a port (1 to 65535)\n"),
        (["--port", "65000", "--ui"], "error: --ui: the Web UI would listen on --port + 1000 = 66000; pick a lower --port\n"),
    ):
        result = subprocess.run([PIM, "dev", *args], cwd=tmp_path, env=environment(), capture_output=True, text=True)
        assert (result.returncode, result.stdout, result.stderr) == (2, "", message)
