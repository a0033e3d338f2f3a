"""Parse YAML into plain data plus a map from field path to line number.

PyYAML's node tree keeps each node's position; we keep it too, so every later
error can name `file:line`. Duplicate mapping keys are errors (PyYAML would
silently keep the last one).
"""

from __future__ import annotations

from typing import Any

import yaml

Path = tuple[str | int, ...]
LineMap = dict[Path, int]


class YamlProblem(ValueError):
    """A YAML syntax error or duplicate key, at `line` (1-based)."""

    def __init__(self, line: int | None, path: str, message: str) -> None:
        self.line = line
        self.path = path
        super().__init__(message)


def parse_with_lines(text: str) -> tuple[Any, LineMap]:
    """Return (data, lines) for a YAML document; raise YamlProblem when it is not valid YAML."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise YamlProblem(line, "", f"invalid YAML: {exc.problem or exc.context}") from None
    if node is None:
        return None, {}
    lines: LineMap = {}
    return _construct(node, (), lines), lines


def _construct(node: yaml.Node, path: Path, lines: LineMap) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in result:
                dotted = ".".join(str(p) for p in (*path, key))
                raise YamlProblem(key_node.start_mark.line + 1, dotted, "duplicate key")
            result[key] = _construct(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise YamlProblem(node.start_mark.line + 1, "", "expected a plain key, got a collection")
    return yaml.SafeLoader(stream="").construct_object(node)


def line_for(lines: LineMap, path: Path) -> int | None:
    """The line of `path`, or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None
