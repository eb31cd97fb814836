"""The command line in API mode (PIM_API_URL) against a real `pim dev --seed demo`:
the README's first walk-through, line by line, through the HTTP API; and what API
mode promises besides: `--as` refused, the token file private, `pim auth token`
good for any HTTP client, an expired token renewed without a word.

In API mode the actor is who signed in, so a line's `--as U` becomes U's own shell
(their token file, their `pim login`); lines that name nobody run as `admin`. A
line the README shows refused (`#   error: ...`) must fail with that one line; a
line shown with its output (`#   activation/...: pending_approval ... stage 1`)
must print each part of it. The wait of `sleep 300` is left out, and the
`temporal` lines get `pim dev`'s address."""

from __future__ import annotations

import asyncio
import json
import re
import stat
from pathlib import Path

import httpx
import pytest

from pim.cli.device_page import sign_in_on_device_page
from pim.portal.session import new_session_key
from tests.api.cli_api import PIM, DevServer, People, running_pim_dev, without_as
from tests.devserver.test_pim_dev import free_port
from tests.polling import eventually

README = Path(__file__).parents[2] / "README.md"
DAVE_DEV = "activation/grp-dev/member/dave"  # the walk-through's second request


def demo_walkthrough() -> list[tuple[str, list[str]]]:
    """The README's first walk-through: each command (continuation lines joined) with
    the output lines shown under it (`#   ...`)."""
    text = README.read_text()
    section = text[text.index("## Walk-through (the demo tenant)") : text.index("## Walk-through: an administrator")]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("#   "):
                steps[-1][1].append(line[4:].strip())
            elif line.strip() and not line.startswith("#"):
                steps.append((re.sub(r"\s+", " ", line.strip()), []))
    return steps


def shown(expected: str, output: str) -> bool:
    """Whether `output` holds each part of a README output line (`...` between parts,
    `<...>` for what varies), whitespace aside."""
    flat = re.sub(r"\s+", "", output)
    parts = [re.sub(r"\s+", "", part) for part in expected.split("...")]
    return all(part in flat for part in parts if part and "<" not in part)


async def walk(dev: DevServer, people: People, line: str, expected: list[str]) -> None:
    """One line of the walk-through, run by whoever its `--as` names; its output as the README shows it."""
    command, user = without_as(line)
    command = re.sub(r"\btemporal workflow (\w+)", rf"temporal workflow \1 --address localhost:{dev.temporal_port}", command)

    async def ran() -> tuple[int, str, str]:
        return await people.run(command, as_user=user)

    if command.startswith(("temporal workflow list", "temporal workflow query")):  # eventually consistent
        code, out, err = await eventually(
            ran, what=line, until=lambda result: all(shown(e, result[1]) for e in expected), timeout=20
        )
    else:
        code, out, err = await ran()
    refused = [e.removeprefix("error: ") for e in expected if e.startswith("error: ")]
    if refused:
        assert (code, out, err) == (1, "", f"error: {refused[0]}\n"), line
        return
    assert code == 0, f"{line}\n{out}{err}"
    for output in expected:
        assert shown(output, out), f"{line}\nexpected: {output}\n{out}"


@pytest.fixture(scope="module")
def dev(tmp_path_factory) -> DevServer:
    with running_pim_dev(tmp_path_factory.mktemp("demo"), seed="demo") as server:
        yield server


@pytest.fixture(scope="module")
def people(dev) -> People:
    """One shell per person for the whole module: each signs in once (a TOTP code is good once)."""
    return People(dev, administrator="admin")


