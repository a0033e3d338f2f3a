"""The desired state comes from the forge: a real git server on the lab, real pushes.

h2 runs the Gitea stand-in as a service. Its git side is git's own `git http-backend`
(smart HTTP, pushes with a token), and each push runs a real post-receive hook that
sends Gitea's push webhook, signed as Gitea signs it, to the controller's `--http`.
`reconcile watch` follows the branch: the source's interval is 10 minutes, so a change
live within a minute was brought by the webhook.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.store.journal import Journal
from tests.fleet import lab as fleet_lab
from tests.fleet.ports import free_port
from tests.integration.by_hand import wait_http
from tests.integration.conftest import ROOT, STANDINS, lab_spec, run_reconcile
from tests.integration.test_watch import wait_for
from tests.signing import Signer, ssh_signer
from tests.spec_text import backup_policy

TOKEN = "forge-test-token"
SECRET = "forge-hook-secret"
CONF = "/etc/agent/agent.conf"


def git(work: Path, *args: str, signer: Signer | None = None) -> str:
    config = [part for c in signer.config for part in ("-c", c)] if signer else []
    env = {
        "GIT_AUTHOR_NAME": "op",
        "GIT_AUTHOR_EMAIL": "op@example.invalid",
        "GIT_COMMITTER_NAME": "op",
        "GIT_COMMITTER_EMAIL": "op@example.invalid",
        "HOME": str(work),
        "PATH": "/usr/bin:/bin",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: token {TOKEN}",
        **(signer.env if signer else {}),
    }
    done = subprocess.run(
        ["git", "-C", str(work), *config, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() + done.stderr.strip()


class Forge:
    """The repository on h2, a working clone the test pushes from, and `watch` on the
    controller following it."""

    def __init__(self, lab: fleet_lab.Lab, base: Path, interval: str = "10m") -> None:
        self.lab, self.base, self.interval = lab, base, interval
        self.forge = f"http://{lab.host('h2').address}:3000"
        self.url = f"{self.forge}/ops/fleet.git"
        self.hook = f"{lab.gateway}:{free_port(lab.gateway)}"
        self.journal_path = base / "controller" / "journal.db"
        self.work = base / "work"
        self.env = {**os.environ, "FORGE_TOKEN": TOKEN, "FORGE_HOOK_SECRET": SECRET}
        self.proc: subprocess.Popen[bytes] | None = None
        self.ops: Signer | None = None  # set once verify is on: the signer and its block
        self.verify = ""
        self.good: str | None = None

    def serve(self) -> None:
        """The Gitea stand-in as a service on h2, with an empty repository and a hook."""
        fleet_lab.ssh(
            self.lab,
            "h2",
            "install -D -m 0755 /dev/stdin /usr/local/bin/gitea",
            stdin=(STANDINS / "http_standins.py").read_bytes(),
        )
        fleet_lab.ssh(
            self.lab,
            "h2",
            "systemd-run --unit=forge -p Restart=always "
            "/usr/bin/python3 /usr/local/bin/gitea gitea --port 3000",
        )
        wait_http(f"{self.forge}/api/v1/version")
        headers = {"Authorization": f"token {TOKEN}"}
        created = httpx.post(
            f"{self.forge}/api/v1/orgs/ops/repos", json={"name": "fleet"}, headers=headers
        )
        assert created.status_code == 201, created.text
        hook = {
            "type": "gitea",
            "config": {"url": f"http://{self.hook}/hooks/gitea", "secret": SECRET},
            "events": ["push", "pull_request"],
        }
        added = httpx.post(f"{self.forge}/api/v1/repos/ops/fleet/hooks", json=hook, headers=headers)
        assert added.status_code == 201, added.text

    def source_block(self, verify: str = "") -> str:
        return (
            f"source: {{url: '{self.url}', branch: main, path: state/fleet.yaml, "
            f"interval: {self.interval}, token: env:FORGE_TOKEN, "
            "webhook_secret: env:FORGE_HOOK_SECRET"
            f"{verify}}}\n"
        )

    def spec(self, mode: str, verify: str = "") -> str:
        """The lab's spec as committed: its install sources are files of the commit."""
        text = lab_spec(self.lab).replace(f"{STANDINS}/", "bin/")
        return text.replace("mode = test", f"mode = {mode}") + self.source_block(verify)

    def first_commit(self) -> str:
        git(self.base, "init", "-q", "-b", "main", str(self.work))
        (self.work / "state" / "bin").mkdir(parents=True)
        for name in ("agent_standin.py", "http_standins.py"):
            shutil.copy(STANDINS / name, self.work / "state" / "bin" / name)
        return self.commit("mode = first", self.spec("first"))

    def commit(self, message: str, text: str, signer: Signer | None = None) -> str:
        (self.work / "state" / "fleet.yaml").write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message, signer=signer)
        return git(self.work, "rev-parse", "HEAD")

    def push(self, *flags: str) -> str:
        return git(self.work, "push", *flags, self.url, "main")

    @property
    def bootstrap(self) -> Path:
        return self.base / "controller" / "checkout" / "state" / "fleet.yaml"

    def start_watch(self, http: bool = True) -> None:
        """`watch` on a clone of the repository (the bootstrap), serving the webhook
        unless `http` is False (then it polls alone)."""
        checkout = self.base / "controller" / "checkout"
        if not checkout.exists():
            git(self.base, "clone", "-q", self.url, str(checkout))
        git(checkout, "pull", "-q", "--ff-only", self.url, "main")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler.cli",
                "watch",
                str(self.bootstrap),
                "--journal",
                str(self.journal_path),
                *(("--http", self.hook) if http else ()),
                "--max-seconds",
                "900",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.base / "watch.log").open("w"),
            start_new_session=True,
        )

    def log(self) -> str:
        return (self.base / "watch.log").read_text()

    def active(self, host: str, unit: str) -> str:
        return fleet_lab.ssh(
            self.lab, host, f"systemctl is-active -- {shlex.quote(unit)}", check=False
        ).strip()

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"token {TOKEN}"}
        url = f"{self.forge}/api/v1/repos/ops/fleet{path}"
        return httpx.request(method, url, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]

    def plan_comments(self, number: int) -> list[str]:
        found = self.api("GET", f"/issues/{number}/comments").json()
        return [c["body"] for c in found if c["body"].startswith("<!-- fleet-reconciler:plan")]

    def statuses(self, commit: str, context: str) -> list[str]:
        found = self.api("GET", f"/commits/{commit}/statuses").json()
        return [x["status"] for x in found if x["context"] == context]

    def conf(self) -> str:
        return fleet_lab.ssh(self.lab, "h1", f"cat {CONF}", check=False).strip()

    def events(self, kind: str) -> list[str]:
        journal = Journal(self.journal_path)
        try:
            return [e.message for e in journal.events(50, kind)]
        finally:
            journal.close()

    def signers(self) -> dict[str | None, str | None]:
        journal = Journal(self.journal_path)
        try:
            return {commit: signer for _, commit, signer in journal.specs(50)}
        finally:
            journal.close()

    def commits_run(self) -> list[str | None]:
        journal = Journal(self.journal_path)
        try:
            return [run.git_commit for run in journal.runs(50)]
        finally:
            journal.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=120)


