"""How workers, the CLI and services reach Temporal: Temporal's client
environment configuration, with explicit PIM_ settings on top."""

from __future__ import annotations

import pytest
from temporalio.service import TLSConfig

from pim.runtime.settings import PimSettings
from pim.runtime.temporal import connect_options

PIM_VARIABLES = (
    "PIM_TEMPORAL_ADDRESS",
    "PIM_NAMESPACE",
    "PIM_TEMPORAL_API_KEY",
    "PIM_TEMPORAL_TLS",
    "PIM_TEMPORAL_TLS_CERT",
    "PIM_TEMPORAL_TLS_KEY",
    "PIM_TEMPORAL_TLS_CA",
    "PIM_TEMPORAL_TLS_SERVER_NAME",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in PIM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/temporalio/temporal.toml of the developer's


def options(monkeypatch, **environ) -> dict:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return connect_options(PimSettings(), environ={k: v for k, v in environ.items() if k.startswith("TEMPORAL_")})


def test_the_defaults_reach_a_local_dev_server(monkeypatch):
    found = options(monkeypatch)
    assert (found["target_host"], found["namespace"]) == ("localhost:7233", "default")
    assert "tls" not in found and "api_key" not in found


def test_temporal_cloud_with_an_api_key_from_temporal_variables(monkeypatch):
    found = options(
        monkeypatch, TEMPORAL_ADDRESS="ns.a1b2c.tmprl.cloud:7233", TEMPORAL_NAMESPACE="ns.a1b2c", TEMPORAL_API_KEY="key-123"
    )
    assert found["target_host"] == "ns.a1b2c.tmprl.cloud:7233" and found["namespace"] == "ns.a1b2c"
    assert found["api_key"] == "key-123" and found["tls"] is True


def test_explicit_pim_settings_win(monkeypatch):
    found = options(
        monkeypatch, TEMPORAL_ADDRESS="elsewhere:7233", PIM_TEMPORAL_ADDRESS="temporal:7233", PIM_TEMPORAL_API_KEY="pim-key"
    )
    assert found["target_host"] == "temporal:7233" and found["api_key"] == "pim-key" and found["tls"] is True


def test_mutual_tls_from_pim_files(monkeypatch, tmp_path):
    (tmp_path / "client.pem").write_bytes(b"CERT")
    (tmp_path / "client.key").write_bytes(b"KEY")
    (tmp_path / "ca.pem").write_bytes(b"CA")
    found = options(
        monkeypatch,
        PIM_TEMPORAL_TLS_CERT=str(tmp_path / "client.pem"),
        PIM_TEMPORAL_TLS_KEY=str(tmp_path / "client.key"),
        PIM_TEMPORAL_TLS_CA=str(tmp_path / "ca.pem"),
        PIM_TEMPORAL_TLS_SERVER_NAME="temporal.internal",
    )
    tls = found["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert, tls.domain) == (
        b"CERT",
        b"KEY",
        b"CA",
        "temporal.internal",
    )


def test_mutual_tls_from_temporal_variables(monkeypatch, tmp_path):
    (tmp_path / "c.pem").write_bytes(b"CERT")
    (tmp_path / "c.key").write_bytes(b"KEY")
    found = options(
        monkeypatch, TEMPORAL_TLS_CLIENT_CERT_PATH=str(tmp_path / "c.pem"), TEMPORAL_TLS_CLIENT_KEY_PATH=str(tmp_path / "c.key")
    )
    assert isinstance(found["tls"], TLSConfig)
    assert (found["tls"].client_cert, found["tls"].client_private_key) == (b"CERT", b"KEY")


def test_a_half_given_certificate_pair_or_a_missing_file_is_named(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="PIM_TEMPORAL_TLS_CERT and PIM_TEMPORAL_TLS_KEY"):
        options(monkeypatch, PIM_TEMPORAL_TLS_CERT=str(tmp_path / "client.pem"))
    monkeypatch.delenv("PIM_TEMPORAL_TLS_CERT")
    with pytest.raises(ValueError, match="PIM_TEMPORAL_TLS_CA: cannot read"):
        options(monkeypatch, PIM_TEMPORAL_TLS_CA=str(tmp_path / "missing.pem"))
