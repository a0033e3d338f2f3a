"""Write the hostile corpus: one state file per case, made from `base.yaml` by one change.

Each file's first line says what `validate` must answer: `# expect: TEXT`, a piece of
the one-line error (file:line: field: what was expected). Run from the repository
root: `python -m tests.hostile.make_corpus` (rewrites tests/hostile/<class>/).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
BASE = (HERE / "base.yaml").read_text().split("\n", 1)[1]  # without its comment line

# One case per hostile change: [name, old text in base.yaml, new text, expected error],
# by class, in cases.json (data, so that each case is one line).
Case = tuple[str, str, str, str]
CLASSES: dict[str, list[Case]] = {
    cls: [(name, old, new, expect) for name, old, new, expect in cases]
    for cls, cases in json.loads((HERE / "cases.json").read_text(encoding="utf-8")).items()
}


def write_corpus(root: Path = HERE) -> int:
    written = 0
    for cls, cases in CLASSES.items():
        folder = root / cls
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, old, new, expect in cases:
            if BASE.count(old) != 1:
                raise SystemExit(f"{cls}/{name}: {old!r} is not in base.yaml exactly once")
            text = f"# expect: {expect}\n" + BASE.replace(old, new)
            (folder / f"{name}.yaml").write_text(text, encoding="utf-8", newline="")
            written += 1
    written += _write_extra(root / "bounds")
    return written


def _write_extra(folder: Path) -> int:
    """Whole-file cases: size, alias bombs, bytes that are not UTF-8, not a mapping."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    lol = '["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
    bomb = [f"a0: &a0 {lol}"] + [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)
    ]
    files = {
        "alias-bomb.yaml": ("expands past", "\n".join(bomb) + "\n" + BASE),
        "alias-chain.yaml": (
            "expands past",
            "".join(
                f"c{i}: &c{i} [*c{i - 1}, *c{i - 1}]\n" if i else "c0: &c0 [x]\n" for i in range(40)
            )
            + BASE,
        ),
        "deep-block.yaml": (
            "nesting deeper than",
            BASE + "".join("  " * i + f"k{i}:\n" for i in range(80)),
        ),
        "not-a-mapping.yaml": ("expected a mapping", "- version: 1\n"),
        "scalar.yaml": ("expected a mapping", "just words\n"),
        "empty.yaml": ("expected a mapping", ""),
    }
    for name, (expect, text) in files.items():
        (folder / name).write_text(f"# expect: {expect}\n{text}", encoding="utf-8")
    (folder / "latin1.yaml").write_bytes(b"# expect: cannot read\nversion: 1\nhosts: {k\xe9: {}}\n")
    (folder / "too-big.yaml").write_text(
        "# expect: a state file may have\n" + BASE + "# " + "x" * (1 << 20) + "\n"
    )
    return len(files) + 2


if __name__ == "__main__":
    print(f"wrote {write_corpus()} files under {HERE}", file=sys.stderr)