@pytest.fixture(scope="module")
def forge(lab: fleet_lab.Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forge]:
    running = Forge(lab, tmp_path_factory.mktemp("forge"))
    running.serve()
    first = running.first_commit()
    assert "remote: webhook 1: " in running.push()  # nobody listens yet: not delivered
    running.start_watch()
    try:
        wait_for("the first commit applied", lambda: running.conf() == "mode = first", 180)
        assert first in running.commits_run()
        yield running
    finally:
        running.stop()
        fleet_lab.ssh(lab, "h2", "systemctl stop forge", check=False)


def test_a_push_is_live_through_the_webhook(forge: Forge) -> None:
    """The source is fetched every 10 minutes; the webhook brings a push in seconds, and
    the run that applied it is journaled with its commit."""
    pushed = forge.commit("mode = pushed", forge.spec("pushed"))
    started = time.monotonic()
    said = forge.push()
    assert "remote: webhook 1: 202" in said, said
    wait_for("the pushed commit applied", lambda: forge.conf() == "mode = pushed", 60)
    print(f"push to live through the webhook: {time.monotonic() - started:.2f} s")
    assert pushed in forge.commits_run()
    status = run_reconcile(
        "status", str(forge.bootstrap), "--journal", str(forge.journal_path), env=forge.env
    )
    assert f"spec in force: commit {pushed[:12]} of {forge.url} main" in status.stdout
    once = run_reconcile(
        str(forge.bootstrap), "--yes", "--journal", str(forge.journal_path), env=forge.env
    )  # a one-shot apply, beside watch, of the same fetched commit
    assert once.returncode == 0 and "No changes" in once.stdout, once.stdout + once.stderr
    mirror = forge.journal_path.parent / "source.git"
    assert git(mirror, "rev-parse", "refs/fleet/in-force") == pushed


