"""`reconcile doctor [STATE]`: what this controller needs, checked, one line each, in the
spirit of `flux check` and `brew doctor`; exit 1 when anything is wrong.

Tools and their versions, the state directory's owner and modes, the journal's schema,
key files' modes, a known host key for every host, every secret reference resolvable
(never printed), etcd reachable with quorum, the git source reachable, the webhook
secret when `--hooks` is meant, and the clock synchronised. Read-only: it changes
nothing (it does not even create a missing journal)."""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from reconciler.cli import exit_codes
from reconciler.cli.installed_unit import installed_unit
from reconciler.cli.version import TOOLS, tool_version
from reconciler.coordination.etcd import EtcdClient, EtcdUnavailable
from reconciler.forge.source import open_mirror
from reconciler.store.journal import SCHEMA_VERSION
from state.errors import SpecError, dotted
from state.load import LoadedFleet, load_fleet
from state.secrets import SecretUnavailable, age_identity, resolve_secret, secret_references
from state.spec.controller import EtcdCoordination
from state.ssh import known_hosts_file
from state.yaml_lines import line_for

REQUIRED_TOOLS = ("restic", "age", "git", "ssh", "gpg", "sqlite3")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # said, but not a failure (the check could not be made here)


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = list(run_checks(args.state, args.journal, args.hooks))
    if args.output == "json":
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        for check in checks:
            mark = "ok  " if check.ok else ("warn" if check.warning else "FAIL")
            print(f"{mark}  {check.name}: {check.detail}")
        failed = sum(1 for c in checks if not c.ok and not c.warning)
        print(f"\n{len(checks)} checks, {failed} failed")
    return exit_codes.ERROR if any(not c.ok and not c.warning for c in checks) else exit_codes.OK


def run_checks(state: str, journal: Path, hooks: bool) -> Iterator[Check]:
    yield from _tools()
    yield from _state_directory(journal)
    yield _clock()
    try:
        loaded = load_fleet(state)
    except SpecError as exc:
        yield Check(
            "state file", False, f"{state}: {len(exc.problems)} problem(s): {exc.problems[0]}"
        )
        return
    yield Check("state file", True, f"{state}: valid")
    yield from _keys(loaded)
    yield from _known_hosts(loaded)
    yield from _secrets(loaded)
    yield from _etcd(loaded)
    yield from _source(loaded, journal, hooks)


def _tools() -> Iterator[Check]:
    for name in REQUIRED_TOOLS:
        argv = TOOLS.get(name, [name, "--version"])
        if shutil.which(argv[0]) is None:
            yield Check(f"tool {name}", False, "not found on PATH (apt-get install it)")
        else:
            yield Check(f"tool {name}", True, tool_version(argv) if name in TOOLS else "found")


def _state_directory(journal: Path) -> Iterator[Check]:
    directory = journal.parent
    if not directory.exists():
        yield Check("state directory", False, f"{directory} does not exist")
        return
    info = directory.stat()
    loose = stat.S_IMODE(info.st_mode) & 0o077
    owner_ok = info.st_uid == os.geteuid()
    detail = f"{directory}, mode {stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid}"
    if loose or not owner_ok:
        why = "group or others may read it" if loose else "owned by another user"
        yield Check("state directory", False, f"{detail}: {why} (expected 0700, this user)")
    else:
        yield Check("state directory", True, detail)
    if not journal.exists():
        yield Check("journal", True, f"{journal} not created yet (the first run creates it)")
        return
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            sound = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        yield Check("journal", False, f"{journal}: unreadable: {exc}")
        return
    if version > SCHEMA_VERSION:
        yield Check("journal", False, f"schema {version} is newer than ours ({SCHEMA_VERSION})")
    elif sound != "ok":
        yield Check("journal", False, f"{journal}: integrity check: {sound}")
    else:
        mode = stat.S_IMODE(journal.stat().st_mode)
        ok = not mode & 0o077
        yield Check("journal", ok, f"{journal}, schema {version}, mode {mode:04o}")


def _private_file(name: str, path: Path) -> Check:
    if not path.exists():
        return Check(name, False, f"{path} does not exist")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Check(name, False, f"{path} is mode {mode:04o}: others may read it (chmod 600)")
    return Check(name, True, f"{path}, mode {mode:04o}")