async def test_the_demo_walkthrough_through_the_api(dev, people):
    steps = [(line, expected) for line, expected in demo_walkthrough() if not line.startswith(("source ", "sleep "))]
    assert len(steps) >= 12 and steps[0][0].startswith("pim request grp-ops --as alice")
    for line, expected in steps:
        await walk(dev, people, line, expected)

    # What the README says happened did: through the API, each person acted as themselves.
    code, out, _ = await people.run("pim audit --group grp-ops --json")
    actions = {(row["action"], row["actor"], row["principal_id"]) for row in json.loads(out)}
    assert {("request_approved", "bob", "alice"), ("request_approved", "admin", "bob")} <= actions
    assert any(row["action"] == "refused" and row["actor"] == "alice" for row in json.loads(out))
    code, out, _ = await people.run("pim members grp-ops --json")
    assert {m["principal_id"] for m in json.loads(out)["members"]} == {"alice", "carol"}
    code, out, _ = await people.run("pim members grp-ops --owners --json")
    assert [m["principal_id"] for m in json.loads(out)["members"]] == ["bob"]


async def test_both_modes_print_the_same(dev, people):
    """What the walk-through left, read locally (the store and Temporal of this directory)
    and through the API (as the administrator): the same text, the same JSON."""
    local = {k: v for k, v in dev.environment(people.config_dir("admin")).items() if k not in ("PIM_API_URL", "PIM_CONFIG_DIR")}
    local["PIM_TEMPORAL_ADDRESS"] = f"localhost:{dev.temporal_port}"
    for line in (
        "pim status activation/grp-ops/member/alice",
        "pim status activation/grp-ops/owner/bob --json",
        "pim members grp-ops",
        "pim members grp-dev --eligible --json",
        "pim groups list",
        "pim assignments list --json",
        "pim policy show grp-ops --owner",
        "pim audit --principal alice",
        "pim audit verify",
        "pim directory diff grp-ops --json",
    ):
        through_api = await people.run(line)
        process = await asyncio.create_subprocess_exec(
            "bash", "-c", line, cwd=dev.directory, env=local, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        assert through_api == (process.returncode, out.decode(), err.decode()), line


async def test_as_is_refused_and_the_store_is_never_read(dev, people):
    for line in (
        "pim request grp-dev --as dave --duration 1h --justification 'deploy hotfix 1.2.4'",
        "pim approve activation/grp-ops/member/alice --as bob --justification ok",
        "pim users add erin --as admin",
        "pim sign approve activation/grp-ops/member/alice --as bob",
    ):
        code, out, err = await people.run(line, as_user="dave")
        assert (code, out, err) == (
            2,
            "",
            "error: --as is refused in API mode (PIM_API_URL): you act as who signed in (`pim login`)\n",
        ), line
    # `pim sign` asks the API to sign, for who signed in: the proof names dave, whatever he writes.
    code, out, err = await people.run("pim sign request grp-dev --duration 1h --justification 'deploy hotfix 1.2.5'", "dave")
    signed = json.loads(out)
    assert code == 0 and (signed["principal_id"], signed["mfa"]["method"]) == ("dave", "signin") and signed["proof"], err
    code, out, err = await people.run(f"pim sign cancel {DAVE_DEV} --reason 'not needed'", "dave")
    assert code == 0 and (json.loads(out)["by"], json.loads(out)["reason"]) == ("dave", "not needed"), err
    # Without a token, nothing at all: the command line holds no other way in.
    code, out, err = await people.sh("pim status activation/grp-ops/member/alice", "nobody")
    assert (code, out) == (1, "") and err == f"error: not signed in to {dev.api_url}: run `pim login`\n"
    # In API mode the command line never reads the store: from / there is none to read.
    # `pim mfa code` is server-side, always local: it reads the working directory's store.
    code, out, err = await people.run("cd / && pim groups list --json && pim mfa code dave", as_user="dave")
    assert {group["id"] for group in json.loads(out)} == {"grp-ops", "grp-dev", "grp-sre"}
    assert code == 1 and err.startswith("error: no store at /.pim/pim.db")


async def test_the_apis_refusals_are_one_line_with_the_exit_codes_of_local_mode(dev, people):
    for line, user, exit_code, message in (
        ("pim status activation/grp-ops/member/nobody", "alice", 1, "no request activation/grp-ops/member/nobody"),
        ("pim audit --group grp-ops", "alice", 1, "the audit log is for administrators"),
        ("pim members 'grp ops'", "alice", 2, "group_id: "),  # a field the API cannot take, as a malformed argument
        ("pim deactivate activation/grp-ops/member/alice --reason done", "dave", 1, ""),  # the workflow's refusal
        ("pim directory diff grp-nothing", "admin", 2, ""),  # no comparison made: 2, as in local mode
    ):
        code, out, err = await people.run(line, as_user=user)
        assert (code, out) == (exit_code, ""), f"{line}\n{out}{err}"
        assert err.startswith(f"error: {message}") and err.count("\n") == 1, err


async def test_a_login_without_the_development_shortcut_waits_for_the_browser(dev, people):
    """`pim login` alone: the device flow, its code shown, the sign-in done in a browser
    (here, the device page posted as a browser would), the tokens kept. erin is new:
    the administrator adds and enrols her through the API first."""
    for line in ("pim users add erin --name Erin --email erin@example.com", "pim mfa enroll erin"):
        code, out, err = await people.run(line)
        assert code == 0, f"{line}\n{out}{err}"
    assert out.startswith("otpauth://totp/")
    process = await asyncio.create_subprocess_exec(
        PIM,
        "login",
        env=dev.environment(people.config_dir("erin")),
        cwd=dev.directory,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    where = (await process.stderr.readline()).decode()
    assert where.startswith(f"To sign in, open {dev.api_url}/dev-issuer/device?user_code="), where
    user_code = re.search(r"the code (\S+)", (await process.stderr.readline()).decode())
    assert user_code is not None
    async with httpx.AsyncClient() as http:
        page = f"{dev.api_url}/dev-issuer/device"
        await sign_in_on_device_page(http, page, user_code.group(1), "erin", await dev.previous_code("erin"))
    out, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert (process.returncode, out.decode()) == (0, f"signed in to {dev.api_url} as erin\n")
    people.signed_in.add("erin")
    code, out, err = await people.run("pim requests --principal erin --json", as_user="erin")
    assert (code, json.loads(out)) == (0, []), err


async def test_the_token_file_is_private_and_its_token_works_for_any_client(dev, people):
    await people.sign_in("carol")
    tokens = people.config_dir("carol") / "tokens.json"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert stat.S_IMODE(tokens.parent.stat().st_mode) == 0o700
    assert list(json.loads(tokens.read_text())["sessions"]) == [dev.api_url]

    code, token, _ = await people.sh("pim auth token", "carol")
    assert code == 0 and token.count(".") == 2  # a JWT, on a line of its own
    async with httpx.AsyncClient() as http:
        me = await http.get(f"{dev.api_url}/api/me", headers={"Authorization": f"Bearer {token.strip()}"})
        assert me.status_code == 200 and me.json()["principal_id"] == "carol"
        graph = await http.get(
            f"{dev.api_url}/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleRequests/filterByCurrentUser(on='principal')",
            headers={"Authorization": f"Bearer {token.strip()}"},
        )
        assert graph.status_code == 200, graph.text

    tokens.chmod(0o644)  # someone widened it: refused until it is private again
    code, out, err = await people.sh("pim auth token", "carol")
    assert code == 1 and "may be read by others (mode 644)" in err
    tokens.chmod(0o600)

    code, out, _ = await people.sh("pim logout", "carol")
    assert (code, out) == (0, f"signed out of {dev.api_url}\n")
    code, out, err = await people.sh("pim auth token", "carol")
    assert (code, err) == (1, f"error: not signed in to {dev.api_url}: run `pim login`\n")
    people.signed_in.discard("carol")


async def test_pim_api_serves_the_tenant_for_the_companys_tokens_with_json_logs(dev, people):
    """`pim api` on its own, as in production: the company's issuer (here `pim dev`'s),
    its own port, JSON logs; a token the issuer gave is all a caller needs."""
    port = free_port()
    settings = {
        "PIM_OIDC_ISSUER": f"{dev.api_url}/dev-issuer",
        "PIM_OIDC_AUDIENCE": "pim-api",
        "PIM_TEMPORAL_ADDRESS": f"localhost:{dev.temporal_port}",
        "PIM_API_PORT": str(port),
        "PIM_LOG_FORMAT": "json",
        "PIM_LOG_LEVEL": "INFO",
        "PIM_PORTAL_SESSION_KEY": new_session_key(),  # the portal's cookies: its own key, as `pim keys new` prints
    }  # the store and the signing key: `pim dev`'s, in the working directory's .pim/
    environment = {**dev.environment(people.config_dir("admin")), **settings}
    process = await asyncio.create_subprocess_exec(
        PIM, "api", cwd=dev.directory, env=environment, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        started = json.loads(await asyncio.wait_for(process.stderr.readline(), timeout=30))
        assert (started["event"], started["url"]) == ("pim api listening", f"http://127.0.0.1:{port}")
        _, token, _ = await people.run("pim auth token")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            config = await http.get("/api/auth/config")
            assert config.json() == {
                "issuer": f"{dev.api_url}/dev-issuer",
                "client_id": "pim-cli",
                "audience": "pim-api",
                "scope": None,
            }
            assert (await http.get("/api/me")).status_code == 401  # a token is all it takes, and nothing else does
            me = await http.get("/api/me", headers={"Authorization": f"Bearer {token.strip()}"})
            assert me.status_code == 200 and me.json()["principal_id"] == "admin", me.text
            assert (await http.get("/api/me", headers={"Host": "evil.example"})).status_code == 400  # not its name
            signed_out = await http.get("/requests")  # the portal, beside the API: a visitor is sent to sign in
            assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/signin?next=/requests"), signed_out.text
        process.terminate()
        logs = [json.loads(line) for line in (await asyncio.wait_for(process.stderr.read(), timeout=30)).splitlines()]
        calls = [entry for entry in logs if entry.get("event") == "api request"]
        assert {(c["path"], c["status"], c["principal_id"]) for c in calls} >= {("/api/me", 200, "admin")}
        assert all(c["request_id"] for c in calls) and token.strip() not in json.dumps(logs)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_an_expired_or_refused_token_is_renewed_with_the_refresh_token(dev, people):
    """The last test of the module: dave's session ends here."""
    await people.sign_in("dave")
    tokens = people.config_dir("dave") / "tokens.json"

    def session() -> dict:
        return json.loads(tokens.read_text())["sessions"][dev.api_url]

    def tamper(**changes) -> None:
        content = json.loads(tokens.read_text())
        content["sessions"][dev.api_url].update(changes)
        tokens.write_text(json.dumps(content))

    first = session()
    tamper(expires_at=1.0)  # expired long ago
    code, out, err = await people.sh("pim requests --principal dave --json", "dave")
    assert code == 0 and [r["request_id"] for r in json.loads(out)] == [DAVE_DEV], err
    renewed = session()
    assert renewed["access_token"] != first["access_token"] and renewed["expires_at"] > first["expires_at"] - 60
    assert renewed["refresh_token"] != first["refresh_token"]  # the issuer rotates them

    tamper(access_token="not.a.token")  # not expired by its date, but the API refuses it
    code, out, err = await people.sh("pim requests --principal dave --json", "dave")
    assert code == 0 and [r["request_id"] for r in json.loads(out)] == [DAVE_DEV], err
    assert session()["access_token"] not in ("not.a.token", renewed["access_token"])

    tamper(expires_at=1.0, refresh_token="spent")  # and when the issuer refuses to renew: sign in again
    code, out, err = await people.sh("pim requests --principal dave", "dave")
    assert (code, out, err) == (1, "", "error: the issuer ended the session (it refused to renew it): run `pim login`\n")
