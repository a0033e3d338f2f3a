"""Plan reviews on Gitea pull requests, as Atlantis does (`source.reviews`).

A pull request to the source's branch is planned read-only, from its head commit's
tree (fetched as `refs/pull/N/head`, never taken from the webhook's payload), exactly as
`reconcile --dry-run` plans a file. The plan is posted as **one** comment, found again
by a hidden marker and edited in place (split in parts when too long), and the head
commit gets the status `fleet-reconciler/plan`:

- success: no changes;
- pending: changes planned (they wait for review);
- failure: the state file is refused (its `file:line` errors are in the comment);
- error: a host is unreachable (the plan is incomplete).

Only comments by the token's own user count as ours: anyone can write the marker in a
comment of their own, and it is left alone. The comment is public and its input
hostile: it holds only what `--dry-run` prints, which never shows a secret nor a file
from outside the state directory, and it is set in a code block that nothing in it can
close.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx

from reconciler.flows.plan import Authority, dry_run
from reconciler.forge.errors import SourceRefused
from reconciler.forge.git_mirror import GC_EVERY_S, GitMirror
from reconciler.forge.gitea import GiteaError, GiteaRepo
from reconciler.forge.signatures import CommitRefused, verified_signer
from reconciler.forge.source import load_commit, open_mirror
from reconciler.hosts.client import WarmWorker
from reconciler.render.markdown import code_block
from reconciler.render.plan_text import summary_line
from reconciler.store.journal import Journal
from reconciler.store.memory import Memory
from reconciler.untrusted.text import shown
from state.errors import SpecError
from state.load import LoadedFleet
from state.secrets import resolve_secret
from state.spec.source import CommitVerification, GitSource, ReviewPolicy

MARKER = "<!-- fleet-reconciler:plan"
PART_LIMIT = 60_000  # characters of one comment (Gitea stores more; browsers show less)
MAX_PARTS = 10
PLAN_CONTEXT, APPLY_CONTEXT = "fleet-reconciler/plan", "fleet-reconciler/apply"
StatusState = Literal["success", "pending", "failure", "error"]


class NotReviewed(SourceRefused):
    """The pull request is not one to review (closed, or to another branch)."""


@dataclass(frozen=True)
class Review:
    number: int
    commit: str
    state: StatusState
    description: str
    text: str
    """What the comment holds: the plan as `--dry-run` prints it, or the refusal."""
    unobserved: bool = False
    """A host could not be observed: the plan is partial."""


def gitea(source: GitSource, client: httpx.Client) -> GiteaRepo:
    assert source.token is not None, "reviews need a token (GitSource checks it)"
    url, repo = source.gitea()
    return GiteaRepo(url, repo, resolve_secret(source.token), client)


def review_pull(
    source: GitSource,
    number: int,
    journal: Journal,
    worker: WarmWorker,
    client: httpx.Client,
    memory: Memory | None = None,
) -> Review:
    """Plan pull request `number` read-only, with the authority of the commit in force
    (see reconciler.hosts.review_scope). An author the review policy does not admit
    gets an `error` review saying why, and nothing is fetched or observed. Raises
    NotReviewed, GiteaError (the API), or SourceUnavailable/SourceRefused (git)."""
    repo = gitea(source, client)
    pull = repo.call("GET", f"/pulls/{int(number)}")
    base = pull.get("base") if isinstance(pull, dict) else None
    if not isinstance(base, dict) or base.get("ref") != source.branch:
        raise NotReviewed(f"pull request {number} is not to {source.branch}")
    if pull.get("state") != "open":
        raise NotReviewed(f"pull request {number} is not open")
    head = pull.get("head") if isinstance(pull.get("head"), dict) else {}
    policy = source.review_policy or ReviewPolicy()
    refused = author_refusal(policy, pull, lambda login: _permission(repo, login))
    if refused is not None:
        sha = head.get("sha") if isinstance(head, dict) else None
        if not isinstance(sha, str) or not _is_sha(sha):
            raise NotReviewed(f"pull request {number}: {refused}")
        return Review(number, sha, "error", f"not planned: {refused}", f"Not planned: {refused}.\n")
    state_dir = journal.path.parent
    mirror = open_mirror(source, state_dir, memory)  # with etcd, the fleet's commit in force
    commit = mirror.fetch_pull(number)
    try:
        signed = _signature_note(source, mirror, commit, state_dir)
        try:
            loaded = load_commit(mirror, commit, source, state_dir)
        except SpecError as exc:
            return Review(number, commit, "failure", "the state file is refused", f"{exc}\n")
        planned = dry_run(
            loaded, journal, worker, review=Authority(base_in_force(source, mirror, state_dir))
        )
    finally:
        forget_pull(mirror, number, commit, state_dir)
    text = signed + planned.text
    if planned.unreachable:
        hosts = ", ".join(planned.unreachable)
        partial = f"unreachable: {hosts}; the plan is partial"
        return Review(number, commit, "error", partial, text, unobserved=True)
    summary = planned.plan.summary
    if summary.pending:
        said = summary_line(summary).removeprefix("Plan: ").rstrip(".")
        return Review(number, commit, "pending", f"{said}: waiting for review", text)
    return Review(number, commit, "success", "no changes", text)


WRITERS = frozenset({"write", "admin", "owner"})


def author_refusal(
    policy: ReviewPolicy, pull: dict[str, Any], permission: Callable[[str], str | None]
) -> str | None:
    """Why the review policy does not admit pull request `pull` (Gitea's JSON), or None.
    Fails closed: a head repository or author the forge does not name is refused.
    `permission(login)` asks the forge what the author may do to the repository."""
    head, base = pull.get("head"), pull.get("base")
    head_repo = head.get("repo") if isinstance(head, dict) else None
    base_repo = base.get("repo") if isinstance(base, dict) else None
    same = (
        isinstance(head_repo, dict)
        and isinstance(base_repo, dict)
        and head_repo.get("full_name") is not None
        and head_repo.get("full_name") == base_repo.get("full_name")
    )
    if not same and not policy.forks:
        return "its head is in another repository (a fork); source.reviews.forks is off"
    if policy.authors == "anyone":
        return None
    user = pull.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    if not isinstance(login, str) or not login:
        return "the forge does not name its author"
    found = permission(login)
    if found not in WRITERS:
        return (
            f"its author {shown(login)[:64]} cannot write to the repository "
            f"(permission {shown(found or 'unknown')[:16]}); source.reviews.authors is writers"
        )
    return None


def _permission(repo: GiteaRepo, login: str) -> str | None:
    """`login`'s permission on the repository, as Gitea's collaborator API says (None
    when it will not say: not a collaborator, or the API refused)."""
    try:
        found = repo.call("GET", f"/collaborators/{quote(login, safe='')}/permission")
    except GiteaError:
        return None
    permission = found.get("permission") if isinstance(found, dict) else None
    return permission if isinstance(permission, str) else None


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def base_in_force(source: GitSource, mirror: GitMirror, state_dir: Path) -> LoadedFleet | None:
    """The commit whose authority a review has: the pinned one, else the one in force
    (None: nothing was ever applied from the source, and a review contacts nothing)."""
    holds = mirror.holds()
    commit = holds.get("pinned") or holds.get("in-force")
    if commit is None:
        return None
    key = (str(state_dir), commit, source.model_dump_json())
    if key not in _BASES:  # reviews come in bursts against one commit in force
        try:
            loaded = load_commit(mirror, commit, source, state_dir)
        except SpecError:
            return None
        _BASES.clear()
        _BASES[key] = loaded
    return _BASES[key]


_BASES: dict[tuple[str, str, str], LoadedFleet] = {}
"""The last commit in force a review loaded (a commit's tree never changes)."""


def forget_pull(mirror: GitMirror, number: int, commit: str, state_dir: Path) -> None:
    """Drop what a review fetched and exported (its ref and tree): the next review fetches
    again, and `git gc` collects the objects."""
    mirror.drop_pull(number)
    holds = mirror.holds()
    if commit not in {holds.get("pinned"), holds.get("in-force"), mirror.tip()}:
        shutil.rmtree(state_dir / "trees" / commit, ignore_errors=True)
    mirror.collect(every=GC_EVERY_S)


def _signature_note(source: GitSource, mirror: GitMirror, commit: str, state_dir: Path) -> str:
    """A line on whether the head commit's signature would let it be applied."""
    if source.verify is None:
        return ""
    head = CommitVerification(keys=source.verify.keys, mode="head")
    try:
        return f"signed by {verified_signer(mirror, head, commit, state_dir)}\n\n"
    except CommitRefused as exc:
        return f"NOT APPLICABLE AS IT IS: {exc}; source.verify refuses it\n\n"


def comment_parts(review: Review) -> list[str]:
    """The comment's body, split in parts when it is too long, each with its marker."""
    head = (
        f"**fleet-reconciler plan** for `{review.commit[:12]}`: {review.state}, "
        f"{review.description}"
    )
    lines, size = review.text.splitlines(keepends=True), 0
    chunks: list[list[str]] = [[]]
    chunk: list[str] = chunks[0]
    for line in lines:
        line = line[: PART_LIMIT // 2]  # one line longer than a part is cut, not split
        if size + len(line) > PART_LIMIT - 2000 and chunk:
            chunk, size = [], 0
            chunks.append(chunk)
        chunk.append(line)
        size += len(line)
    if len(chunks) > MAX_PARTS:
        chunks = [*chunks[: MAX_PARTS - 1], ["(the rest is cut: run reconcile review)\n"]]
    total = len(chunks)
    return [
        f"{MARKER} part {i + 1}/{total} -->\n{head}"
        + (f" (part {i + 1} of {total})" if total > 1 else "")
        + "\n\n"
        + code_block("".join(part).rstrip("\n"), "text")
        for i, part in enumerate(chunks)
    ]


def post_plan_review(source: GitSource, review: Review, client: httpx.Client) -> str:
    """Put the review on the pull request (its one comment, edited in place) and the
    status on its head commit; what was done."""
    repo = gitea(source, client)
    login = repo.login()  # who the token is: only its comments are ours
    ours = [
        c
        for c in repo.listed(f"/issues/{review.number}/comments")
        if str(c.get("body", "")).startswith(MARKER)
        and isinstance(c.get("id"), int)
        and isinstance(c.get("user"), dict)
        and c["user"].get("login") == login
    ]
    ours.sort(key=lambda c: int(c["id"]))
    parts = comment_parts(review)
    for i, body in enumerate(parts):
        if i < len(ours):
            repo.call("PATCH", f"/issues/comments/{int(ours[i]['id'])}", json={"body": body})
        else:
            repo.call("POST", f"/issues/{review.number}/comments", json={"body": body})
    for surplus in ours[len(parts) :]:
        repo.call("DELETE", f"/issues/comments/{int(surplus['id'])}")
    set_status(source, review.commit, PLAN_CONTEXT, review.state, review.description, client)
    verb = "updated" if ours else "posted"
    return (
        f"pull request #{review.number}: plan comment {verb} ({len(parts)} part(s)), "
        f"status {PLAN_CONTEXT} {review.state} on {review.commit[:12]}"
    )


def set_status(
    source: GitSource,
    commit: str,
    context: str,
    state: StatusState,
    description: str,
    client: httpx.Client,
) -> None:
    gitea(source, client).call(
        "POST",
        f"/statuses/{commit}",
        json={"state": state, "context": context, "description": description[:250]},
    )
