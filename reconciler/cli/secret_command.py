"""`reconcile secret init` and `reconcile secret encrypt`: `age:` references.

`init` makes the controller's age identity (once; mode 0600) and prints its recipient.
`encrypt` reads a value on stdin and prints the `age:` reference to put in the state
file: the value encrypted to that recipient (or to `--recipient`, to write a reference
for another controller), which only the identity decrypts. With `--file PATH` it writes
an (armored) age file instead, next to the state file, named as `age-file:PATH`.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys

from reconciler.cli import exit_codes
from reconciler.errors import PermanentError
from state.secrets import AGE_IDENTITY_ENV, age_identity


class AgeFailed(PermanentError, RuntimeError):
    """age or age-keygen refused; the message is theirs, never a value."""


def _run(args: list[str], stdin: bytes = b"") -> bytes:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AgeFailed(f"{args[0]}: {type(exc).__name__}: {exc}") from None
    if done.returncode != 0:
        raise AgeFailed(f"{args[0]}: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.stdout


def _recipient(identity: str) -> str:
    return _run(["age-keygen", "-y", identity]).decode().strip()


def cmd_secret(args: argparse.Namespace) -> int:
    identity = age_identity()
    if args.action == "init":
        if identity.exists():
            print(f"{identity} exists already; its recipient:", file=sys.stderr)
        else:
            identity.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            old = os.umask(0o077)
            try:
                _run(["age-keygen", "-o", str(identity)])
            finally:
                os.umask(old)
            print(f"made the controller's age identity {identity} (mode 0600)", file=sys.stderr)
        print(_recipient(str(identity)))
        return exit_codes.OK
    recipient = args.recipient
    if recipient is None:
        if not identity.is_file():
            raise AgeFailed(
                f"no age identity at {identity} (${AGE_IDENTITY_ENV}): run `reconcile secret "
                "init` on the controller, or give --recipient"
            )
        recipient = _recipient(str(identity))
    value = sys.stdin.buffer.read()
    if value.endswith(b"\n"):
        value = value[:-1]  # `echo secret |` and a file saved by an editor
    if not value:
        raise AgeFailed("encrypt: expected the value on stdin")
    if args.file is not None:
        armored = _run(["age", "--encrypt", "--armor", "--recipient", recipient], stdin=value)
        args.file.write_bytes(armored)
        print(f"wrote {args.file}; name it in the state file as age-file:PATH (relative to it)")
        return exit_codes.OK
    ciphertext = _run(["age", "--encrypt", "--recipient", recipient], stdin=value)
    print(f"age:{base64.b64encode(ciphertext).decode()}")
    return exit_codes.OK
