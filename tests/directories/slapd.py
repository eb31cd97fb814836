"""A real OpenLDAP server for tests: slapd on 127.0.0.1 and a free port, with a
throwaway slapd.conf and an mdb database in a temporary directory.

slapd comes from the Debian packages `slapd` and `ldap-utils`. When it is not
installed, `find_slapd` installs it with apt-get only where that is expected
(CI, or PIM_INSTALL_SLAPD=1), and otherwise fails with how to install it: these
tests must not pass by being skipped."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from ldap3 import BASE, LEVEL, Connection, Server

SUFFIX = "dc=pim,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "slapd-test-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
USERS = ("admin", "dave", "alice", "bob", "carol")  # the demo tenant's users (SPEC section 8)
SCHEMAS = ("core", "cosine", "inetorgperson")
HOW_TO_INSTALL = (
    "slapd is not installed: run `sudo DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils` "
    "(or set PIM_INSTALL_SLAPD=1 to let the tests install it)"
)


def user_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


def find_slapd() -> str:
    found = shutil.which("slapd") or next((p for p in ("/usr/sbin/slapd",) if Path(p).exists()), None)
    if found:
        return found
    if not (os.environ.get("CI") or os.environ.get("PIM_INSTALL_SLAPD")):
        pytest.fail(HOW_TO_INSTALL, pytrace=False)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "slapd", "ldap-utils"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"apt-get could not install slapd: {done.stderr[-2000:]}\n{HOW_TO_INSTALL}", pytrace=False)
    # The package's postinst may start a system slapd (on port 389): it is not ours.
    try:
        subprocess.run(["service", "slapd", "stop"], capture_output=True)
    except OSError:
        pass
    return shutil.which("slapd") or "/usr/sbin/slapd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Slapd:
    """One slapd; stop() and start() again keep its data and its port."""

    def __init__(self, root: Path) -> None:
        self.binary = find_slapd()
        self.root = root
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        (root / "data").mkdir(parents=True, exist_ok=True)
        self.conf = root / "slapd.conf"
        includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
        self.conf.write_text(f"""{includes}
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 67108864
directory {root}/data
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
""")

    def start(self, timeout: float = 15.0) -> None:
        log = open(self.root / "slapd.log", "ab")
        # -d 0: stay in the foreground (no fork), so that this Popen is slapd itself.
        self.process = subprocess.Popen(
            [self.binary, "-h", f"{self.url}/", "-f", str(self.conf), "-d", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"slapd exited with {self.process.returncode}: "
                    f"{(self.root / 'slapd.log').read_text(errors='replace')[-2000:]}"
                )
            try:
                with self.connect():
                    return
            except Exception:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"slapd did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def connect(self) -> Connection:
        """A bound connection as the root DN (for setting up and for looking behind PIM's back)."""
        return Connection(
            Server(self.url, connect_timeout=2), ROOT_DN, ROOT_PASSWORD, auto_bind=True, receive_timeout=5, raise_exceptions=True
        )

    def reset(self) -> None:
        """Empty the tree, then load the base entries: the demo users, and grp-ops (carol
        member, as the demo seed has her permanently), grp-dev (empty) and grp-sre."""
        with self.connect() as conn:
            self._delete_below(conn, SUFFIX)
            if not self._exists(conn, SUFFIX):
                conn.add(SUFFIX, ["dcObject", "organization"], {"dc": "pim", "o": "PIM tests"})
            conn.add(PEOPLE, ["organizationalUnit"], {"ou": "people"})
            conn.add(GROUPS, ["organizationalUnit"], {"ou": "groups"})
            for uid in USERS:
                conn.add(user_dn(uid), ["inetOrgPerson"], {"uid": uid, "cn": uid.capitalize(), "sn": uid})
            self.add_group(conn, "grp-ops", members=[user_dn("carol")])
            self.add_group(conn, "grp-dev", members=[""])  # groupOfNames needs one member: the empty DN
            self.add_group(conn, "grp-sre", members=[user_dn("alice"), user_dn("dave")])

    @staticmethod
    def add_group(conn: Connection, cn: str, members: list[str], dn: str | None = None) -> None:
        conn.add(dn or group_dn(cn), ["groupOfNames"], {"cn": cn, "member": members})

    def values(self, group: str, attribute: str = "member") -> set[str]:
        """What slapd itself holds in a group's attribute (lower-cased DNs, the placeholder left out)."""
        with self.connect() as conn:
            conn.search(group_dn(group), "(objectClass=*)", search_scope=BASE, attributes=[attribute])
            values = conn.response[0]["raw_attributes"].get(attribute, [])
        return {v.decode().lower() for v in values if v}

    @staticmethod
    def _exists(conn: Connection, dn: str) -> bool:
        try:
            return conn.search(dn, "(objectClass=*)", search_scope=BASE, attributes=["1.1"])
        except Exception:
            return False

    def _delete_below(self, conn: Connection, dn: str) -> None:
        if not self._exists(conn, dn):
            return
        conn.search(dn, "(objectClass=*)", search_scope=LEVEL, attributes=["1.1"])
        for child in [r["dn"] for r in conn.response if r.get("type") == "searchResEntry"]:
            self._delete_below(conn, child)
            conn.delete(child)