def test_a_broken_commit_is_refused_and_the_last_good_stays(forge: Forge) -> None:
    broken = forge.commit("broken", forge.spec("broken").replace("rto: 30s", "rto: soon", 1))
    assert "remote: webhook 1: 202" in forge.push()
    wait_for("the commit refused", lambda: forge.events("spec_rejected"), 60)
    [message, *_] = forge.events("spec_rejected")
    assert f"state/fleet.yaml@{broken[:12]}:" in message and "rto" in message, message
    assert "trees/" not in message  # where the controller keeps it is not the author's business
    time.sleep(3)
    assert forge.conf() == "mode = pushed"
    assert broken not in forge.commits_run()


def test_a_force_push_is_held_until_accepted(forge: Forge) -> None:
    """A tip that does not descend from the commit in force is held (P1): the fleet
    stays as it is, status says what is held, and `reconcile accept` takes it."""
    mirror = forge.journal_path.parent / "source.git"
    in_force = git(mirror, "rev-parse", "refs/fleet/in-force")  # mode = pushed
    git(forge.work, "reset", "-q", "--hard", f"{in_force}~1")  # a branch from before it
    rewritten = forge.commit("mode = rewritten", forge.spec("rewritten"))
    assert "forced update" in forge.push("--force")
    wait_for("the rewrite held", lambda: forge.events("history_rewritten"), 60)
    [message, *_] = forge.events("history_rewritten")
    assert in_force in message and rewritten in message and "held" in message, message
    time.sleep(2)
    assert forge.conf() == "mode = pushed"  # the commit in force stays
    steer = ("--state", str(forge.bootstrap), "--journal", str(forge.journal_path))
    status = run_reconcile("status", str(forge.bootstrap), *steer[2:], env=forge.env)
    assert f"loop: HELD: the branch is at {rewritten[:12]}" in status.stdout, status.stdout
    wrong = run_reconcile("accept", in_force[:10], *steer, env=forge.env)
    assert wrong.returncode == 1 and "expected the branch's tip" in wrong.stderr
    accepted = run_reconcile("accept", rewritten[:10], *steer, env=forge.env)
    assert accepted.returncode == 0, accepted.stderr
    assert f"accepted commit {rewritten[:12]}" in accepted.stdout
    wait_for("the accepted tip applied", lambda: forge.conf() == "mode = rewritten", 60)
    assert forge.events("spec_accepted")


def test_a_forged_delivery_changes_nothing(forge: Forge) -> None:
    """Unsigned, or signed with another secret: 401 and no fetch. A good signature over a
    payload that names some other commit only makes the controller fetch the branch."""
    import hashlib
    import hmac
    import json

    url = f"http://{forge.hook}/hooks/gitea"
    body = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()
    fetched_before = forge.events("spec_applied")
    assert httpx.post(url, content=body).status_code == 401
    wrong = hmac.new(b"another secret", body, hashlib.sha256).hexdigest()
    assert httpx.post(url, content=body, headers={"X-Gitea-Signature": wrong}).status_code == 401
    right = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Gitea-Signature": right, "X-Gitea-Delivery": "forged-1"}
    assert httpx.post(url, content=body, headers=headers).status_code == 202
    assert httpx.post(url, content=body, headers=headers).status_code == 200  # seen already
    time.sleep(3)
    assert forge.events("spec_applied") == fetched_before  # the branch did not move
    assert forge.conf() == "mode = rewritten"


