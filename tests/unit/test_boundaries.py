"""Process boundaries: the long-running side never loads gevent or pyinfra."""

from __future__ import annotations

import subprocess
import sys


def test_daemon_and_cli_modules_do_not_load_gevent_or_pyinfra() -> None:
    code = (
        "import sys, reconciler.cli, reconciler.loop, reconciler.reconcile, reconciler.status; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'gevent', 'pyinfra'}); "
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_only_backups_may_import_restic() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(path.relative_to(root))
        for package in ("state", "reconciler", "deploys", "tests", "bench")
        for path in (root / package).rglob("*.py")
        if any(
            line.strip().startswith(("import restic", "from restic"))
            for line in path.read_text().splitlines()
        )
    ]
    assert offenders == []
