"""Ollama models through the official `ollama` client: list, pull (streamed progress), delete.

The one adapter to the `ollama` package: nothing else imports it. Runs from the
controller; `deploys/ollama_models.py` is the same step as a pyinfra deploy for the plain CLI.
No pyinfra import here: the reconciler's own process uses this module.

Each call makes its own client for the endpoint (the package builds its own httpx
client and cannot take ours); it never reads proxy settings from the environment.
`transport` lets tests hand in an `httpx.MockTransport`.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable

import httpx
import ollama

Progress = Callable[[int, int, str], None]
# A listing's whole deadline through the reconciler's bounded transport: a health check's.
LIST_TIMEOUT = httpx.Timeout(2.0)
PULL_TIMEOUT = httpx.Timeout(10.0, read=600.0)
DELETE_TIMEOUT = httpx.Timeout(30.0)
FAILURES = (ollama.ResponseError, ollama.RequestError, ConnectionError, httpx.HTTPError, ValueError)


class ModelError(RuntimeError):
    """A list, pull or delete failed; the message says which model and what Ollama answered."""


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context, built once: building it per client (loading the CA
    bundle) cost 40 ms of CPU per models listing, most of a probe pass."""
    return httpx.create_ssl_context()


def _client(
    endpoint: str, timeout: httpx.Timeout, transport: httpx.BaseTransport | None
) -> ollama.Client:
    extra = {"transport": transport} if transport is not None else {}
    return ollama.Client(host=endpoint, timeout=timeout, trust_env=False, verify=_tls(), **extra)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ollama.ResponseError):
        return f"HTTP {exc.status_code}: {exc.error[:200]}"
    return f"{type(exc).__name__}: {exc}"


def list_models(endpoint: str, transport: httpx.BaseTransport | None = None) -> tuple[str, ...]:
    """The models the endpoint has, sorted; raise ModelError when it cannot be asked."""
    try:
        with _client(endpoint, LIST_TIMEOUT, transport) as client:
            listed = client.list()
    except FAILURES as exc:
        raise ModelError(f"list models: {_describe(exc)}") from None
    return tuple(sorted(m.model for m in listed.models if m.model))


def pull_model(
    endpoint: str,
    model: str,
    on_progress: Progress,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """Pull `model` and follow its progress until `success`; raise ModelError otherwise."""
    try:
        with _client(endpoint, PULL_TIMEOUT, transport) as client:
            for event in client.pull(model, stream=True):
                on_progress(event.completed or 0, event.total or 0, event.status or "")
                if event.status == "success":
                    return
    except FAILURES as exc:
        raise ModelError(f"pull {model}: {_describe(exc)}") from None
    raise ModelError(f"pull {model}: stream ended without 'success'")


def delete_model(endpoint: str, model: str, transport: httpx.BaseTransport | None = None) -> None:
    """Delete `model`; raise ModelError unless Ollama accepts."""
    try:
        with _client(endpoint, DELETE_TIMEOUT, transport) as client:
            client.delete(model)
    except FAILURES as exc:
        raise ModelError(f"delete {model}: {_describe(exc)}") from None
