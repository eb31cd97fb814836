"""What the command line says before it talks to anyone: `--as` is required in local
mode and refused in API mode; `pim login` wants its options in pairs; a command in
API mode without a sign-in says so. One line each, exit 2 for a malformed call."""

from __future__ import annotations

from typer.testing import CliRunner

from pim.cli.main import app
from pim.identity.proofs import SigningKey
from tests.cli.conftest import one_error_line

REQUEST = "activation/grp-ops/member/alice"
NOWHERE = "http://127.0.0.1:1"  # nothing listens on port 1


def pim(*args: str, api_url: str | None = None, config_dir: str | None = None):
    env = {"PIM_API_URL": api_url, "PIM_CONFIG_DIR": config_dir, "PIM_PROOF_SIGNING_KEY": None}
    return CliRunner().invoke(app, list(args), env=env)


def test_as_is_required_in_local_mode(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (("approve", REQUEST), ("request", "grp-ops"), ("users", "add", "erin"), ("sign", "cancel", REQUEST)):
        assert one_error_line(pim(*args), 2) == (
            "error: --as: required in local mode (the acting principal); or set PIM_API_URL and `pim login`"
        ), args


def test_as_is_refused_in_api_mode(tmp_path):
    for args in (("approve", REQUEST, "--as", "bob"), ("groups", "offboard", "grp-ops", "--as", "admin")):
        result = pim(*args, api_url=NOWHERE, config_dir=str(tmp_path))
        assert one_error_line(result, 2) == (
            "error: --as is refused in API mode (PIM_API_URL): you act as who signed in (`pim login`)"
        )


def test_api_mode_without_a_sign_in_says_so(tmp_path):
    result = pim("status", REQUEST, api_url=NOWHERE, config_dir=str(tmp_path))
    assert one_error_line(result, 1) == f"error: not signed in to {NOWHERE}: run `pim login`"
    result = pim("auth", "token", api_url=NOWHERE + "/", config_dir=str(tmp_path))
    assert one_error_line(result, 1) == f"error: not signed in to {NOWHERE}: run `pim login`"
    assert not (tmp_path / "tokens.json").exists()


def test_login_wants_the_api_and_its_options_in_pairs(tmp_path):
    assert one_error_line(pim("login"), 1).startswith("error: pim login works with the HTTP API: set PIM_API_URL")
    assert one_error_line(pim("logout"), 1).startswith("error: pim logout works with the HTTP API")
    in_api_mode = dict(api_url=NOWHERE, config_dir=str(tmp_path))
    assert one_error_line(pim("login", "--user", "alice", **in_api_mode), 2) == (
        "error: give --user and --code together (pim dev's development issuer), or neither"
    )
    assert one_error_line(pim("login", "--user", "alice", "--code", "12345x", **in_api_mode), 2) == (
        "error: --code: a TOTP code is 6 digits"
    )
    assert one_error_line(pim("login", "--user", "alice", "--code", "123456", **in_api_mode), 1) == (
        f"error: cannot reach {NOWHERE} for the API's sign-in settings (is `pim dev` or `pim api` running?)"
    )


def test_pim_api_refuses_to_start_without_the_issuer_the_signing_key_or_the_portals_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .pim/ of a `pim dev` here: no development key either
    env = {"PIM_OIDC_ISSUER": None, "PIM_PROOF_SIGNING_KEY": None, "PIM_API_PORT": "7281"}
    result = CliRunner().invoke(app, ["api"], env=env)
    assert one_error_line(result, 1) == (
        "error: PIM_OIDC_ISSUER is not set: the API accepts only the company's tokens (set it and PIM_OIDC_AUDIENCE)"
    )
    result = CliRunner().invoke(app, ["api"], env={**env, "PIM_OIDC_ISSUER": "https://login.example.com"})
    assert one_error_line(result, 1) == (
        "error: PIM_PROOF_SIGNING_KEY is not set: the API signs its callers' actions with it (`pim keys new`)"
    )
    signing = SigningKey.generate("pim-api").serialize()
    with_key = {**env, "PIM_OIDC_ISSUER": "https://login.example.com", "PIM_PROOF_SIGNING_KEY": signing}
    result = CliRunner().invoke(app, ["api"], env={**with_key, "PIM_PORTAL_SESSION_KEY": None})
    assert one_error_line(result, 1) == (
        "error: PIM_PORTAL_SESSION_KEY is not set: the portal seals its session cookies with it (`pim keys new`); "
        "or set PIM_PORTAL=false to serve the API alone"
    )
    result = CliRunner().invoke(app, ["api"], env={**with_key, "PIM_PORTAL_SESSION_KEY": "k1:short"})
    assert one_error_line(result, 2).startswith("error: PIM_PORTAL_SESSION_KEY: ")


def test_the_token_file_lives_in_the_users_configuration_directory(tmp_path, monkeypatch):
    from pim.cli.tokens import token_path

    monkeypatch.delenv("PIM_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert token_path() == tmp_path / "home" / ".config" / "pim" / "tokens.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert token_path() == tmp_path / "xdg" / "pim" / "tokens.json"
    monkeypatch.setenv("PIM_CONFIG_DIR", str(tmp_path / "pim"))
    assert token_path() == tmp_path / "pim" / "tokens.json"
