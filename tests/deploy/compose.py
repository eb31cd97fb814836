"""Reading docker-compose.yml as `docker compose` would, without a Docker engine:
its services, their environment with variables at their defaults, their
dependencies, scripts, published ports, mounts and secrets."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pim.runtime.settings import PimSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
PIM_VARIABLES = {f"PIM_{name.upper()}" for name in PimSettings.model_fields}
# The files deploy/generate-secrets.sh writes, by setting.
SECRET_FILES = {
    "PIM_PROOF_SIGNING_KEY": "proof-signing.key",
    "PIM_PROOF_TRUSTED_KEYS": "proof-trusted.keys",
    "PIM_MFA_SEAL_KEY": "mfa-seal.key",
    "PIM_MFA_SECRET_KEY": "mfa-secret.key",
    "PIM_PAYLOAD_KEYS": "payload.keys",
    "PIM_PORTAL_SESSION_KEY": "portal-session.key",
}
# deploy/pim-entrypoint.sh reads PIM_<NAME>_FILE into PIM_<NAME> before pim starts.
FILE_SUFFIX = "_FILE"


def interpolate(value: str) -> str:
    """What compose makes of a value when no variable is set: `${X:-d}` -> d, `$$` -> `$`.
    `${X:?message}` (a variable the operator must set) is left as it is."""

    def default(match: re.Match) -> str:
        if match.group(2) is None:
            raise AssertionError(f"{match.group(0)} has no default: `docker compose up` would need it set")
        return match.group(2)

    value = re.sub(r"(?<!\$)\$\{(\w+)(?::?-([^}]*))?\}", default, str(value))
    return value.replace("$$", "$")


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(value) for key, value in env.items()}


def pim_settings(service: str) -> dict[str, str]:
    """The PIM_* settings the pim process of `service` gets: its environment, with each
    PIM_X_FILE named as PIM_X (its value is then the file's path, not the setting's)."""
    env = environment(service)
    return {key.removesuffix(FILE_SUFFIX) if key.startswith("PIM_") else key: value for key, value in env.items()}


def depends_on(service: str) -> dict[str, str]:
    deps = SERVICES[service].get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def script(service: str) -> str:
    command = SERVICES[service].get("command") or []
    return "\n".join(command) if isinstance(command, list) else command


def published_ports(service: str) -> dict[int, str]:
    """Host port -> the host address it is published on ("" for every interface)."""
    published = {}
    for port in SERVICES[service].get("ports") or []:
        if isinstance(port, dict):
            published[int(port["published"])] = port.get("host_ip", "")
            continue
        parts = interpolate(port).split(":")
        assert len(parts) >= 2, f"{service}: port {port!r} publishes a random host port"
        published[int(parts[-2])] = ":".join(parts[:-2])
    return published


def mounts(service: str) -> dict[str, str]:
    """Container path -> host path (relative to the compose file) of its bind mounts."""
    found = {}
    for volume in SERVICES[service].get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                found[volume["target"]] = volume["source"]
            continue
        source, target, *_ = str(volume).split(":")
        if source.startswith((".", "/")):
            found[target] = source
    return found


def secrets(service: str) -> dict[str, str]:
    """Path in the container -> the file on the host, of the compose secrets it gets."""
    found = {}
    for entry in SERVICES[service].get("secrets") or []:
        name = entry if isinstance(entry, str) else entry["source"]
        target = f"/run/secrets/{name}" if isinstance(entry, str) else entry.get("target", f"/run/secrets/{name}")
        found[target] = COMPOSE["secrets"][name]["file"]
    return found


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))
