"""Notification channels: Telegram's Bot API, a Gitea issue, and a log line.

Each delivery is one notification from the outbox. A failure raises `ChannelError`
(with the channel's `retry_after` when it gave one); the token never appears in an
error: every message is passed through `redact` first.
"""

from __future__ import annotations

import html
import json
import re
import sys
import time
from typing import Any

import httpx

from reconciler.untrusted import shown
from state.models import Channel, GiteaIssueChannel, LogChannel, Notifications, TelegramChannel
from state.secrets import Secret, SecretUnavailable, resolve_secret

TELEGRAM_LIMIT = 4096
TIMEOUT_S = 10.0


class ChannelError(RuntimeError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def redact(text: str, secret: Secret) -> str:
    value = secret.reveal()
    return text.replace(value, "********") if value else text


def deliver(channel: Channel, key: str, message: dict[str, Any], client: httpx.Client) -> str:
    """Send one notification; a short note of what the channel did. Raises ChannelError."""
    if isinstance(channel, LogChannel):
        line = {"level": "notification", "key": key, **message["distress"]}
        print(json.dumps(line), file=sys.stderr, flush=True)
        return "logged"
    if isinstance(channel, GiteaIssueChannel):
        return _gitea(channel, key, message, client)
    token = resolve_secret(channel.token)
    try:
        return _telegram(channel, token, message, client)
    except httpx.HTTPError as exc:
        raise ChannelError(redact(f"{type(exc).__name__}: {exc}", token)) from None


def telegram_text(message: dict[str, Any]) -> str:
    """HTML-escaped, at most 4096 characters (Telegram's limit)."""
    head = f"{message['severity']} {message['transition']}"
    text = f"<b>{html.escape(head)}</b>\n{html.escape(str(message['text']))}"
    return text if len(text) <= TELEGRAM_LIMIT else text[: TELEGRAM_LIMIT - 1] + "…"


def _telegram(
    channel: TelegramChannel, token: Secret, message: dict[str, Any], client: httpx.Client
) -> str:
    url = f"{channel.api_url.rstrip('/')}/bot{token.reveal()}/sendMessage"
    body = {"chat_id": channel.chat_id, "text": telegram_text(message), "parse_mode": "HTML"}
    response = client.post(url, json=body, timeout=TIMEOUT_S)
    if response.status_code == 429:
        retry = _json(response).get("parameters", {}).get("retry_after", 1)
        raise ChannelError(f"telegram: 429 too many requests, retry after {retry}s", float(retry))
    answer = _json(response)
    if response.status_code != 200 or not answer.get("ok"):
        raise ChannelError(
            redact(f"telegram: status {response.status_code}: {response.text[:200]}", token)
        )
    return f"telegram message {answer.get('result', {}).get('message_id', '?')}"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def code_block(text: str, info: str) -> str:
    """`text` as a fenced code block that nothing in it can close: Markdown renders no
    mention, link, image or HTML inside one (host text in an issue stays inert)."""
    inert = shown(text, multiline=True)
    longest = max((len(run) for run in re.findall(r"`+|~+", inert)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{inert}\n{fence}"


def issue_title(message: dict[str, Any]) -> str:
    """An issue's title from our own words only (severity, category, the spec's names):
    a title is rendered, and a host's text has no place in it."""
    distress = message["distress"]
    words = [str(distress.get(k, "")) for k in ("category", "component")]
    return shown(f"[{message['severity']}] {' '.join(w for w in words if w)}")[:120]


def marker(fingerprint: str) -> str:
    """Put in the issue's title: a restarted controller finds its own open issue by it."""
    return f"[fleet-reconciler {fingerprint}]"


class GiteaRepo:
    """One repository's API (issues, comments, pull requests, statuses), with the token
    kept out of every error. Raises ChannelError."""

    def __init__(self, url: str, repo: str, token: Secret, client: httpx.Client) -> None:
        self.client, self.token = client, token
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
            raise ChannelError(redact(f"{type(exc).__name__}: {exc}", self.token)) from None
        if response.status_code >= 300:
            raise ChannelError(
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
            raise ChannelError(f"gitea: {method} {path}: the answer is not JSON") from None

    def listed(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """A list answer's objects; any other shape is the channel's failure."""
        found = self.call("GET", path, **kwargs)
        if found is None:
            return []
        if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
            raise ChannelError(f"gitea: GET {path}: the answer is not a list of objects")
        return found

    def find(
        self, fingerprint: str, labels: list[str], state: str = "open"
    ) -> dict[str, Any] | None:
        """The incident's issue, by its label(s) and the marker in its title."""
        params: dict[str, str | int] = {"state": state, "type": "issues", "limit": 50}
        if labels:
            params["labels"] = ",".join(labels)
        tag = marker(fingerprint)
        found = [
            i
            for i in self.listed("/issues", params=params)
            if tag in str(i.get("title", "")) and isinstance(i.get("number"), int)
        ]
        return max(found, key=lambda i: int(i["number"])) if found else None

    def comments(self, number: int) -> list[str]:
        return [str(c.get("body", "")) for c in self.listed(f"/issues/{number}/comments")]


def _repo_of(channel: GiteaIssueChannel, client: httpx.Client) -> GiteaRepo:
    return GiteaRepo(channel.url, channel.repo, resolve_secret(channel.token), client)


def _gitea(
    channel: GiteaIssueChannel, key: str, message: dict[str, Any], client: httpx.Client
) -> str:
    repo = _repo_of(channel, client)
    issue = repo.find(message["fingerprint"], channel.labels)
    stamp = f"\n\n<!-- fleet-reconciler notification {key} -->"
    body = (
        f"**{message['severity']} {message['transition']}**\n\n"
        f"{code_block(shown(str(message['text'])), 'text')}\n\n"  # one line, inert
        f"{code_block(json.dumps(message['distress'], indent=2), 'json')}{stamp}"
    )
    if issue is None:
        if message["transition"] == "resolved":
            return "gitea: no open issue to close"
        labels = _label_ids(repo.listed("/labels"), channel.labels)
        title = f"{issue_title(message)} {marker(message['fingerprint'])}"
        created = repo.call(
            "POST", "/issues", json={"title": title, "body": body, "labels": labels}
        )
        number = created.get("number") if isinstance(created, dict) else None
        return f"gitea issue #{number if isinstance(number, int) else '?'} opened"
    number = int(issue["number"])
    told = [issue.get("body", ""), *repo.comments(number)]
    if not any(stamp.strip() in text for text in told):  # exactly once, by the issue's record
        repo.call("POST", f"/issues/{number}/comments", json={"body": body})
    if message["transition"] == "resolved":
        repo.call("PATCH", f"/issues/{number}", json={"state": "closed"})
        return f"gitea issue #{number} commented and closed"
    return f"gitea issue #{number} commented"


def post_review(
    channel: GiteaIssueChannel, fingerprint: str, review: str, client: httpx.Client
) -> str:
    """Add a post-incident review as a comment on the incident's issue (open or closed)."""
    repo = _repo_of(channel, client)
    issue = repo.find(fingerprint, channel.labels, state="all")
    if issue is None:
        raise ChannelError(f"gitea: no issue for {marker(fingerprint)} in {channel.repo}")
    number = int(issue["number"])
    repo.call("POST", f"/issues/{number}/comments", json={"body": review})
    return f"gitea issue #{number} commented with the review"


def _label_ids(labels: list[dict[str, Any]], names: list[str]) -> list[int]:
    by_name = {str(label.get("name")): label.get("id") for label in labels}
    return [int(found) for name in names if isinstance(found := by_name.get(name), int)]


def notification_test_message(agent: str, now: float) -> dict[str, Any]:
    """The seed's DR "Test 4" message: a P3 through a channel, in the distress format."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return {
        "incident": "test",
        "fingerprint": f"test:{int(now)}",
        "severity": "P3",
        "transition": "opened",
        "text": f"[P3] test: fleet-reconciler notification test at {stamp}",
        "distress": {
            "timestamp": stamp,
            "agent": agent,
            "severity": "P3",
            "category": "test",
            "component": "notifications",
            "message": "notification test (reconcile notify test)",
            "context": {
                "last_success": stamp,
                "attempts": 0,
                "error": "",
                "auto_recovery_attempted": False,
            },
            "requested_action": "none",
            "escalation_timeout": stamp,
        },
    }


def send_test_messages(
    notifications: Notifications, names: list[str], client: httpx.Client
) -> list[tuple[str, bool, str]]:
    """Send the test message through each channel: (name, answered, what it said). A
    Gitea test issue is opened and closed again."""
    now = time.time()
    message = notification_test_message(notifications.agent, now)
    results = []
    for name in names:
        channel = notifications.channels[name]
        key = f"test-{int(now)}-{name}"
        try:
            note = deliver(channel, key, message, client)
            if isinstance(channel, GiteaIssueChannel):
                done = {**message, "transition": "resolved"}
                note += "; " + deliver(channel, key + "-end", done, client)
            results.append((name, True, note))
        except (ChannelError, SecretUnavailable) as exc:
            results.append((name, False, str(exc)))
    return results