def test_the_source_over_ssh_with_pinned_host_keys(forge: Forge, tmp_path: Path) -> None:
    """The same repository over SSH, as Gitea serves it too: the lab's key, its
    known_hosts (no trust on first use)."""
    from reconciler.forge.errors import SourceUnavailable
    from reconciler.forge.source import open_mirror
    from state.spec.source import GitSource

    head = git(forge.work, "rev-parse", "HEAD")
    repo = "/var/lib/gitea-standin/repos/ops/fleet.git"
    address = forge.lab.host("h2").address
    source = GitSource(
        url=f"ssh://root@{address}{repo}",
        ssh_key=f"file:{forge.lab.ssh_key}",
        known_hosts=forge.lab.known_hosts,
    )
    assert open_mirror(source, tmp_path).fetch().commit == head
    stranger = tmp_path / "other_known_hosts"
    stranger.write_text(f"{address} ssh-ed25519 {'A' * 68}\n")
    unknown = source.model_copy(update={"known_hosts": str(stranger)})
    with pytest.raises(SourceUnavailable):
        open_mirror(unknown, tmp_path / "b").fetch()


def test_only_signed_commits_are_applied_every_one_since_the_last(
    forge: Forge, tmp_path: Path
) -> None:
    """The controller's state file turns `verify` on (mode all, one SSH key). A signed
    commit is applied and its signer journaled; an unsigned one, and a signed merge of an
    unsigned branch, are refused and said; the fleet stays as it was."""
    ops = ssh_signer(tmp_path, "ops")
    verify = f", verify: {{mode: all, keys: ['{ops.public}']}}"
    rejected_before = len(forge.events("spec_rejected"))
    forge.bootstrap.write_text(forge.spec("rewritten", verify))  # the operator's own file
    good = forge.commit("signed", forge.spec("signed", verify), ops)
    assert "remote: webhook 1: 202" in forge.push()
    wait_for("the signed commit applied", lambda: forge.conf() == "mode = signed", 60)
    assert str(forge.signers()[good]).startswith("key1 (SHA256:")
    forge.ops, forge.verify, forge.good = ops, verify, good

    unsigned = forge.commit("unsigned", forge.spec("unsigned", verify))
    forge.push()
    wait_for("the unsigned commit refused", lambda: f"commit {unsigned[:12]} is not signed" in "".join(forge.events("spec_rejected")), 60)  # fmt: skip
    git(forge.work, "reset", "-q", "--hard", good)

    git(forge.work, "checkout", "-q", "-b", "feature")
    sneaked = forge.commit("sneaked", forge.spec("sneaked", verify))
    git(forge.work, "checkout", "-q", "main")
    git(forge.work, "merge", "-q", "--no-ff", "--no-edit", "-S", "feature", signer=ops)
    merge = git(forge.work, "rev-parse", "HEAD")
    forge.push("--force")
    said = f"commit {sneaked[:12]} is not signed (under the tip {merge[:12]}; verify mode: all)"
    wait_for("the signed merge refused", lambda: said in "".join(forge.events("spec_rejected")), 60)
    time.sleep(2)
    assert forge.conf() == "mode = signed"
    assert len(forge.events("spec_rejected")) > rejected_before
    assert unsigned not in forge.commits_run() and merge not in forge.commits_run()


def test_pin_rolls_back_and_holds_until_unpin(forge: Forge) -> None:
    """`reconcile pin` is a rollback the next fetch (or push) cannot undo; `unpin`
    follows the branch again, verifying every commit since the pinned one."""
    assert forge.ops is not None and forge.good is not None
    git(forge.work, "reset", "-q", "--hard", forge.good)
    forge.commit("moved on", forge.spec("moved-on", forge.verify), forge.ops)
    forge.push("--force")
    wait_for("the next commit applied", lambda: forge.conf() == "mode = moved-on", 60)
    steer = ("--state", str(forge.bootstrap), "--journal", str(forge.journal_path))
    pinned = run_reconcile("pin", forge.good[:10], *steer, env=forge.env)
    assert pinned.returncode == 0, pinned.stderr
    assert f"pinned commit {forge.good[:12]}, signed by key1 (SHA256:" in pinned.stdout
    assert "reconcile watch (pid" in pinned.stdout, pinned.stdout
    wait_for("the pinned commit applied", lambda: forge.conf() == "mode = signed", 60)
    later = forge.commit("later", forge.spec("later", forge.verify), forge.ops)
    assert "remote: webhook 1: 202" in forge.push()  # a fetch, and the pin stands
    status = run_reconcile("status", str(forge.bootstrap), *steer[2:], env=forge.env)
    assert f"commit {forge.good[:12]} of {forge.url} main (PINNED" in status.stdout
    assert f"the branch is at {later[:12]}" in status.stdout, status.stdout
    assert forge.conf() == "mode = signed"
    refused = run_reconcile("pin", "0123456789", *steer, env=forge.env)
    assert refused.returncode == 1 and "expected the ID of a commit" in refused.stderr
    unpinned = run_reconcile("unpin", *steer, env=forge.env)
    assert f"unpinned commit {forge.good[:12]}" in unpinned.stdout, unpinned.stderr
    wait_for("the branch followed again", lambda: forge.conf() == "mode = later", 60)
    kinds = [e for e in ("spec_pinned", "spec_unpinned") if forge.events(e)]
    assert kinds == ["spec_pinned", "spec_unpinned"]


