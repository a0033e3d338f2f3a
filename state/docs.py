"""Generate the spec reference (docs/reference.md) from the models' field descriptions.

`python -m state.docs` prints Markdown; `python -m state.docs --write docs/reference.md`
replaces the text between the reference markers. A test checks the file is current.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from state.schema import SpecSchema
from state.spec.backups import BackupCopy, BackupPolicy, Retention
from state.spec.controller import ReconcilerSettings
from state.spec.failover import Failover
from state.spec.fleet import Fleet
from state.spec.hosts import Host
from state.spec.notifications import (
    EscalationLevel,
    GiteaIssueChannel,
    LogChannel,
    Notifications,
    TelegramChannel,
)
from state.spec.services import (
    AptInstall,
    ConfigFile,
    FileFreshCheck,
    FileInstall,
    HttpCheck,
    ModelSet,
    NoInstall,
    Service,
    SystemdCheck,
    TcpCheck,
    Unit,
)
from state.spec.source import CommitVerification, GitSource

BEGIN, END = "<!-- spec-reference:begin -->", "<!-- spec-reference:end -->"
ORDER: list[type[BaseModel]] = [
    Fleet,
    Host,
    Service,
    AptInstall,
    FileInstall,
    NoInstall,
    Unit,
    ConfigFile,
    HttpCheck,
    TcpCheck,
    SystemdCheck,
    FileFreshCheck,
    ModelSet,
    BackupPolicy,
    Retention,
    BackupCopy,
    Failover,
    Notifications,
    EscalationLevel,
    TelegramChannel,
    GiteaIssueChannel,
    LogChannel,
    ReconcilerSettings,
    GitSource,
    CommitVerification,
]


def _type_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_name(s) for s in schema["anyOf"])
    if "oneOf" in schema:
        return " | ".join(_type_name(s) for s in schema["oneOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list[{_type_name(schema.get('items', {}))}]"
    if kind == "object" and "additionalProperties" in schema:
        return f"map[{_type_name(schema['additionalProperties'])}]"
    if kind == "object" and "patternProperties" in schema:
        [value] = schema["patternProperties"].values()
        return f"map[name, {_type_name(value)}]"
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    return str(kind)


def model_section(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(
        mode="validation", ref_template="#/{model}", schema_generator=SpecSchema
    )
    required = set(schema.get("required", []))
    lines = [
        f"### {model.__name__}",
        "",
        (model.__doc__ or "").strip(),
        "",
        "| field | type | required | default | description |",
        "|---|---|---|---|---|",
    ]
    for name, prop in schema.get("properties", {}).items():
        default = "" if name in required or "default" not in prop else f"`{prop['default']!r}`"
        desc = prop.get("description", "")
        if prop.get("examples"):
            desc += f" Example: `{prop['examples'][0]!r}`."
        kind = _type_name(prop).replace("|", "\\|")
        lines.append(
            f"| `{name}` | {kind} | {'yes' if name in required else ''} | {default} | {desc} |"
        )
    return "\n".join(lines) + "\n"


def reference() -> str:
    return "\n".join(model_section(m) for m in ORDER)


def replace_between_markers(text: str, body: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{body}{END}{tail}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"]:
        path = Path(argv[1])
        path.write_text(replace_between_markers(path.read_text(), reference()))
        return 0
    print(reference())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
