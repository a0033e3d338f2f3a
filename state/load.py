"""Read a state file into a validated `Fleet`, or raise `SpecError` naming every problem.

Order: YAML syntax, then the schema (all field errors at once), then the
cross-reference checks in `state.cross_checks`. Each problem names file, line and field.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from state.cross_checks import check_references
from state.errors import SpecError, SpecProblem, dotted
from state.local_files import LocalFileRefused, local_file, read_local, read_templates
from state.placement import HOME, Placement, place
from state.secrets import secret_fields
from state.spec.fleet import Fleet, spec_models
from state.types import NAME_PATTERN
from state.yaml_lines import LineMap, YamlProblem, line_for, parse_with_lines

BOM = "\ufeff"


@dataclass(frozen=True)
class LoadedFleet:
    """A validated fleet plus where it came from: the exact text it was parsed from (and
    its sha256), and the config templates it names, read at the same moment. A plan made
    from this value is applied from this value, never from the file as it is later."""

    fleet: Fleet
    file: Path
    sha256: str
    lines: LineMap
    text: str = ""
    templates: Mapping[str, str] = field(default_factory=dict)
    spec: Fleet | None = None
    """The fleet as written; `fleet` is it placed (state.placement). None: not placed yet."""
    placement: Placement = HOME
    commit: str | None = None
    """The git commit this was loaded from, when it came from its git source."""
    root: Path | None = None
    """The commit's exported tree, when it came from its git source: every file the
    spec names lies in it (state.local_files)."""

    @property
    def label(self) -> str:
        """The state file as people know it: `state/fleet.yaml@COMMIT` for a fetched
        commit (not where the controller keeps its tree), else its path."""
        if self.root is not None and self.commit is not None:
            return f"{self.file.relative_to(self.root)}@{self.commit[:12]}"
        return str(self.file)

    @property
    def written(self) -> Fleet:
        """The fleet as the state file says, before placement."""
        return self.spec or self.fleet

    def placed(self, placement: Placement) -> LoadedFleet:
        """This fleet with the failover services where `placement` puts them."""
        return replace(
            self, fleet=place(self.written, placement), spec=self.written, placement=placement
        )

    def resolve(self, relative: str) -> Path:
        """A file named in the spec (an install source), resolved against the state
        file's directory as state.local_files allows. Raises LocalFileRefused."""
        return local_file(self.file.parent, relative, inside_only=False, root=self.root)


def load_fleet(file: str | Path, root: Path | None = None) -> LoadedFleet:
    """Read and validate `file`. Raises SpecError (a ValueError) listing every problem.
    `root`: the git commit's tree that every file it names must lie in."""
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(str(path), None, "", f"cannot read: {exc}")]) from None
    return parse_fleet(text, path, root=root)


def parse_fleet(
    text: str, path: Path, templates: Mapping[str, str] | None = None, root: Path | None = None
) -> LoadedFleet:
    """Validate YAML `text` that was read from `path` (used in messages and to resolve paths).

    `templates` (as named in the spec, with their text) replaces reading them from disk:
    the SSH worker gets them from the plan's `LoadedFleet`, so it renders what was planned.
    """
    name = str(path)
    try:
        data, lines = parse_with_lines(text.removeprefix(BOM))  # editors write one
    except YamlProblem as exc:
        raise SpecError([SpecProblem(name, exc.line, exc.path, str(exc))]) from None
    if not isinstance(data, dict):
        raise SpecError([SpecProblem(name, 1, "", "expected a mapping with 'version' and 'hosts'")])
    if age_files := list(_age_files(data, (), path.parent, root)):
        raise SpecError(
            [SpecProblem(name, line_for(lines, at), dotted(at), why) for at, why in age_files]
        )
    try:
        fleet = Fleet.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_schema_problems(exc, data, lines, name)) from None
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    refused: dict[str, str] = {}
    if templates is None:  # read once: what is checked is what is rendered
        templates, refused = read_templates(path.parent, _template_names(fleet))
    problems = check_references(fleet, lines, name, path.parent, templates, refused, root)
    if problems:
        raise SpecError(problems)
    loaded = LoadedFleet(fleet, path, sha256, lines, text, dict(templates), root=root)
    return loaded.placed(HOME)


AGE_FILE = "age-file:"
AGE_FILE_LIMIT = 48 << 10  # its base64 must fit an `age:` reference


