"""`source:`: the git source of the desired state, signed commits, and pull request
reviews."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from state.spec.base import Spec
from state.types import (
    AbsPath,
    Duration,
    SecretRef,
)
from state.url_types import (
    GIT_BRANCH,
    GitUrl,
    RepoPath,
    SigningKey,
)


class CommitVerification(Spec):
    """Which commits of the source may be applied: those signed by one of `keys`."""

    keys: list[SigningKey] = Field(
        min_length=1,
        description="The signers' public keys: SSH public key lines, or ASCII-armored PGP "
        "public keys. These live in the controller's own state file: a commit cannot add "
        "its own (it may not change `source`).",
    )
    mode: Literal["head", "all"] = Field(
        "all",
        description="`all`: every commit since the one last in force must be signed, not "
        "only the tip (an unsigned commit under a signed merge is refused); `head`: only "
        "the tip, as Argo CD and Flux do. The first fetch, with nothing in force yet, "
        "checks the tip.",
    )


class ReviewPolicy(Spec):
    """Whose pull requests are planned (`source.reviews`). A review runs with the authority
    of the commit in force whoever wrote the pull request; this says whose are planned at
    all. The others get the status `fleet-reconciler/plan` error saying why, and nothing
    is fetched or observed."""

    authors: Literal["writers", "anyone"] = Field(
        "writers",
        description="`writers`: only authors who can write to the repository (Gitea's "
        "collaborator permission: write, admin or owner); `anyone`: every author.",
        examples=["writers"],
    )
    forks: bool = Field(
        False, description="Also plan pull requests whose head is in another repository."
    )


class GitSource(Spec):
    """Where `reconcile watch` fetches the desired state: one branch of a git repository.
    It applies exactly the fetched commit, read from that commit's tree."""

    url: GitUrl = Field(
        description="The repository.", examples=["https://198.18.0.12:3000/ops/fleet.git"]
    )
    branch: str = Field("main", pattern=GIT_BRANCH, description="The branch followed.")
    path: RepoPath = Field(
        "state/fleet.yaml", description="The state file's path in the repository."
    )
    interval: Duration = Field(
        timedelta(minutes=1), description="How often the branch is fetched.", examples=["1m"]
    )
    ssh_key: SecretRef | None = Field(
        None,
        description="ssh:// only: the private key's reference (file:/path).",
        examples=["file:/etc/fleet-reconciler/forge_ed25519"],
    )
    token: SecretRef | None = Field(
        None,
        description="http(s):// only: an access token's reference.",
        examples=["env:GITEA_TOKEN"],
    )
    known_hosts: AbsPath | None = Field(
        None, description="ssh:// only, and needed: the forge's host keys (no trust on first use)."
    )
    webhook_secret: SecretRef | None = Field(
        None,
        description="The secret of Gitea's push webhook (`POST /hooks/gitea` on `--http`): "
        "a delivery signed with it makes `watch` fetch at once; unset, the endpoint "
        "accepts nothing and polling alone fetches.",
        examples=["env:GITEA_WEBHOOK_SECRET"],
    )
    verify: CommitVerification | None = Field(
        None,
        description="Apply only signed commits. Unset, any commit on the branch is applied.",
    )
    reviews: bool | ReviewPolicy = Field(
        False,
        description="Plan each pull request to `branch`, as Atlantis does, on Gitea (`true`: "
        "with the default author policy, only writers' and never forks'): on its "
        "`pull_request` webhook (`POST /hooks/gitea` on `--http`) or `reconcile review PR`, "
        "one comment holds the plan as `--dry-run` renders it (updated in place) and the "
        "head commit gets the status `fleet-reconciler/plan`; a commit `watch` applies gets "
        "`fleet-reconciler/apply`. Needs an http(s) `url` of a Gitea repository "
        "(`.../OWNER/REPO.git`) and `token`.",
    )

    @model_validator(mode="after")
    def _credentials_fit(self) -> GitSource:
        ssh = self.url.startswith("ssh://")
        if self.ssh_key is not None and not ssh:
            raise ValueError("ssh_key: expected only with an ssh:// url")
        if self.token is not None and not self.url.startswith(("https://", "http://")):
            raise ValueError("token: expected only with an http(s):// url")
        if ssh and self.known_hosts is None:
            raise ValueError("known_hosts: expected with an ssh:// url (no trust on first use)")
        if self.reviews:
            if not self.url.startswith(("https://", "http://")) or self.token is None:
                raise ValueError("reviews: expected an http(s) url of Gitea and a token")
            if len(urlsplit(self.url).path.strip("/").split("/")) < 2:
                raise ValueError("reviews: expected the url .../OWNER/REPO.git")
        return self

    @property
    def review_policy(self) -> ReviewPolicy | None:
        """Whose pull requests are planned; None when `reviews` is off."""
        if self.reviews is True:
            return ReviewPolicy()
        return self.reviews or None

    def gitea(self) -> tuple[str, str]:
        """(Gitea's base URL, OWNER/REPO) of the http(s) `url`: what `reviews` talks to."""
        parts = urlsplit(self.url)
        segments = parts.path.strip("/").removesuffix(".git").split("/")
        base = f"{parts.scheme}://{parts.netloc}" + "".join(f"/{s}" for s in segments[:-2])
        return base, "/".join(segments[-2:])
