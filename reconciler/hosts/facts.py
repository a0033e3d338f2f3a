"""pyinfra fact that reads everything the diff needs from one host in a single round trip.

`HostSnapshot.command()` builds one read-only shell script; `process()` parses its
sectioned output. The parser is pure, so it is tested on recorded output without a host.
Read-only is the contract: the script only runs `date`, `systemctl show`, `stat`,
`sha256sum`, `base64` and `dpkg-query`.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from typing import Any

from pyinfra.api.facts import FactBase

from reconciler.hosts.protocol import Snapshot
from reconciler.untrusted.limits import MAX_CONTENT_BYTES, MAX_DROPINS
from reconciler.untrusted.text import shown
from state.layout import unit_file, unit_path

UNIT_PROPERTIES = "ActiveState,SubState,UnitFileState,ActiveEnterTimestamp"


def _q(value: str) -> str:
    return shlex.quote(value)


def snapshot_script(
    units: list[str],
    files: list[str],
    contents: list[str],
    packages: list[str],
    unit_files: bool = True,
    present: list[str] | None = None,
) -> str:
    """The read-only script: `files` get stat+sha256, `contents` also their bytes (small
    ones); `unit_files` adds each unit's file and drop-ins to its state; `present` paths
    are only tested for existence (a link is not followed)."""
    parts = ["echo @now $(date +%s)"]
    for unit in units:
        parts.append(f"echo @unit {_q(unit)}")
        parts.append(f"systemctl show --property={UNIT_PROPERTIES} -- {_q(unit_file(unit))}")
        if not unit_files:
            continue
        parts.append(f"echo @unitfile {_q(unit)}")
        parts.append(_bounded_content(unit_path(unit), cut_note=True))
        parts.append(f"echo @dropins {_q(unit)}")
        folder = _q(unit_path(unit) + ".d")
        parts.append(  # NUL-separated names, base64: a name with a newline stays one name
            f"if [ -d {folder} ]; then find {folder} -mindepth 1 -maxdepth 1 -printf '%f\\0' "
            f"| head -c {MAX_CONTENT_BYTES} | base64 -w0; fi; echo"
        )
    for path in files:
        wanted = path in contents
        parts.append(f"echo @file {_q(path)}")
        parts.append(
            f"stat -c '%a %U %G %s %Y' -- {_q(path)} 2>/dev/null && "
            f"sha256sum -- {_q(path)} | cut -d' ' -f1"
        )
        if wanted:
            parts.append(_bounded_content(path, cut_note=False))
    for path in present or []:
        parts.append(f"echo @present {_q(path)}")
        parts.append(f"if [ -e {_q(path)} ] || [ -L {_q(path)} ]; then echo 1; else echo 0; fi")
    if packages:
        parts.append("echo @packages")
        quoted = " ".join(_q(p) for p in packages)
        parts.append(
            f"dpkg-query -W -f='${{Package}} ${{db:Status-Status}}\\n' {quoted} 2>/dev/null"
        )
    parts.append("echo @end")
    return "; ".join(parts)


def _bounded_content(path: str, cut_note: bool) -> str:
    """`path` in base64 on one line when it is at most MAX_CONTENT_BYTES; a larger file
    gives nothing, or with `cut_note` the line `!cut SIZE SHA256`. (A broken host's huge
    file is never read; a compromised host can answer anything, which the parser and the
    worker's deadline bound.)"""
    q = _q(path)
    small = f"base64 -w0 -- {q} && echo"
    if not cut_note:
        return f"[ $(stat -c %s -- {q} 2>/dev/null || echo 0) -le {MAX_CONTENT_BYTES} ] && {small}"
    large = f"echo '!cut' $s $(sha256sum -- {q} | cut -d' ' -f1)"
    fits = f"[ $s -le {MAX_CONTENT_BYTES} ]"
    return (
        f"if [ -e {q} ]; then s=$(stat -c %s -- {q}); if {fits}; then {small}; else {large}; fi; fi"
    )


def parse_snapshot(lines: list[str]) -> Snapshot:
    """Parse the script's output into a typed Snapshot."""
    result: dict[str, Any] = {
        "now": None,
        "units": {},
        "files": {},
        "packages": {},
        "present": {},
        "complete": False,
    }
    section: tuple[str, str] = ("", "")
    body: list[str] = []
    for line in [*lines, "@flush"]:
        if line.startswith("@"):
            _store(result, section, body)
            head, _, arg = line[1:].partition(" ")
            section, body = (head, arg), []
            if head == "now":
                result["now"] = int(arg) if arg.isdigit() else None
            elif head == "end":
                result["complete"] = True
        else:
            body.append(line)
    return Snapshot.model_validate(result)


def _store(result: dict[str, Any], section: tuple[str, str], body: list[str]) -> None:
    kind, arg = section
    if kind == "unit":
        props = dict(line.partition("=")[::2] for line in body if "=" in line)
        result["units"][arg] = {  # the host's words: shown, never raw (reconciler.untrusted.text)
            "active": shown(props.get("ActiveState", "unknown")),
            "sub": shown(props.get("SubState", "unknown")),
            "enabled": shown(props.get("UnitFileState") or "not-found"),
            "since": shown(props.get("ActiveEnterTimestamp", "")),
            "file": None,
        }
    elif kind == "unitfile" and arg in result["units"]:
        encoded = "".join(body).strip()
        if encoded.startswith("!cut"):
            result["units"][arg]["file_cut"] = shown(encoded.removeprefix("!cut").strip()[:100])
        else:
            result["units"][arg]["file"] = _decode(encoded) if encoded else None
    elif kind == "dropins" and arg in result["units"]:
        names = _decode("".join(body).strip()).split("\0")
        result["units"][arg]["dropins"] = sorted({shown(n) for n in names if n})[:MAX_DROPINS]
    elif kind == "file":
        result["files"][arg] = _parse_file(body)
    elif kind == "present":
        result["present"][arg] = body == ["1"]
    elif kind == "packages":
        for line in body:
            name, _, status = line.partition(" ")
            result["packages"][name] = status.strip()


def _parse_file(body: list[str]) -> dict[str, Any] | None:
    if len(body) < 2:
        return None
    mode, owner, group, size, mtime = body[0].split()
    content = _decode(body[2]) if len(body) > 2 and body[2] else None
    return {
        "mode": mode.zfill(4),
        "owner": owner,
        "group": group,
        "size": int(size),
        "mtime": int(mtime),
        "sha256": body[1].strip(),
        "content": content,
    }


def _decode(encoded: str) -> str:
    try:
        data = base64.b64decode(encoded[: 2 * MAX_CONTENT_BYTES], validate=True)
    except (binascii.Error, ValueError):
        return "(unreadable answer)"
    return data.decode("utf-8", errors="replace")


class HostSnapshot(FactBase[Snapshot]):
    """Units, files and packages of one host, read in one command."""

    command = staticmethod(snapshot_script)  # pyinfra calls it with the fact's arguments

    def process(self, output: list[str]) -> Snapshot:
        return parse_snapshot(list(output))
