"""`reconcile install-controller STATE`: this machine becomes the fleet's controller.

It runs our own pyinfra deploy (deploys/install_controller.py, shipped in the wheel) on
this machine with the pyinfra of this venv: the config directory (0700), the
environment file (0600, created empty, never overwritten), the sandboxed watch unit
with its credentials (`LoadCredential=NAME:FILE`, read as `cred:NAME`) and its
StateDirectory, then the unit enabled and (re)started. `--dry-run` shows pyinfra's
plan and changes nothing. Refused before anything is written: a state file that does
not load, a credential file that others may read, a `cred:NAME` of the state file that
no `--credential NAME=FILE` gives."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

from deploys.controller_files import ENVIRONMENT_FILE, SERVICE, WATCH_UNIT
from reconciler.cli import exit_codes
from reconciler.cli.terminal import report
from reconciler.errors import Refused, UsageError
from state.errors import dotted
from state.load import LoadedFleet, load_fleet
from state.secrets import secret_references
from state.yaml_lines import line_for

CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}")  # as state.types' cred:
CREDENTIAL_PATH = re.compile(r"/[A-Za-z0-9_./@+-]{1,1023}")
"""A credential file's path goes into the unit (`LoadCredential=NAME:PATH`) and through
the deploy's `NAME=FILE,...`: no space, comma, colon or `=` that would split it."""
DEPLOY = "deploys.install_controller"
CREDENTIAL_MODE_MASK = 0o077  # group and others: a credential file is its owner's alone


def cmd_install_controller(args: argparse.Namespace) -> int:
    if args.mode == "timer" and (
        args.credential or args.credential_encrypted or args.http or args.hooks
    ):
        raise UsageError("credentials, --http and --hooks are the watch's: not with --mode timer")
    state = Path(args.state).resolve()
    loaded = load_fleet(str(state))
    credentials = given_credentials(args.credential)
    encrypted = given_credentials(args.credential_encrypted, sealed=True)
    if both := set(credentials) & set(encrypted):
        raise UsageError(f"credential {', '.join(sorted(both))} given twice")
    missing_credentials(loaded, {**credentials, **encrypted})
    watch_args = [*(["--http", args.http] if args.http else [])]
    watch_args += ["--hooks", args.hooks] if args.hooks else []
    env = {
        **os.environ,
        "FLEET_STATE": str(state),
        "RECONCILE_MODE": args.mode,
        "RECONCILE_INTERVAL": args.interval,
        "RECONCILE_BIN": str(Path(sys.executable).parent / "reconcile"),
        "RECONCILE_CREDENTIALS": _pairs(credentials),
        "RECONCILE_CREDENTIALS_ENCRYPTED": _pairs(encrypted),
        "RECONCILE_WATCH_ARGS": shlex.join(watch_args),
    }
    # --dry without -y: pyinfra detects and shows the changes, then does nothing.
    mode = "--dry" if args.dry_run else "-y"
    argv = [str(Path(sys.executable).parent / "pyinfra"), mode, "@local", _deploy_file()]
    report(f"installing the {args.mode} controller of {state} with pyinfra (@local)")
    done = subprocess.run(argv, env=env, check=False)
    if done.returncode != 0:
        raise Refused(f"the controller's deploy failed (pyinfra exited {done.returncode})")
    if args.dry_run:
        return exit_codes.OK
    unit = WATCH_UNIT if args.mode == "watch" else f"{SERVICE}.timer"
    report(
        f"installed: `systemctl status {unit}`, `journalctl -u {unit.split('.')[0]}`, "
        f"`reconcile doctor {state}`; other secrets go in {ENVIRONMENT_FILE} (env:NAME)"
    )
    return exit_codes.OK


def given_credentials(pairs: list[str], sealed: bool = False) -> dict[str, str]:
    """`--credential NAME=FILE`, each checked: a credential name, and a regular file
    that only its owner may read (systemd hands the service a copy of it); `sealed`
    (`--credential-encrypted`, made by `systemd-creds encrypt`) may be read by others."""
    credentials: dict[str, str] = {}
    for pair in pairs:
        name, _, file = pair.partition("=")
        if not CREDENTIAL_NAME.fullmatch(name) or not file:
            raise UsageError(f"credential {pair!r}: expected NAME=FILE (NAME as in cred:NAME)")
        path = Path(file).resolve()
        if not CREDENTIAL_PATH.fullmatch(str(path)):
            raise UsageError(
                f"credential {name}: {str(path)!r}: expected a path of letters, digits and "
                "'_./@+-' (it goes into the unit as written)"
            )
        try:
            info = path.stat()
        except OSError as exc:
            raise Refused(f"credential {name}: cannot read {path}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"credential {name}: {path} is not a regular file")
        if not sealed and stat.S_IMODE(info.st_mode) & CREDENTIAL_MODE_MASK:
            raise Refused(
                f"credential {name}: {path} is mode {stat.S_IMODE(info.st_mode):04o}: "
                "others may read it (expected 0600: chmod 600 it)"
            )
        credentials[name] = str(path)
    return credentials


def _pairs(credentials: dict[str, str]) -> str:
    return ",".join(f"{name}={path}" for name, path in sorted(credentials.items()))


def missing_credentials(loaded: LoadedFleet, credentials: dict[str, str]) -> None:
    """Every `cred:NAME` of the state file has its `--credential NAME=FILE`: a unit
    installed without one would fail on its first pass, at night."""
    for path, ref in secret_references(loaded.fleet):
        kind, _, name = ref.partition(":")
        if kind == "cred" and name not in credentials:
            line = line_for(loaded.lines, path)
            raise Refused(
                f"{loaded.file}:{line}: {dotted(path)}: {ref} is given to the "
                f"service by no --credential {name}=FILE"
            )


def _deploy_file() -> str:
    found = importlib.util.find_spec(DEPLOY)
    if found is None or found.origin is None:
        raise Refused(f"{DEPLOY} is not installed beside reconciler (reinstall the wheel)")
    return found.origin
