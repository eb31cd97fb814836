"""The keys of the deployment: deploy/generate-secrets.sh makes them with openssl,
and deploy/pim-entrypoint.sh hands them from their files to the real `pim`.

The scripts' output must be exactly what pim reads (a signing key and its public
half, the seal key, the TOTP secrets' key, the payload keys), a second run must
keep it, a rotation must keep the old public key trusted, and a file that cannot
be read must stop the start without showing anything of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pim.domain.models import ActivationRequest
from pim.identity.proofs import SigningKey, TrustedKeys
from pim.identity.secrets import SecretCipher
from pim.identity.totp import parse_seal_key
from pim.portal.session import SessionCodec
from pim.runtime.codec import parse_keys
from tests.deploy.compose import DEPLOY, SECRET_FILES

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


def generate_secrets(directory: Path, *flags: str) -> None:
    done = subprocess.run(
        ["/bin/sh", str(DEPLOY / "generate-secrets.sh"), *flags, str(directory)],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def read(directory: Path, setting: str) -> str:
    return (directory / SECRET_FILES[setting]).read_text().strip()


@needs_openssl
def test_the_secret_files_are_the_keys_pim_reads(tmp_path):
    generate_secrets(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == set(SECRET_FILES.values())
    signer = SigningKey.parse(read(tmp_path, "PIM_PROOF_SIGNING_KEY"))
    trusted = TrustedKeys.parse(read(tmp_path, "PIM_PROOF_TRUSTED_KEYS"))
    assert [key.serialize() for key in trusted.by_id.values()] == [signer.trusted().serialize()]
    assert len(parse_seal_key(read(tmp_path, "PIM_MFA_SEAL_KEY"))) == 32
    cipher = SecretCipher.from_setting(read(tmp_path, "PIM_MFA_SECRET_KEY"))
    assert cipher.open("alice", cipher.seal("alice", "JBSWY3DPEHPK3PXP")) == "JBSWY3DPEHPK3PXP"
    assert len(parse_keys(read(tmp_path, "PIM_PAYLOAD_KEYS"))) == 1
    session = SessionCodec.from_setting(read(tmp_path, "PIM_PORTAL_SESSION_KEY"))
    assert session.open(session.seal({"user": "alice"})) == {"user": "alice"}

    before = {name: (tmp_path / name).read_bytes() for name in SECRET_FILES.values()}
    generate_secrets(tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in SECRET_FILES.values()} == before, "existing keys are kept"


@needs_openssl
def test_rotating_the_signing_key_keeps_the_old_one_trusted(tmp_path):
    generate_secrets(tmp_path)
    old = SigningKey.parse(read(tmp_path, "PIM_PROOF_SIGNING_KEY"))
    generate_secrets(tmp_path, "--rotate-signing-key")
    new = SigningKey.parse(read(tmp_path, "PIM_PROOF_SIGNING_KEY"))
    assert new.key_id != old.key_id
    trusted = TrustedKeys.parse(read(tmp_path, "PIM_PROOF_TRUSTED_KEYS"))
    assert list(trusted.by_id) == [new.key_id, old.key_id], "the new key first, the old one until its proofs expire"


def run_entrypoint(tmp_path: Path, args: list[str], **files: str) -> subprocess.CompletedProcess:
    """deploy/pim-entrypoint.sh with the real `pim` on PATH, in an empty directory
    (no `pim dev` keys), with only the PIM_*_FILE settings given."""
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path), **files}
    return subprocess.run(
        ["/bin/sh", str(DEPLOY / "pim-entrypoint.sh"), *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=60
    )


@needs_openssl
def test_the_entrypoint_hands_the_files_to_pim(tmp_path):
    keys = tmp_path / "secrets"
    generate_secrets(keys)
    done = run_entrypoint(
        tmp_path,
        ["sign", "request", "grp-db", "--as", "alice", "--duration", "1h", "--justification", "INC-1", "--mfa-code", "123456"],
        PIM_PROOF_SIGNING_KEY_FILE=str(keys / "proof-signing.key"),
        PIM_MFA_SEAL_KEY_FILE=str(keys / "mfa-seal.key"),
    )
    assert done.returncode == 0, done.stderr
    signed = json.loads(done.stdout)
    # Signed with the key of the file, as the workers' trusted key checks it ...
    request = ActivationRequest.model_validate(signed)
    claims = TrustedKeys.parse(read(keys, "PIM_PROOF_TRUSTED_KEYS")).verify(
        request.proof,
        actor="alice",
        action="request",
        target=request.workflow_id,
        payload=request.signed_part(),
        now=datetime.now(UTC),
    )
    assert claims.issuer == "pim-api"
    # ... and the code sealed with the seal key of the file.
    assert signed["mfa"]["sealed"] is True and signed["mfa"]["code"] != "123456"


def test_the_entrypoint_stops_on_a_file_it_cannot_read(tmp_path):
    done = run_entrypoint(tmp_path, ["health"], PIM_PROOF_SIGNING_KEY_FILE=str(tmp_path / "missing.key"))
    assert done.returncode == 78
    assert "PIM_PROOF_SIGNING_KEY_FILE: cannot read" in done.stderr