def _age_files(
    node: Any, at: tuple[str | int, ...], state_dir: Path, root: Path | None
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Replace each `age-file:PATH` in a secret field by the `age:` reference of that
    file (an age file next to the state file, inside the state directory, or the
    commit's tree); yield (where, why) for each one refused."""
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in list(items):
        here = (*at, key)
        if isinstance(value, (dict, list)):
            yield from _age_files(value, here, state_dir, root)
        elif isinstance(value, str) and value.startswith(AGE_FILE) and secret_field(here):
            named = value.removeprefix(AGE_FILE)
            try:
                data = read_local(local_file(state_dir, named, inside_only=True, root=root))
            except LocalFileRefused as exc:
                yield here, f"{value}: {exc}"
                continue
            if len(data) > AGE_FILE_LIMIT:
                yield here, f"{value}: larger than {AGE_FILE_LIMIT} bytes"
                continue
            node[key] = "age:" + base64.b64encode(data).decode()


def _template_names(fleet: Fleet) -> set[str]:
    return {
        config.template
        for service in fleet.services.values()
        for config in service.config_files
        if config.template is not None
    }


def _schema_problems(
    exc: ValidationError, data: dict[str, Any], lines: LineMap, name: str
) -> list[SpecProblem]:
    problems = []
    for error in exc.errors():
        data_path = _data_path(error["loc"], data)
        where = dotted(data_path)
        problems.append(
            SpecProblem(name, line_for(lines, data_path), where, _explain(error, data_path))
        )
    return sorted(set(problems), key=lambda p: (p.line or 0, p.path))


def _data_path(loc: tuple[int | str, ...], data: Any) -> tuple[str | int, ...]:
    """Drop pydantic's union tags and '[key]' markers, keeping only real YAML path parts."""
    path: list[str | int] = []
    node: Any = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]  # type: ignore[index]  # narrowed by the test above
            path.append(part)
    return tuple(path)


MAPPING_EXPECTED = frozenset({"model_type", "model_attributes_type", "dict_type"})


def _explain(error: Any, data_path: tuple[str | int, ...]) -> str:
    kind, loc = error["type"], error["loc"]
    if secret_field(data_path) or secret_field(tuple(p for p in loc if isinstance(p, str))):
        # Never echo the input of a secret field, whatever its shape: it is probably the
        # secret itself (a token given as a list is still a token).
        return f"expected a secret reference 'env:NAME' or 'file:/path', not {_shape(error)}"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if key in _all_field_names():  # a field of another section: suggesting it says nothing
            return "unknown key here"
        hint = difflib.get_close_matches(key, _all_field_names(), n=1)
        return "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else "")
    if kind == "missing":
        return f"required field '{loc[-1]}' is missing"
    if loc and loc[-1] == "[key]":
        if error.get("ctx", {}).get("pattern") == NAME_PATTERN:
            expected = "expected lowercase letters, digits, '-', '_', '.'"
            return f"invalid name {error['input']!r}: {expected}"
        return f"invalid key {error['input']!r}: {_lower(str(error['msg']))}"
    if kind == "union_tag_invalid":
        return f"{error['msg']}"
    message = _lower(str(error["msg"]))
    if kind in MAPPING_EXPECTED and isinstance(error.get("input"), str):
        # A block written as one string (`pager: "123456:AAE..."`) is likely a secret.
        message += ", got a string (not shown: where a block is expected, it may be a secret)"
    elif kind not in {"value_error", "assertion_error"}:
        message += f", got {_echo(error['input'])}"
    return message.removeprefix("value error, ").replace("input should be", "expected")


def _echo(value: object) -> str:
    """A refused value as the message may show it: a short scalar as written; a mapping
    or a list only by its shape, since it may carry a value meant for a secret field
    (`{token: ...}` in a channel whose `kind` is missing)."""
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _shape(error: Any) -> str:
    value = error.get("input")
    if isinstance(value, bool) or value is None:
        return "a boolean" if isinstance(value, bool) else "null"
    if isinstance(value, int | float):
        return "a number"
    return _echo(value) if isinstance(value, dict | list) else "a value"


def secret_field(path: tuple[str | int, ...]) -> bool:
    return any(isinstance(part, str) and part in secret_fields() for part in path)


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


@cache
def _all_field_names() -> tuple[str, ...]:
    names = {field for obj in spec_models() for field in obj.model_fields}
    return tuple(sorted(names))
