"""A restored snapshot is a host's word: only regular files are verified, nothing is
followed, and one bad entry is a problem of its policy, never an exception."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from reconciler.repositories.verify import confine, entries, verify_copies


def a_database(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")


def test_a_fifo_where_a_copy_belongs_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    a_database(tmp_path / "root/sqlite/good.db")
    os.mkfifo(tmp_path / "root/sqlite/metrics.db")
    files, problems = verify_copies(tmp_path / "root")
    assert files == 1
    assert problems == ["sqlite/metrics.db is a FIFO: refused (a copy must be a regular file)"]


def test_a_symlink_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "controller" / "created-by-the-drill.db"
    (tmp_path / "root/sqlite").mkdir(parents=True)
    (tmp_path / "root/sqlite/metrics.db").symlink_to(outside)
    (tmp_path / "root/repo.bundle").symlink_to("/etc/shadow")
    files, problems = verify_copies(tmp_path / "root")
    assert files == 0
    assert len(problems) == 2 and all("is a symlink: refused" in p for p in problems)
    assert not outside.exists() and not outside.parent.exists()


def test_a_corrupt_database_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "root/sqlite").mkdir(parents=True)
    (tmp_path / "root/sqlite/metrics.db").write_bytes(b"\x1b[31mnot a database" * 100)
    _, problems = verify_copies(tmp_path / "root")
    assert len(problems) == 1 and "metrics.db: not a readable SQLite database" in problems[0]


def test_entries_lists_odd_ones_anywhere(tmp_path: Path) -> None:
    (tmp_path / "etc/app").mkdir(parents=True)
    (tmp_path / "etc/app/link").symlink_to("/root/.ssh")
    (tmp_path / "etc/app/conf").write_text("x")
    regular, odd = entries(tmp_path)
    assert [p.name for p in regular] == ["conf"]
    assert [line for _, line in odd] == ["etc/app/link is a symlink"]


def test_confine_leaves_out_links_fifos_and_privilege_bits(tmp_path: Path) -> None:
    """What a restore puts back on a host: regular files and directories only, and no
    setuid or setgid bit (the issue's planted setuid-root file)."""
    root = tmp_path / "root"
    (root / "data/sub").mkdir(parents=True)
    (root / "data/rows.txt").write_text("x")
    (root / "data/rootshell").write_bytes(b"\x7fELF")
    (root / "data/rootshell").chmod(0o4755)
    (root / "data/sub").chmod(0o2775)
    (root / "data/out").symlink_to("/etc")
    (root / "data/in").symlink_to("rows.txt")
    os.mkfifo(root / "data/pipe")
    changes = confine(root)
    assert sorted(p.name for p in (root / "data").iterdir()) == ["rootshell", "rows.txt", "sub"]
    assert (root / "data/rootshell").stat().st_mode & 0o7777 == 0o755
    assert (root / "data/sub").stat().st_mode & 0o7777 == 0o775
    assert len(changes) == 5, changes
    assert "data/out is a symlink: left out (only regular files and directories)" in changes
    assert "data/rootshell: setuid/setgid bit cleared" in changes
    assert Path("/etc").is_dir()  # nothing was followed
