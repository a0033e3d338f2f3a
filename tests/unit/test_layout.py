"""The code's shape, as docs/architecture.md describes it: every room in the layers
contract, each trust boundary one room that is the only place its input enters, and
modules and functions small enough to read."""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

from reconciler.channels.send import MODULES
from state.spec.notifications import Channel

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("reconciler", "state", "deploys", "backups")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
LONG_FUNCTIONS = {  # tables and parsers, read top to bottom
    ("reconciler/cli/parser.py", "build_verbs"): "the parser: every verb's flags",
    ("reconciler/web/app.py", "make_app"): "the route table of the page and its endpoints",
}
MAX_LATE_IMPORTS = 30


def _sources(*packages: str) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def _outside(room: str) -> Iterator[Path]:
    return (p for p in _sources("reconciler") if not p.is_relative_to(ROOT / room))


def _names_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names |= {a.name for a in node.names} | {node.module or ""}
    return names


def _strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_every_room_is_in_the_layers_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    rooms = {
        f"reconciler.{p.name}"
        for p in (ROOT / "reconciler").iterdir()
        if (p / "__init__.py").exists()
    }
    assert set(layers) == rooms
    loose = [
        p.name
        for p in (ROOT / "reconciler").glob("*.py")
        if p.name not in {"__init__.py", "errors.py"}
    ]
    assert loose == [], "every module lives in a room"


def test_every_room_says_what_it_holds() -> None:
    for init in sorted((ROOT / "reconciler").glob("*/__init__.py")):
        assert ast.get_docstring(ast.parse(init.read_text())), init.parent.name


def test_a_hosts_answers_enter_through_the_host_gateway_alone() -> None:
    """Plain ssh (`run_remote`, `ssh_argv`) and the host gateway's transport are used in
    reconciler/hosts alone: every other room asks a typed question there."""
    for path in _outside("reconciler/hosts"):
        used = _names_used(path)
        assert not used & {"ssh_argv", "sftp_argv", "run_remote", "reconciler.hosts.remote"}, path
        assert "ssh" not in _argv_heads(path), f"{path} runs ssh itself"


def _argv_heads(path: Path) -> set[str]:
    """The first word of every literal argv a module passes to subprocess."""
    heads = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr in {"run", "Popen", "check_output", "call"} and node.args:
            first = node.args[0]
            if isinstance(first, ast.List) and first.elts:
                head = first.elts[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    heads.add(head.value)
    return heads


def test_the_forges_input_enters_through_the_forge_room_alone() -> None:
    """Gitea's API, its webhook's headers and the git mirror of the source (the state
    files, templates and signatures a forge serves) are in reconciler/forge alone."""
    for path in _outside("reconciler/forge"):
        strings = " ".join(_strings(path))
        assert "/api/v1" not in strings, f"{path} calls Gitea's API itself"
        assert "X-Gitea-Signature" not in strings, f"{path} reads the webhook itself"
        assert "GitMirror" not in _calls(path), f"{path} opens the mirror itself"


def _calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }


def test_a_channels_answers_enter_through_its_own_module() -> None:
    """One module per channel, all behind `deliver`, one for every kind of channel."""
    kinds = set(get_args(get_args(Channel)[0]))
    assert set(MODULES) == kinds
    for path in _outside("reconciler/channels"):
        assert "sendMessage" not in " ".join(_strings(path)), path


def test_each_limit_on_untrusted_input_is_defined_once() -> None:
    """A size bound is written in reconciler/untrusted/limits.py (or, for the state file,
    in state.yaml_lines), and imported wherever it is read."""
    mib = re.compile(r"^[A-Z_]+ = (1 << 20|1024 \* 1024|1_048_576)\b", re.M)
    found = [p for p in _sources(*PACKAGES) if mib.search(p.read_text())]
    assert found == [ROOT / "reconciler/untrusted/limits.py", ROOT / "state/yaml_lines.py"]


def test_no_module_is_longer_than_a_reader_can_hold() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _sources(*PACKAGES)
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_longer_than_a_screen_unless_it_is_a_table() -> None:
    long = {}
    for path in _sources(*PACKAGES):
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES and (where, node.name) not in LONG_FUNCTIONS:
                    long[f"{where}:{node.name}"] = size
    assert long == {}


def test_imports_inside_functions_are_few_and_each_says_why() -> None:
    """An import inside a function hides a dependency: only where start-up time needs it
    (the CLI and the SSH worker start before pydantic and pyinfra load), with a comment
    on its line or the line above that says so."""
    late = []
    for path in _sources(*PACKAGES):
        lines = path.read_text().splitlines()
        for func in ast.walk(ast.parse(path.read_text())):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    said = lines[node.lineno - 1] + lines[node.lineno - 2]
                    late.append((path, node.lineno, "start-up" in said or "runs tools" in said))
    assert len(late) <= MAX_LATE_IMPORTS
    assert [f"{p}:{n}" for p, n, why in late if not why] == []
