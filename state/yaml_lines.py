"""Parse YAML into plain data plus a map from field path to line number, within bounds.

PyYAML's node tree keeps each node's position; we keep it too, so every later
error can name `file:line`. The state file is hostile input, so the parser refuses
what a spec never needs and bounds what it costs before building Python objects:

- duplicate mapping keys (PyYAML would silently keep the last one);
- merge keys (`<<`), and every tag beyond plain strings, numbers, booleans and null
  (`!!python/...`, `!custom`, `!!binary`, `!!set`, ...);
- NUL and other control characters, and files over `MAX_BYTES`;
- nesting deeper than `MAX_DEPTH` (checked on the token stream, before composing);
- recursive aliases, and aliases that expand past `MAX_NODES` values (a "billion
  laughs"), measured on the composed graph before anything is expanded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from state.errors import dotted

Path = tuple[str | int, ...]
LineMap = dict[Path, int]

# libyaml's scanner and composer when PyYAML has them (its wheels do): a 200-host fleet
# is read in 0.05 s instead of 2 s. A document libyaml refuses is read again by the
# pure-Python loader, whose error names the line the way every message here does.
_FAST: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_BYTES = 1 << 20
MAX_DEPTH = 32
# A 200-host fleet with one web service each is about 10 200 values; a 1 MiB file without
# aliases stays under this bound, and an alias bomb still stops in milliseconds.
MAX_NODES = 200_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f\ufeff\ufffe\uffff]")
_OPENERS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSERS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
_MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlProblem(ValueError):
    """A YAML problem (syntax, a refused construct, a bound exceeded) at `line` (1-based)."""

    def __init__(self, line: int | None, path: str, message: str) -> None:
        self.line = line
        self.path = path
        super().__init__(message)


def parse_with_lines(text: str) -> tuple[Any, LineMap]:
    """Return (data, lines) for a YAML document; raise YamlProblem when it is refused."""
    _check_text(text)
    try:
        _check_depth(text)
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise YamlProblem(line, "", f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(None, "", f"invalid YAML: {exc}") from None
    if node is None:
        return None, {}
    _check_expansion(node)
    lines: LineMap = {}
    return _Builder(lines).build(node, ()), lines


def _check_expansion(root: yaml.Node) -> None:
    """Refuse recursive aliases, and documents whose aliases expand past MAX_NODES values
    or MAX_DEPTH levels, from the composed graph (shared nodes are sized once)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int, path: tuple[int, ...]) -> int:
        line = node.start_mark.line + 1
        if id(node) in path:
            raise YamlProblem(line, "", "recursive alias: a value contains itself")
        if depth > MAX_DEPTH:
            raise YamlProblem(line, "", f"nesting deeper than {MAX_DEPTH} levels (through aliases)")
        if id(node) in sizes:
            return sizes[id(node)]
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        total = 1
        for child in children:
            total += size(child, depth + 1, (*path, id(node)))
            if total > MAX_NODES:
                raise YamlProblem(line, "", f"expands past {MAX_NODES} values (aliases repeated?)")
        sizes[id(node)] = total
        return total

    size(root, 0, ())


def _check_text(text: str) -> None:
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_BYTES:
        raise YamlProblem(None, "", f"file is {size} bytes; a state file may have {MAX_BYTES}")
    bad = _CONTROL.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise YamlProblem(
            line, "", f"control character U+{ord(bad[0]):04X} is not allowed in a state file"
        )


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_FAST)
    except yaml.YAMLError:
        return yaml.compose(text, Loader=yaml.SafeLoader)  # its error, with its line


def _tokens(text: str) -> Iterable[yaml.Token]:
    try:
        return list(yaml.scan(text, Loader=_FAST))
    except yaml.YAMLError:  # lazily, as before: nesting too deep is named before a later error
        return yaml.scan(text, Loader=yaml.SafeLoader)


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the token stream, before the (recursive) composer runs."""
    depth = 0
    for token in _tokens(text):
        if isinstance(token, _OPENERS):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlProblem(
                    token.start_mark.line + 1, "", f"nesting deeper than {MAX_DEPTH} levels"
                )
        elif isinstance(token, _CLOSERS):
            depth -= 1


class _Builder:
    """Build plain data from composed nodes, refusing what a spec never needs."""

    def __init__(self, lines: LineMap) -> None:
        self.lines = lines
        # Builds plain scalars only. One per parse: a constructor remembers every node it
        # built, so a shared one grew by each parse for the life of the process.
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        self.tag(node, _SEQ_TAG, path)
        return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        self.tag(node, _MAP_TAG, path)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem(key_line, dotted(path), "expected a plain key, got a collection")
            if key_node.tag == _MERGE_TAG:
                raise YamlProblem(
                    key_line,
                    dotted(path),
                    "YAML merge keys ('<<') are not supported; write the keys out",
                )
            key = self.scalar(key_node, path)
            if key in result:
                raise YamlProblem(key_line, dotted((*path, key)), "duplicate key")
            result[key] = self.build(value_node, (*path, key))
            self.lines[(*path, key)] = key_line
        return result

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self.tag(node, "tag:yaml.org,2002:str", path)
        return self.constructor.construct_object(node, deep=True)

    @staticmethod
    def tag(node: yaml.Node, expected: str, path: Path) -> None:
        if node.tag != expected:
            raise YamlProblem(
                node.start_mark.line + 1,
                dotted(path),
                f"YAML tag {node.tag!r} is not allowed; a state file holds plain "
                "strings, numbers, booleans, lists and mappings",
            )


def line_for(lines: LineMap, path: Path) -> int | None:
    """The line of `path`, or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None
