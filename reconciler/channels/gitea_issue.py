"""A Gitea issue per incident, for P1: opened, commented once per notification (found
again by the marker in its title after a restart), and closed when it resolves."""

from __future__ import annotations

import json
from typing import Any

import httpx

from reconciler.channels.interface import ChannelError, Message
from reconciler.forge.gitea import GiteaError, GiteaRepo
from reconciler.render.markdown import code_block
from reconciler.untrusted.text import shown
from state.secrets import resolve_secret
from state.spec.notifications import GiteaIssueChannel


def deliver(channel: GiteaIssueChannel, key: str, message: Message, client: httpx.Client) -> str:
    try:
        return _deliver(_repo_of(channel, client), channel, key, message)
    except GiteaError as exc:
        raise ChannelError(str(exc)) from None


def post_incident_review(
    channel: GiteaIssueChannel, fingerprint: str, review: str, client: httpx.Client
) -> str:
    """Add a post-incident review as a comment on the incident's issue (open or closed)."""
    repo = _repo_of(channel, client)
    try:
        issue = find_issue(repo, fingerprint, channel.labels, state="all")
        if issue is None:
            raise ChannelError(f"gitea: no issue for {marker(fingerprint)} in {channel.repo}")
        number = int(issue["number"])
        repo.call("POST", f"/issues/{number}/comments", json={"body": review})
    except GiteaError as exc:
        raise ChannelError(str(exc)) from None
    return f"gitea issue #{number} commented with the review"


def issue_title(message: Message) -> str:
    """An issue's title from our own words only (severity, category, the spec's names):
    a title is rendered, and a host's text has no place in it."""
    distress = message["distress"]
    words = [str(distress.get(k, "")) for k in ("category", "component")]
    return shown(f"[{message['severity']}] {' '.join(w for w in words if w)}")[:120]


def marker(fingerprint: str) -> str:
    """Put in the issue's title: a restarted controller finds its own open issue by it."""
    return f"[fleet-reconciler {fingerprint}]"


def find_issue(
    repo: GiteaRepo, fingerprint: str, labels: list[str], state: str = "open"
) -> dict[str, Any] | None:
    """The incident's issue, by its label(s) and the marker in its title."""
    params: dict[str, str | int] = {"state": state, "type": "issues", "limit": 50}
    if labels:
        params["labels"] = ",".join(labels)
    tag = marker(fingerprint)
    found = [
        i
        for i in repo.listed("/issues", params=params)
        if tag in str(i.get("title", "")) and isinstance(i.get("number"), int)
    ]
    return max(found, key=lambda i: int(i["number"])) if found else None


def _repo_of(channel: GiteaIssueChannel, client: httpx.Client) -> GiteaRepo:
    return GiteaRepo(channel.url, channel.repo, resolve_secret(channel.token), client)


def _deliver(repo: GiteaRepo, channel: GiteaIssueChannel, key: str, message: Message) -> str:
    issue = find_issue(repo, message["fingerprint"], channel.labels)
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


def _label_ids(labels: list[dict[str, Any]], names: list[str]) -> list[int]:
    by_name = {str(label.get("name")): label.get("id") for label in labels}
    return [int(found) for name in names if isinstance(found := by_name.get(name), int)]