def test_a_force_push_to_an_older_signed_commit_is_held(forge: Forge) -> None:
    """Every commit ever signed by a current key passes `verify`; the one before a fix
    is still not taken by itself: held until an operator accepts it."""
    assert forge.ops is not None and forge.good is not None
    before = git(forge.work, "rev-parse", "HEAD")
    held_before = len(forge.events("history_rewritten"))
    git(forge.work, "push", "-q", "--force", forge.url, f"{forge.good}:main")
    wait_for("the rollback held", lambda: len(forge.events("history_rewritten")) > held_before, 60)
    time.sleep(2)
    assert forge.conf() == "mode = later"
    steer = ("--state", str(forge.bootstrap), "--journal", str(forge.journal_path))
    assert run_reconcile("accept", forge.good, *steer, env=forge.env).returncode == 0
    wait_for("the accepted rollback applied", lambda: forge.conf() == "mode = signed", 60)
    git(forge.work, "push", "-q", "--force", forge.url, f"{before}:main")  # forward again
    wait_for("forward again", lambda: forge.conf() == "mode = later", 60)


def test_suspend_holds_the_plan_and_resume_applies_it(forge: Forge) -> None:
    """Suspended, a stopped service is seen and planned, not healed; `status` says so;
    `resume` applies the plan at once."""
    journal = ("--journal", str(forge.journal_path))
    suspended = run_reconcile("suspend", "--reason", "maintenance window", *journal)
    assert "applying suspended (maintenance window)" in suspended.stdout, suspended.stderr
    fleet_lab.ssh(forge.lab, "h1", "systemctl stop agent")
    wait_for("the held plan said", lambda: "suspended (maintenance window)" in forge.log(), 30)
    assert forge.active("h1", "agent") != "active"
    status = run_reconcile("status", str(forge.bootstrap), *journal, env=forge.env)
    assert "applying SUSPENDED since" in status.stdout, status.stdout
    assert "(maintenance window)" in status.stdout
    resumed = run_reconcile("resume", "--state", str(forge.bootstrap), *journal)
    assert "applying resumed" in resumed.stdout and "(pid" in resumed.stdout, resumed.stdout
    wait_for("the agent healed", lambda: forge.active("h1", "agent") == "active", 60)


REVIEWS = ", reviews: true"
LEAKY_BACKUP = "backups:\n" + backup_policy(
    "leak",
    "h1",
    "sftp:root@h2:/srv/restic/leak",
    "env:FORGE_TOKEN",
    retention="{keep_within: 30d}",
    more=("init: true",),
)


