"""The README's "HTTP API" section, run as written: its lines in one bash session
(variables carry from line to line, as in a terminal) against a real `pim dev --seed
demo`, each line's output exactly what the README shows under it (`#   ...`), with
`pim dev`'s own URL in place of http://localhost:7280."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.api.cli_api import running_pim_dev

README = Path(__file__).parents[2] / "README.md"
SHOWN_URL = "http://localhost:7280"


def http_api_section() -> list[tuple[str, list[str]]]:
    """Each command of the section (continuation lines joined) with the output lines shown under it."""
    text = README.read_text()
    section = text[text.index("## HTTP API\n") : text.index("## Command line\n")]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("#   "):
                steps[-1][1].append(line[4:].strip())
            elif line.strip() and not line.startswith("#"):
                steps.append((line.strip(), []))
    return steps


def script(steps: list[tuple[str, list[str]]], api_url: str) -> str:
    """One bash session; after each command, a marker line with its index and exit code."""
    lines = ["set -o pipefail"]
    for index, (command, _) in enumerate(steps):
        if command.startswith("source "):
            continue  # the venv: the test's own interpreter is already on PATH
        lines += [command.replace(SHOWN_URL, api_url), f'echo "@@step {index} $?"']
    return "\n".join(lines) + "\n"


async def test_the_readme_http_api_section_runs_as_written(tmp_path):
    steps = http_api_section()
    assert len(steps) >= 15 and any("PATCH" in command for command, _ in steps)
    with running_pim_dev(tmp_path, seed="demo") as dev:
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            script(steps, dev.api_url),
            cwd=dev.directory,
            env=dev.environment(tmp_path / "config"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    outputs: dict[int, tuple[int, list[str]]] = {}
    pending: list[str] = []
    for line in out.decode().splitlines():
        marker = re.fullmatch(r"@@step (\d+) (\d+)", line)
        if marker:
            outputs[int(marker.group(1))] = (int(marker.group(2)), pending)
            pending = []
        else:
            pending.append(line)
    for index, (command, expected) in enumerate(steps):
        if command.startswith("source "):
            continue
        assert index in outputs, f"{command}: never ran\n{err.decode()}"
        code, printed = outputs[index]
        assert code == 0, f"{command}: exit {code}\n{err.decode()}"
        shown = [line.replace(SHOWN_URL, dev.api_url) for line in expected]
        assert printed == shown, f"{command}\nexpected: {shown}\nprinted: {printed}"
