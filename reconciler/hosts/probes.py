"""Health probes and model listings, run from the controller with httpx.

Read-only: GET requests and TCP connects. Checks that read host data (`systemd`,
`file_fresh`) are evaluated from the host snapshot by pure functions.
"""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import httpx

from deploys.ollama import ModelError
from deploys.ollama import list_models as ollama_models
from reconciler.hosts.observation import CheckResult, FileState, HostState, ModelsState
from reconciler.untrusted.http import BoundedTransport, read_at_most
from reconciler.untrusted.limits import HEALTH_BODY_BYTES
from reconciler.untrusted.text import shown
from state.spec.services import FileFreshCheck, HealthCheck, HttpCheck, SystemdCheck, TcpCheck

BODY_EXCERPT = 120


def describe(check: HealthCheck, address: str) -> str:
    """A short, stable label for a check, used in plans and the journal."""
    if isinstance(check, HttpCheck):
        return f"http {check.url.format(address=address)}"
    if isinstance(check, TcpCheck):
        return f"tcp {address}:{check.port}"
    if isinstance(check, FileFreshCheck):
        return f"file_fresh {check.path}"
    return "systemd active"


def probe_http(client: httpx.Client, check: HttpCheck, address: str) -> CheckResult:
    """GET the check's URL; its timeout is the whole check's deadline (see
    reconciler.untrusted.http), and at most HEALTH_BODY_BYTES of the body are read."""
    label = describe(check, address)
    url = check.url.format(address=address)
    try:
        with client.stream("GET", url, timeout=check.timeout.total_seconds()) as response:
            body, cut = read_at_most(response, HEALTH_BODY_BYTES)
    except httpx.HTTPError as exc:
        detail = shown(f"{type(exc).__name__}: {exc}")
        return CheckResult(check=label, healthy=False, detail=detail)
    excerpt = shown(body[:BODY_EXCERPT].decode("utf-8", errors="replace"))
    if response.status_code != check.expect_status:
        detail = f"status {response.status_code}, expected {check.expect_status}: {excerpt}"
        return CheckResult(check=label, healthy=False, detail=detail)
    if check.json_key is not None:
        if cut:
            detail = f"answer larger than {HEALTH_BODY_BYTES} bytes: its JSON is not read"
            return CheckResult(check=label, healthy=False, detail=detail)
        try:
            parsed = json.loads(body)
        except ValueError:
            return CheckResult(check=label, healthy=False, detail=f"not JSON: {excerpt}")
        if not isinstance(parsed, dict) or check.json_key not in parsed:
            detail = f"JSON has no key '{check.json_key}': {excerpt}"
            return CheckResult(check=label, healthy=False, detail=detail)
    return CheckResult(check=label, healthy=True, detail=f"status {response.status_code}")


def probe_tcp(check: TcpCheck, address: str) -> CheckResult:
    label = describe(check, address)
    try:
        with socket.create_connection((address, check.port), check.timeout.total_seconds()):
            return CheckResult(check=label, healthy=True, detail="connected")
    except OSError as exc:
        return CheckResult(check=label, healthy=False, detail=f"{type(exc).__name__}: {exc}")


def evaluate_systemd(check: SystemdCheck, unit: str, host: HostState) -> CheckResult:
    state = host.units.get(unit)
    active = state.active if state else "not-found"
    detail = f"ActiveState={active}" + (f" SubState={state.sub}" if state else "")
    return CheckResult(check=describe(check, ""), healthy=active == "active", detail=detail)


def evaluate_file_fresh(check: FileFreshCheck, host: HostState) -> CheckResult:
    label = describe(check, "")
    file: FileState | None = host.files.get(check.path)
    if file is None or host.now is None:
        return CheckResult(check=label, healthy=False, detail="file does not exist")
    age = timedelta(seconds=max(0, host.now - file.mtime))
    healthy = age <= check.max_age
    detail = f"last written {_short(age)} ago (max {_short(check.max_age)})"
    return CheckResult(check=label, healthy=healthy, detail=detail)


def _short(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (
        f"{hours}h{minutes:02d}m"
        if hours
        else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")
    )


def list_models(endpoint: str, transport: httpx.BaseTransport | None = None) -> ModelsState:
    """The models an Ollama endpoint lists, within the listing's deadline and at most
    MAX_BODY_BYTES of answer; an error is recorded, not raised. Names are kept only when
    they could be a model's name (a host's answer is untrusted text)."""
    try:
        present = ollama_models(endpoint, transport or BoundedTransport())
    except ModelError as exc:
        error = str(exc).removeprefix("list models: ")
        return ModelsState(endpoint=endpoint, error=shown(error))
    return ModelsState(endpoint=endpoint, present=tuple(shown(name) for name in present))
