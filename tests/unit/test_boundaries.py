"""Process boundaries that the import contracts (pyproject, `lint-imports`) cannot see."""

from __future__ import annotations

import subprocess
import sys


def test_cli_start_up_does_not_load_pydantic_before_the_worker_starts() -> None:
    """The CLI starts the SSH worker first so its imports overlap ours: the modules that
    run before that must stay light (no pydantic, no spec models)."""
    code = (
        "import sys, reconciler.cli.main; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'pydantic', 'pyinfra', 'gevent'}); "
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
