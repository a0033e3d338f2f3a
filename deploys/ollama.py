"""Ollama models through the Ollama HTTP API: pull (with streamed progress) and delete.

`pull_model` and `delete_model` run from the controller with an httpx.Client passed in;
`pull_model` reports the NDJSON progress stream through `on_progress(completed, total,
status)`. `deploys/models.py` is the same step as a pyinfra deploy for the plain CLI.
No pyinfra import here: the reconciler's own process uses this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

Progress = Callable[[int, int, str], None]
PULL_TIMEOUT = httpx.Timeout(10.0, read=600.0)


class ModelError(RuntimeError):
    """A pull or delete failed; the message says which model and what Ollama answered."""


def pull_model(client: httpx.Client, endpoint: str, model: str, on_progress: Progress) -> None:
    """POST /api/pull and follow its progress until `success`; raise ModelError otherwise."""
    try:
        with client.stream(
            "POST",
            f"{endpoint}/api/pull",
            json={"model": model, "stream": True},
            timeout=PULL_TIMEOUT,
        ) as response:
            if response.status_code != 200:
                response.read()
                raise ModelError(
                    f"pull {model}: HTTP {response.status_code}: {response.text[:200]}"
                )
            for line in response.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if "error" in event:
                    raise ModelError(f"pull {model}: {event['error']}")
                on_progress(
                    int(event.get("completed", 0)),
                    int(event.get("total", 0)),
                    str(event.get("status", "")),
                )
                if event.get("status") == "success":
                    return
    except (httpx.HTTPError, ValueError) as exc:
        raise ModelError(f"pull {model}: {type(exc).__name__}: {exc}") from None
    raise ModelError(f"pull {model}: stream ended without 'success'")


def delete_model(client: httpx.Client, endpoint: str, model: str) -> None:
    """DELETE /api/delete; raise ModelError unless Ollama answers 200."""
    try:
        response = client.request(
            "DELETE", f"{endpoint}/api/delete", json={"model": model}, timeout=30.0
        )
    except httpx.HTTPError as exc:
        raise ModelError(f"delete {model}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise ModelError(f"delete {model}: HTTP {response.status_code}: {response.text[:200]}")