def test_a_pull_request_gets_its_plan_and_status_and_its_merge_is_applied(
    forge: Forge,
) -> None:
    """Reviews on (and verify off: Gitea's merge button makes an unsigned merge commit).
    Opening a pull request posts one plan comment and a pending status; a push to its
    branch edits that comment; the merge is applied and gets fleet-reconciler/apply."""
    forge.bootstrap.write_text(forge.spec("later", REVIEWS))  # the operator's file first
    git(forge.work, "checkout", "-q", "main")
    forge.commit("reviews on", forge.spec("reviews-on", REVIEWS))
    forge.push("--force")
    wait_for("reviews on applied", lambda: forge.conf() == "mode = reviews-on", 60)

    git(forge.work, "checkout", "-q", "-b", "change")
    first = forge.commit("from a pr", forge.spec("from-pr", REVIEWS))
    git(forge.work, "push", "-q", forge.url, "change")
    opened = forge.api("POST", "/pulls", json={"head": "change", "base": "main", "title": "t"})
    assert opened.status_code == 201, opened.text
    number = opened.json()["number"]
    wait_for("the pending status", lambda: forge.statuses(first, "fleet-reconciler/plan"), 60)
    assert forge.statuses(first, "fleet-reconciler/plan") == ["pending"]
    [comment] = forge.plan_comments(number)
    assert f"for `{first[:12]}`: pending, 0 to add, 2 to change" in comment, comment
    assert f"Plan for state/fleet.yaml@{first[:12]} (sha256" in comment  # not our tree's path
    assert "mode = from-pr" in comment
    print(f"the plan comment, as posted:\n{comment}")

    squatter = {"Authorization": "token someone-else"}  # the marker, in their own comment
    httpx.post(
        f"{forge.forge}/api/v1/repos/ops/fleet/issues/{number}/comments",
        json={"body": "<!-- fleet-reconciler:plan part 1/1 -->\nLGTM, merge it"},
        headers=squatter,
        timeout=10,
    ).raise_for_status()
    second = forge.commit("again", forge.spec("from-pr-2", REVIEWS))
    said = git(forge.work, "push", forge.url, "change")
    assert "(pull_request synchronized): 202" in said, said
    wait_for("the second review", lambda: forge.statuses(second, "fleet-reconciler/plan"), 60)
    ours, theirs = forge.plan_comments(number)  # ours edited in place; theirs left alone
    assert f"for `{second[:12]}`" in ours and "mode = from-pr-2" in ours
    assert theirs.endswith("LGTM, merge it")
    assert forge.conf() == "mode = reviews-on"  # a review applies nothing

    merged = forge.api("POST", f"/pulls/{number}/merge", json={"Do": "merge"})
    assert merged.status_code == 200, merged.text
    wait_for("the merge applied", lambda: forge.conf() == "mode = from-pr-2", 60)
    merge = forge.api("GET", f"/pulls/{number}").json()["base"]["sha"]
    wait_for("the apply status", lambda: forge.statuses(merge, "fleet-reconciler/apply"), 60)
    assert forge.statuses(merge, "fleet-reconciler/apply") == ["success"]
    git(forge.work, "checkout", "-q", "main")
    git(forge.work, "pull", "-q", forge.url, "main")


def test_a_hostile_pull_request_is_planned_in_public_without_a_secret_or_a_file(
    forge: Forge, tmp_path: Path
) -> None:
    """A pull request names the controller's forge token as a backup password, a
    template that is a link to the controller's /etc/shadow, and /etc/passwd as an
    install source. The comment and the status are public: neither holds the token,
    the webhook secret, nor a line of either file."""
    reviewed = run_reconcile(
        "review", "1", "--no-post", "--state", str(forge.bootstrap),
        "--journal", str(forge.journal_path), env=forge.env,
    )  # fmt: skip
    assert reviewed.returncode == 1 and "not open" in reviewed.stderr  # merged already
    git(forge.work, "checkout", "-q", "-b", "hostile")
    (forge.work / "state" / "templates").mkdir(exist_ok=True)
    (forge.work / "state" / "templates" / "agent.conf").symlink_to("/etc/shadow")
    text = forge.spec("hostile", REVIEWS) + LEAKY_BACKUP
    leaky = forge.commit("leak", text)
    git(forge.work, "push", "-q", forge.url, "hostile")
    opened = forge.api("POST", "/pulls", json={"head": "hostile", "base": "main", "title": "x"})
    number = opened.json()["number"]
    wait_for("the plan status", lambda: forge.statuses(leaky, "fleet-reconciler/plan"), 90)
    assert forge.statuses(leaky, "fleet-reconciler/plan") == ["pending"]
    text = text.replace(
        '{path: /etc/agent/agent.conf, content: "mode = hostile\\n", mode: "0640"}',
        "{path: /etc/agent/agent.conf, template: templates/agent.conf, mode: '0640'}",
    ).replace("source: bin/agent_standin.py", "source: /etc/passwd")
    refused = forge.commit("refused", text)
    git(forge.work, "push", "-q", forge.url, "hostile")
    wait_for("the failure", lambda: forge.statuses(refused, "fleet-reconciler/plan"), 90)
    assert forge.statuses(refused, "fleet-reconciler/plan") == ["failure"]
    [comment] = forge.plan_comments(number)
    assert f"state/fleet.yaml@{refused[:12]}:" in comment, comment
    assert "template templates/agent.conf: not a readable file" in comment  # a link: left out
    assert "not in the commit's tree" in comment
    by_hand = run_reconcile(
        "review", str(number), "--no-post", "--state", str(forge.bootstrap),
        "--journal", str(forge.journal_path), env=forge.env,
    )  # fmt: skip
    assert by_hand.returncode == 1 and "failure, the state file is refused" in by_hand.stdout
    shown = comment + by_hand.stdout + by_hand.stderr + forge.log()
    shown += json.dumps(forge.api("GET", f"/commits/{leaky}/statuses").json())
    for secret in (TOKEN, SECRET):
        assert secret not in shown
    for path in ("/etc/shadow", "/etc/passwd"):
        for line in Path(path).read_text().splitlines():
            assert line not in shown or line == "", (path, line)
    git(forge.work, "checkout", "-q", "main")