def _keys(loaded: LoadedFleet) -> Iterator[Check]:
    keys = sorted({h.ssh_key for h in loaded.fleet.hosts.values() if h.ssh_key})
    for key in keys:
        yield _private_file(f"ssh key {key}", Path(key))
    identity = age_identity()
    if identity.exists() or _uses_age(loaded):
        yield _private_file("age identity", identity)


def _uses_age(loaded: LoadedFleet) -> bool:
    return any(ref.startswith("age:") for _, ref in secret_references(loaded.fleet))


def _known_hosts(loaded: LoadedFleet) -> Iterator[Check]:
    for name, host in sorted(loaded.fleet.hosts.items()):
        path = Path(known_hosts_file(host))
        if host.host_key_policy == "trust-on-first-use":
            yield Check(f"host key of {name}", True, "trusted on first use (then checked)")
            continue
        if not path.exists():
            yield Check(f"host key of {name}", False, f"{path} does not exist")
            continue
        found = subprocess.run(
            ["ssh-keygen", "-F", _host_key_name(host.address, host.ssh_port), "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if found.returncode == 0 and found.stdout.strip():
            yield Check(f"host key of {name}", True, f"{host.address} in {path}")
        else:
            yield Check(
                f"host key of {name}",
                False,
                f"no key for {host.address} in {path}: the host is refused (add it, "
                "checked out of band, or `reconcile enroll`)",
            )


def _host_key_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def _secrets(loaded: LoadedFleet) -> Iterator[Check]:
    """Every reference, as the service will resolve it: a shell has no
    $CREDENTIALS_DIRECTORY nor the unit's environment file, so `cred:` and `env:` are
    checked against the installed watch unit when there is one."""
    unit = None if os.environ.get("CREDENTIALS_DIRECTORY") else installed_unit()
    problems = []
    for path, ref in secret_references(loaded.fleet):
        where = f"{loaded.file}:{line_for(loaded.lines, path)}: {dotted(path)}"
        if unit is not None and ref.partition(":")[0] in ("cred", "env"):
            if (why := unit.problem(ref)) is not None:
                problems.append(f"{where}: {why}")
            continue
        try:
            resolve_secret(ref)
        except SecretUnavailable as exc:
            problems.append(f"{where}: {exc}")
    if not problems:
        seen = f", as {unit.path.name} sees them" if unit is not None else ""
        yield Check("secrets", True, f"every reference resolves{seen} (values not shown)")
    for problem in problems:
        yield Check("secret", False, problem)


def _etcd(loaded: LoadedFleet) -> Iterator[Check]:
    coordination = loaded.fleet.reconciler.coordination
    if not isinstance(coordination, EtcdCoordination):
        return
    client = EtcdClient(coordination.endpoints, coordination.retry_timeout.total_seconds())
    try:
        client.get(coordination.prefix.rstrip("/") + "/doctor")  # linearizable: needs quorum
        yield Check("etcd", True, f"{', '.join(coordination.endpoints)}: a quorum answered")
    except EtcdUnavailable as exc:
        yield Check("etcd", False, f"no quorum: {exc}")
    finally:
        client.close()


def _source(loaded: LoadedFleet, journal: Path, hooks: bool) -> Iterator[Check]:
    source = loaded.written.source
    if source is None:
        if hooks:
            yield Check("webhook", False, "--hooks: the state file has no source: to hook")
        return
    try:
        why = open_mirror(source, journal.parent).reachable()
    except SecretUnavailable as exc:
        why = str(exc)
    yield Check("git source", why is None, why or f"{source.url} {source.branch}: reachable")
    if hooks:
        ok = source.webhook_secret is not None
        detail = "source.webhook_secret is set" if ok else "--hooks: source.webhook_secret unset"
        yield Check("webhook", ok, detail)


ADJTIMEX_TIME_ERROR = 5  # the kernel's clock is not synchronised (adjtimex(2))


def _clock() -> Check:
    """The kernel's own word on NTP synchronisation (adjtimex(2), read only): signatures,
    leases and RPOs all trust this clock."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex, modes 0: read only
        state = libc.adjtimex(timex)
    except (OSError, AttributeError) as exc:
        return Check("clock", False, f"cannot ask the kernel: {exc}", warning=True)
    if state == ADJTIMEX_TIME_ERROR:
        return Check("clock", False, "not synchronised (start chrony or systemd-timesyncd)")
    if state < 0:
        return Check("clock", False, "adjtimex failed", warning=True)
    return Check("clock", True, "synchronised")
