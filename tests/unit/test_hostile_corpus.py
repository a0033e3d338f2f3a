"""The hostile corpus: every file is refused with one clear line, never a crash or a hang.

`tests/hostile/<class>/*.yaml` are state files made from `base.yaml` by one hostile
change each (`python -m tests.hostile.make_corpus` writes them). Each names, in its
first line, a piece of the error it must get. Both `validate` and `--dry-run` must:
exit 1, print no traceback, name file:line and the field in each line, and finish
within a bound; the alias bomb and the deep files are also bounded in memory.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.hostile.make_corpus import CLASSES

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "hostile"
FILES = sorted(p for p in CORPUS.glob("*/*.yaml"))
LINE = re.compile(r"^error: (?P<file>\S+?)(?::(?P<line>\d+))?: (?P<rest>.+)$")


def expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def test_corpus_is_large_and_current() -> None:
    assert len(FILES) >= 150
    made = {f"{cls}/{name}.yaml" for cls, cases in CLASSES.items() for name, *_ in cases}
    assert made <= {str(p.relative_to(CORPUS)) for p in FILES}, (
        "run python -m tests.hostile.make_corpus"
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
@pytest.mark.parametrize("command", [["validate"], ["--dry-run"]], ids=["validate", "dry-run"])
def test_hostile_file_is_refused_with_one_clear_line(
    path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*command, str(path)])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert lines, out
    for line in lines:
        match = LINE.match(line)
        assert match, f"not one clear line: {line!r}"
        assert match["file"] == str(path)
    assert any(expected(path) in line for line in lines), err
    located = [m for m in map(LINE.match, lines) if m and m["line"]]
    if path.parent.name not in {"bounds"}:
        assert located, f"no file:line in {err!r}"


@pytest.mark.parametrize(
    "name", ["alias-bomb.yaml", "alias-chain.yaml", "deep-block.yaml", "too-big.yaml"]
)
def test_bombs_are_bounded_in_time_and_memory(name: str) -> None:
    """In a child with 512 MiB of address space and 60 s: refused, not killed. Each takes
    about 0.5 s; the bound is far above that (one CI run under load took 10 s), and far
    below what an unbounded expansion takes (minutes, and gigabytes)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 29, 1 << 29))

    done = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "validate", str(CORPUS / "bounds" / name)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stderr
    assert expected(CORPUS / "bounds" / name) in done.stderr