FORGE_SECRET = "forge-review-secret-5b7d"


def test_a_fork_and_a_stranger_are_not_planned(forge: Forge) -> None:
    """A fork's pull request and a non-collaborator's get the status error saying why;
    nothing of theirs is fetched or observed."""
    git(forge.work, "checkout", "-q", "main")
    git(forge.work, "pull", "-q", forge.url, "main")
    git(forge.work, "checkout", "-q", "-b", "outside")
    head = forge.commit("from outside", forge.spec("outside", REVIEWS))
    git(forge.work, "push", "-q", forge.url, "outside")
    fork = forge.api("POST", "/pulls", json={"head": "mallory:outside", "base": "main"})
    assert fork.status_code == 201, fork.text
    stranger = httpx.post(
        f"{forge.forge}/api/v1/repos/ops/fleet/pulls",
        json={"head": "outside", "base": "main", "title": "s"},
        headers={"Authorization": "token a-stranger-s-token"},
        timeout=10,
    )
    assert stranger.status_code == 201, stranger.text
    wait_for("both refused", lambda: len(forge.statuses(head, "fleet-reconciler/plan")) >= 2, 60)
    assert forge.statuses(head, "fleet-reconciler/plan") == ["error", "error"]
    [fork_comment] = forge.plan_comments(fork.json()["number"])
    assert "a fork" in fork_comment and "Plan for" not in fork_comment
    [stranger_comment] = forge.plan_comments(stranger.json()["number"])
    assert "cannot write to the repository" in stranger_comment
    assert "Plan for" not in stranger_comment
    mirror = forge.journal_path.parent / "source.git"
    refs = git(mirror, "for-each-ref", "refs/fleet/pull")
    assert refs == "", refs  # nothing of theirs was fetched
    git(forge.work, "checkout", "-q", "main")


def test_a_collaborator_s_pull_request_shows_no_file_the_base_does_not_manage(
    forge: Forge,
) -> None:
    """A writer's pull request adds a service on h1 naming a secret file of the host: the
    comment says a file is there and its size, never a line of it."""
    fleet_lab.ssh(forge.lab, "h1", f"umask 077; echo {FORGE_SECRET} > /root/forge-secret")
    git(forge.work, "checkout", "-q", "main")
    git(forge.work, "checkout", "-q", "-b", "curious")
    stealer = """\
  curious:
    host: h1
    unit: {description: x, exec_start: /bin/true}
    config_files:
      - {path: /root/forge-secret, content: "x\\n"}
"""
    text = forge.spec("reviews-on", REVIEWS).replace("models:\n", stealer + "models:\n", 1)
    head = forge.commit("curious", text)
    git(forge.work, "push", "-q", forge.url, "curious")
    opened = forge.api("POST", "/pulls", json={"head": "curious", "base": "main", "title": "c"})
    number = opened.json()["number"]
    wait_for("the plan status", lambda: forge.statuses(head, "fleet-reconciler/plan"), 90)
    [comment] = forge.plan_comments(number)
    assert f"a file of {len(FORGE_SECRET) + 1} bytes is there (not shown in a review" in comment
    assert FORGE_SECRET not in comment and FORGE_SECRET not in forge.log()
    assert "Review with the authority of state/fleet.yaml@" in comment, comment
    mirror = forge.journal_path.parent / "source.git"
    assert git(mirror, "for-each-ref", "refs/fleet/pull") == ""  # dropped after its review
    assert not (forge.journal_path.parent / "trees" / head).exists()
    fleet_lab.ssh(forge.lab, "h1", "rm -f /root/forge-secret")
    git(forge.work, "checkout", "-q", "main")
