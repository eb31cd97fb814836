"""The deployment's trust model (docs/security.md), as docker-compose.yml sets it
up and the scripts under deploy/ make its keys: checked without a Docker engine.

- Nothing but the HTTP API is published; Temporal's front end and UI stay inside
  the compose network, and the UI cannot write.
- The API alone holds the proof signing key; the workers hold its public half.
- The keys reach the pim processes from secret files, never as values in the
  compose file (tests/deploy/test_keys.py runs the script that makes them and
  the entrypoint that hands them to pim).
- Every Temporal client presents a certificate of its own, and the server
  requires one; the certificate script's output verifies against its CA.

tests/deploy/test_mtls.py puts those certificates to work against a Temporal server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.deploy.compose import (
    COMPOSE,
    DEPLOY,
    ROOT,
    SECRET_FILES,
    SERVICES,
    environment,
    mounts,
    pim_settings,
    published_ports,
    secrets,
)

PIM_SERVICES = ["pim-api", "pim-migrate", "pim-worker"]
# The settings that carry a key: never a value in the compose file, always a file.
KEY_SETTINGS = {
    "PIM_PROOF_SIGNING_KEY",
    "PIM_PROOF_TRUSTED_KEYS",
    "PIM_MFA_SEAL_KEY",
    "PIM_MFA_SECRET_KEY",
    "PIM_PAYLOAD_KEYS",
    "PIM_PORTAL_SESSION_KEY",
}
# Who holds which (docs/security.md, "The deployment's trust model").
HOLDERS = {
    "PIM_PROOF_SIGNING_KEY": {"pim-api"},
    "PIM_PROOF_TRUSTED_KEYS": {"pim-worker"},
    "PIM_MFA_SEAL_KEY": {"pim-api", "pim-worker"},
    "PIM_MFA_SECRET_KEY": {"pim-api", "pim-worker"},
    "PIM_PAYLOAD_KEYS": {"pim-api", "pim-worker"},
    "PIM_PORTAL_SESSION_KEY": {"pim-api"},
}
# Every write action temporalio/ui 2.49.1 can switch off (server/config/docker.yaml of
# that tag). A new UI version may add switches: the tag check below sends you there.
UI_IMAGE = "temporalio/ui:2.49.1"
UI_WRITE_SWITCHES = [
    "TEMPORAL_DISABLE_WRITE_ACTIONS",
    "TEMPORAL_WORKFLOW_TERMINATE_DISABLED",
    "TEMPORAL_WORKFLOW_CANCEL_DISABLED",
    "TEMPORAL_WORKFLOW_SIGNAL_DISABLED",
    "TEMPORAL_WORKFLOW_UPDATE_DISABLED",
    "TEMPORAL_WORKFLOW_RESET_DISABLED",
    "TEMPORAL_WORKFLOW_PAUSE_DISABLED",
    "TEMPORAL_BATCH_ACTIONS_DISABLED",
    "TEMPORAL_START_WORKFLOW_DISABLED",
    "TEMPORAL_ACTIVITY_COMMANDS_DISABLED",
]
# Each Temporal client: (certificate, key, CA, server name) settings, and its directory under deploy/tls.
TEMPORAL_CLIENTS = {
    "pim-api": (("PIM_TEMPORAL_TLS_CERT", "PIM_TEMPORAL_TLS_KEY", "PIM_TEMPORAL_TLS_CA", "PIM_TEMPORAL_TLS_SERVER_NAME"), "api"),
    "pim-worker": (
        ("PIM_TEMPORAL_TLS_CERT", "PIM_TEMPORAL_TLS_KEY", "PIM_TEMPORAL_TLS_CA", "PIM_TEMPORAL_TLS_SERVER_NAME"),
        "worker",
    ),
    "temporal-ui": (("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA", "TEMPORAL_TLS_SERVER_NAME"), "ui"),
    "temporal-create-namespace": (
        (
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
            "TEMPORAL_TLS_CLIENT_KEY_PATH",
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            "TEMPORAL_TLS_SERVER_NAME",
        ),
        "admin",
    ),
}

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


def reaches_temporal(service: str) -> bool:
    env = environment(service)
    return "temporal:7233" in (env.get("PIM_TEMPORAL_ADDRESS"), env.get("TEMPORAL_ADDRESS"))


# --- who can reach what ---------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["temporal", "temporal-ui", "postgresql", "pim-worker"])
def test_nothing_but_the_api_is_published(service):
    assert "ports" not in SERVICES[service], f"{service} is published outside the compose network"


def test_the_api_publishes_the_only_port_meant_for_people():
    (port, address), *others = published_ports("pim-api").items()
    assert not others
    env = environment("pim-api")
    assert port == int(env["PIM_API_PORT"]) and SERVICES["pim-api"]["ports"][0].endswith(f":{port}")
    assert env["PIM_API_HOST"] == "0.0.0.0", "inside its container it must listen beyond loopback to be published"
    # By default on the host's loopback: bearer tokens cross no network in clear (a TLS proxy goes in front).
    assert address == "127.0.0.1"
    assert "localhost" in env["PIM_API_ALLOWED_HOSTS"].split(","), "its health check asks for Host: localhost"
    assert "'Host': 'localhost'" in " ".join(SERVICES["pim-api"]["healthcheck"]["test"])


def test_the_api_authenticates_with_the_company_issuer():
    raw = SERVICES["pim-api"]["environment"]
    for setting in ("PIM_OIDC_ISSUER", "PIM_OIDC_AUDIENCE"):
        assert raw[setting].startswith(f"${{{setting}:?"), f"{setting} must be required, with no default"


def test_the_ui_cannot_write():
    assert SERVICES["temporal-ui"]["image"] == UI_IMAGE, "a new UI: update UI_WRITE_SWITCHES from its config template"
    env = environment("temporal-ui")
    off = [switch for switch in UI_WRITE_SWITCHES if env.get(switch) != "true"]
    assert not off, f"temporal-ui: {off} are not set to true"


def test_the_ui_override_publishes_on_the_hosts_loopback_only():
    override = yaml.safe_load((DEPLOY / "compose.ui-loopback.yml").read_text())
    assert set(override["services"]) == {"temporal-ui"}
    assert override["services"]["temporal-ui"]["ports"] == ["127.0.0.1:8080:8080"]
    assert "deploy/compose.ui-loopback.yml" in (ROOT / "docker-compose.yml").read_text(), "the header says how to use it"


# --- who holds which key --------------------------------------------------------------------------


@pytest.mark.parametrize("setting", sorted(KEY_SETTINGS))
def test_each_key_is_held_by_its_holders_only(setting):
    holders = {service for service in SERVICES if setting in pim_settings(service)}
    assert holders == HOLDERS[setting], f"{setting}: held by {sorted(holders)}"


def test_no_worker_ever_holds_the_signing_key():
    worker = pim_settings("pim-worker")
    assert "PIM_PROOF_SIGNING_KEY" not in worker
    assert not any("signing" in path for path in secrets("pim-worker").values())
    users = [service for service in SERVICES if "pim-proof-signing-key" in (SERVICES[service].get("secrets") or [])]
    assert users == ["pim-api"]


@pytest.mark.parametrize("service", ["pim-api", "pim-worker"])
def test_keys_come_from_secret_files_never_from_the_compose_file(service):
    env = environment(service)
    in_place = KEY_SETTINGS & set(env)
    assert not in_place, f"{service}: {sorted(in_place)} given as values: `docker compose config` would print them"
    given = secrets(service)
    for setting in KEY_SETTINGS & set(pim_settings(service)):
        path = env[f"{setting}_FILE"]
        assert path in given, f"{service}: {setting}_FILE names {path}, which is not one of its secrets"
        assert given[path] == f"./deploy/secrets/{SECRET_FILES[setting]}", given[path]
    assert set(given) == {env[f"{s}_FILE"] for s in KEY_SETTINGS & set(pim_settings(service))}, "a secret it never reads"


@pytest.mark.parametrize("service", ["pim-api", "pim-worker"])
def test_the_pim_processes_start_through_the_entrypoint_that_reads_the_files(service):
    entrypoint = SERVICES[service]["entrypoint"]
    assert entrypoint[0] == "/bin/sh"
    assert mounts(service)[entrypoint[1]] == "./deploy/pim-entrypoint.sh"


def test_the_migration_holds_no_key():
    assert not secrets("pim-migrate") and not KEY_SETTINGS & set(pim_settings("pim-migrate"))


def test_keys_and_certificates_stay_out_of_git_and_the_image():
    for path in ("deploy/tls/ca/ca.key", "deploy/secrets/proof-signing.key"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, timeout=30)
        assert ignored.returncode == 0, f"{path} would be committed"
    assert "deploy" in (ROOT / ".dockerignore").read_text().split()


# --- Temporal over mutual TLS ---------------------------------------------------------------------


def test_every_temporal_client_is_known():
    assert {service for service in SERVICES if reaches_temporal(service)} == set(TEMPORAL_CLIENTS)


@pytest.mark.parametrize("service", sorted(TEMPORAL_CLIENTS))
def test_every_temporal_client_presents_a_certificate_of_its_own(service):
    (cert, key, ca, server_name), component = TEMPORAL_CLIENTS[service]
    env = environment(service)
    directory = {Path(env[name]).parent for name in (cert, key, ca)}
    assert len(directory) == 1, f"{service}: certificate, key and CA from different places"
    assert mounts(service)[str(directory.pop())] == f"./deploy/tls/{component}"
    assert env[server_name] == "temporal", "the server is checked under the name its certificate carries"


def test_no_two_clients_share_a_certificate():
    components = [component for _, component in TEMPORAL_CLIENTS.values()]
    assert len(set(components)) == len(components)
    for service in SERVICES:
        tls_mounts = [source for source in mounts(service).values() if source.startswith("./deploy/tls/")]
        assert len(tls_mounts) <= 1, f"{service} mounts more than its own certificate: {tls_mounts}"
        assert "./deploy/tls/ca" not in tls_mounts, f"{service} mounts the CA's key"


def test_the_server_requires_a_client_certificate():
    env = environment("temporal")
    assert env["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    directory = "/etc/temporal/tls"
    assert mounts("temporal")[directory] == "./deploy/tls/temporal"
    for name in ("TEMPORAL_TLS_SERVER_CERT", "TEMPORAL_TLS_FRONTEND_CERT"):
        assert env[name] == f"{directory}/tls.pem"
    for name in ("TEMPORAL_TLS_SERVER_KEY", "TEMPORAL_TLS_FRONTEND_KEY"):
        assert env[name] == f"{directory}/tls.key"
    # Client certificates are checked against the deployment's CA, at the front end and between its services.
    for name in ("TEMPORAL_TLS_CLIENT1_CA_CERT", "TEMPORAL_TLS_SERVER_CA_CERT"):
        assert env[name] == f"{directory}/ca.pem"
    assert env["TEMPORAL_TLS_INTERNODE_SERVER_NAME"] == env["TEMPORAL_TLS_FRONTEND_SERVER_NAME"] == "temporal"


# --- the certificate script -----------------------------------------------------------------------


def generate_tls(directory: Path, **settings: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], **settings}
    done = subprocess.run(
        ["/bin/sh", str(DEPLOY / "generate-tls.sh"), str(directory)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def usages(cert: x509.Certificate) -> set:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


@needs_openssl
def test_the_certificates_verify_against_their_ca(tmp_path):
    tls = tmp_path / "tls"
    generate_tls(tls)
    components = {"temporal"} | {component for _, component in TEMPORAL_CLIENTS.values()}
    assert {p.name for p in tls.iterdir()} == components | {"ca"}
    for component in components:
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", str(tls / "ca" / "ca.pem"), str(tls / component / "tls.pem")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert verified.returncode == 0 and verified.stdout.strip().endswith(": OK"), verified.stdout + verified.stderr
        assert (tls / component / "ca.pem").read_bytes() == (tls / "ca" / "ca.pem").read_bytes()
        assert not (tls / component / "ca.key").exists()

    server = certificate(tls / "temporal" / "tls.pem")
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "temporal" in names.get_values_for_type(x509.DNSName)
    # It serves the front end, and is the client certificate of the server's own services.
    assert usages(server) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    for component in components - {"temporal"}:
        assert usages(certificate(tls / component / "tls.pem")) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@needs_openssl
def test_a_certificate_of_another_ca_does_not_verify(tmp_path):
    generate_tls(tmp_path / "ours")
    generate_tls(tmp_path / "theirs")
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ours" / "ca" / "ca.pem"), str(tmp_path / "theirs" / "api" / "tls.pem")],
        capture_output=True,
        timeout=30,
    )
    assert verified.returncode != 0


@needs_openssl
def test_running_the_script_again_keeps_what_is_valid_and_renews_what_expires(tmp_path):
    tls = tmp_path / "tls"
    generate_tls(tls, TLS_DAYS="10")  # inside the 30 days of renewal
    ca, api = (tls / "ca" / "ca.pem").read_bytes(), (tls / "api" / "tls.pem").read_bytes()
    generate_tls(tls)
    assert (tls / "ca" / "ca.pem").read_bytes() == ca, "the CA is kept"
    renewed = (tls / "api" / "tls.pem").read_bytes()
    assert renewed != api, "a certificate expiring within 30 days is issued again"
    assert (certificate(tls / "api" / "tls.pem").not_valid_after_utc - datetime.now(UTC)).days >= 364
    again = generate_tls(tls)
    assert (tls / "api" / "tls.pem").read_bytes() == renewed and "issued" not in again.stdout


@needs_openssl
def test_the_keys_are_readable_by_their_containers_users_only(tmp_path):
    tls = tmp_path / "tls"
    generate_tls(tls)
    assert (tls.stat().st_mode & 0o777) == 0o700, "no other user of the host may enter"
    assert (tls / "ca" / "ca.key").stat().st_mode & 0o077 == 0
    if os.geteuid() == 0:  # as root, each key belongs to the uid of the image that reads it, 0400
        owners = {"temporal": 1000, "ui": 1000, "admin": 1000, "api": 10001, "worker": 10001}
        for component, uid in owners.items():
            key = (tls / component / "tls.key").stat()
            assert (key.st_uid, key.st_mode & 0o777) == (uid, 0o400), component


def test_the_compose_secrets_are_the_scripts_files():
    declared = {spec["file"] for spec in COMPOSE["secrets"].values()}
    assert declared == {f"./deploy/secrets/{name}" for name in SECRET_FILES.values()}
