"""Gitea's REST API for one repository: every answer the forge's API gives enters here.

Each call has a deadline, the token never appears in an error (`redact`), an error
body is shown only escaped and cut short, and an answer of the wrong shape is a
`GiteaError`, never a crash further in.
"""

from __future__ import annotations

from typing import Any

import httpx

from reconciler.untrusted.text import redact, shown
from state.secrets import Secret

TIMEOUT_S = 10.0


class GiteaError(RuntimeError):
    """The API failed or answered what we cannot use; the message names the call."""


class GiteaRepo:
    """One repository's API (issues, comments, pull requests, statuses)."""

    def __init__(self, url: str, repo: str, token: Secret, client: httpx.Client) -> None:
        self.client, self.token, self.repo = client, token, repo
        self.api = f"{url.rstrip('/')}/api/v1"
        self.base = f"{self.api}/repos/{repo}"

    def login(self) -> str | None:
        """The token's own user (`GET /user`)."""
        me = self.call("GET", "", url=f"{self.api}/user")
        found = me.get("login") if isinstance(me, dict) else None
        return found if isinstance(found, str) else None

    def call(self, method: str, path: str, url: str | None = None, **kwargs: Any) -> Any:
        """`path` of the repository's API (or the whole `url`)."""
        try:
            response = self.client.request(
                method,
                url or self.base + path,
                headers={"Authorization": f"token {self.token.reveal()}"},
                timeout=TIMEOUT_S,
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise GiteaError(redact(f"{type(exc).__name__}: {exc}", self.token)) from None
        if response.status_code >= 300:
            raise GiteaError(
                redact(
                    f"gitea: {method} {path}: status {response.status_code}: "
                    f"{shown(response.text[:200])}",
                    self.token,
                )
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise GiteaError(f"gitea: {method} {path}: the answer is not JSON") from None

    def listed(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """A list answer's objects; any other shape is a GiteaError."""
        found = self.call("GET", path, **kwargs)
        if found is None:
            return []
        if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
            raise GiteaError(f"gitea: GET {path}: the answer is not a list of objects")
        return found

    def comments(self, number: int) -> list[str]:
        return [str(c.get("body", "")) for c in self.listed(f"/issues/{number}/comments")]
