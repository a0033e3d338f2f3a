#!/usr/bin/env python3
"""Stand-ins for the HTTP services a fleet runs and pages through: the API subset that
fleet-reconciler uses of Ollama, Gitea and Telegram's Bot API, and nothing else.

    http_standins.py ollama   [--port 11434] [--store FILE] [--pull-seconds S]
    http_standins.py gitea    [--port 3000]  [--store FILE]
    http_standins.py telegram [--port 8081]  [--store FILE]

Each keeps what it was sent in a JSON file (so restarts keep it, and tests read what
arrived). Standard library only: it is installed as a service binary on a bare test
host, one copy per service, each run with its API's name.

Ollama:
  GET    /api/tags
  POST   /api/pull     {model}   streamed NDJSON progress, --pull-seconds long
  DELETE /api/delete   {model}

Gitea (every repository has the labels P0..P3 and `incident`, ids 1-5; writes need an
`Authorization: token ...` header):
  GET   /api/v1/version
  GET   /api/v1/repos/OWNER/REPO/labels
  GET   /api/v1/repos/OWNER/REPO/issues[?state=open|closed|all][&labels=A,B]
  POST  /api/v1/repos/OWNER/REPO/issues             {title, body, labels: [id]}
  PATCH /api/v1/repos/OWNER/REPO/issues/N           {state}
  GET   /api/v1/repos/OWNER/REPO/issues/N/comments
  POST  /api/v1/repos/OWNER/REPO/issues/N/comments  {body}
  POST  /api/v1/orgs/ORG/repos                      {name}   a bare git repository
  POST  /api/v1/repos/OWNER/REPO/hooks              {type: gitea, config: {url, secret}}
  POST  /api/v1/repos/OWNER/REPO/pulls              {head, base, title}  (an issue too)
  GET   /api/v1/repos/OWNER/REPO/pulls/N
  POST  /api/v1/repos/OWNER/REPO/pulls/N/merge      {Do: merge}  a merge commit, pushed
  GET   /api/v1/user                               the token's user (one per token)
  PUT   /api/v1/repos/OWNER/REPO/collaborators/USER {permission}  (read, write, admin)
  GET   /api/v1/repos/OWNER/REPO/collaborators/USER/permission    {permission}: owner
                                                   for the repository's creator, none
                                                   for a stranger
  A pull request's `head` may be `OTHER:BRANCH`: a fork's (its head.repo is OTHER/REPO;
  the branch is read from the same repository, as the stand-in keeps one).
  PATCH /api/v1/repos/OWNER/REPO/issues/comments/ID {body}   its author alone
  DELETE /api/v1/repos/OWNER/REPO/issues/comments/ID
  POST  /api/v1/repos/OWNER/REPO/statuses/SHA       {state, context, description}
  GET   /api/v1/repos/OWNER/REPO/commits/REF/statuses   newest first
  /OWNER/REPO.git/...   git's smart HTTP, served by git's own `git http-backend`; every
                        request needs an Authorization header (Basic, or `token ...`).
                        A push runs the repository's post-receive hook, which is this
                        file again (`http_standins.py post-receive`): it sends Gitea's
                        push webhook to each hook, signed as Gitea signs it
                        (X-Gitea-Signature: hex HMAC-SHA256 of the body), and a
                        `pull_request` webhook (synchronized) for each open pull
                        request whose head branch moved; `refs/pull/N/head` follows
                        it, as in Gitea. Opening one sends `opened`.

Telegram:
  POST /bot<TOKEN>/sendMessage   {chat_id, text, parse_mode}
  GET  /test/messages            what arrived

Every stand-in:
  POST /test/mode {"mode": ...}  faults for tests, kept across restarts: `ok`;
                                 `garbage` (every answer is 200 with a body that is
                                 not JSON); `drip` (200, then one byte a second, for
                                 at most 120 s). Telegram also has `down` (503),
                                 `slow` (answers after 15 s) and `limit` (429 with
                                 retry_after 2).
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
DRIP_SECONDS = 120


class JsonHandler(BaseHTTPRequestHandler):
    """What every stand-in shares: JSON in and out, and a JSON file as its store."""

    store: Path

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _mode(self) -> str:
        """The fault a test asked for: kept beside the store, so a restart keeps it."""
        found = self.store.with_suffix(".mode")
        return found.read_text().strip() if found.exists() else "ok"

    def _set_mode(self) -> None:
        mode = str(self._body().get("mode", "ok"))
        self.store.with_suffix(".mode").write_text(mode)
        self._json(200, {"mode": mode})

    def _faulted(self) -> bool:
        """Answer with the fault a test asked for, if any (POST /test/mode)."""
        mode = self._mode()
        if mode == "garbage":
            data = b"<html>\x1b[2J 502 from a proxy, not JSON"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return True
        if mode == "drip":
            self.send_response(200)
            self.send_header("Content-Length", str(DRIP_SECONDS))
            self.end_headers()
            for _ in range(DRIP_SECONDS):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1)
            return True
        return False

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
        return body

    def _load(self, empty: Any) -> Any:
        return json.loads(self.store.read_text()) if self.store.exists() else empty

    def _save(self, data: object) -> None:
        tmp = self.store.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.store)


# Ollama ------------------------------------------------------------------------------


class Ollama(JsonHandler):
    pull_seconds = 1.0

    def do_GET(self) -> None:
        if self._faulted():
            return None
        if self.path != "/api/tags":
            return self._json(404, {"error": "not found"})
        with LOCK:
            models = self._load({})
        self._json(200, {"models": [dict(m, name=n, model=n) for n, m in sorted(models.items())]})

    def do_DELETE(self) -> None:
        if self.path != "/api/delete":
            return self._json(404, {"error": "not found"})
        name = self._body().get("model") or ""
        with LOCK:
            models = self._load({})
            if name not in models:
                return self._json(404, {"error": f"model '{name}' not found"})
            del models[name]
            self._save(models)
        self._json(200, {})

    def do_POST(self) -> None:
        if self.path == "/test/mode":
            return self._set_mode()
        if self._faulted():
            return None
        if self.path != "/api/pull":
            return self._json(404, {"error": "not found"})
        body = self._body()
        name = body.get("model") or body.get("name") or ""
        if ":" not in name:
            return self._json(400, {"error": "expected model as name:tag"})
        digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        total = 1_000_000 + len(name) * 1000
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        self._line({"status": "pulling manifest"})
        steps = 10
        for i in range(1, steps + 1):
            time.sleep(self.pull_seconds / steps)
            self._line(
                {
                    "status": f"pulling {digest[7:19]}",
                    "digest": digest,
                    "total": total,
                    "completed": total * i // steps,
                }
            )
        with LOCK:
            models = self._load({})
            models[name] = {
                "size": total,
                "digest": digest,
                "modified_at": datetime.now(UTC).isoformat(),
            }
            self._save(models)
        self._line({"status": "verifying sha256 digest"})
        self._line({"status": "success"})

    def _line(self, obj: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(obj).encode() + b"\n")
        self.wfile.flush()


# Gitea -------------------------------------------------------------------------------

REPO = r"^/api/v1/repos/([^/]+)/([^/]+)"
LABELS = re.compile(REPO + r"/labels$")
ISSUES = re.compile(REPO + r"/issues$")
ISSUE = re.compile(REPO + r"/issues/(\d+)$")
COMMENTS = re.compile(REPO + r"/issues/(\d+)/comments$")
KNOWN_LABELS = [
    {"id": i + 1, "name": name} for i, name in enumerate(["P0", "P1", "P2", "P3", "incident"])
]


GIT = re.compile(
    r"^/([\w.-]+)/([\w.-]+?)(?:\.git)?/(info/refs|HEAD|git-upload-pack|git-receive-pack)$"
)
ORG_REPOS = re.compile(r"^/api/v1/orgs/([\w.-]+)/repos$")
HOOKS = re.compile(REPO + r"/hooks$")
PULLS = re.compile(REPO + r"/pulls$")
PULL = re.compile(REPO + r"/pulls/(\d+)$")
MERGE = re.compile(REPO + r"/pulls/(\d+)/merge$")
COMMENT = re.compile(REPO + r"/issues/comments/(\d+)$")
COLLABORATOR = re.compile(REPO + r"/collaborators/([\w.-]+)$")
PERMISSION = re.compile(REPO + r"/collaborators/([\w.-]+)/permission$")
STATUSES = re.compile(REPO + r"/statuses/([0-9a-f]{40})$")
COMMIT_STATUSES = re.compile(REPO + r"/commits/([\w./-]+)/statuses$")
NO_COMMIT = "0" * 40


class Gitea(JsonHandler):
    def _repos(self) -> Path:
        return self.store.parent / "repos"

    def _git(self, owner: str, name: str, rest: str, query: str) -> None:
        """One smart-HTTP request, answered by `git http-backend` (a CGI program)."""
        if not self.headers.get("Authorization"):  # every repository here is private
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="Gitea"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not (self._repos() / owner / f"{name}.git").is_dir():
            return self._json(404, {"message": "repository not found"})
        body = self._raw_body()
        env = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": str(self._repos()),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{owner}/{name}.git/{rest}",
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_USER": "standin",  # enables receive-pack, as a signed-in Gitea user
            "REMOTE_ADDR": self.client_address[0],
        }
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        sys.stderr.buffer.write(done.stderr)
        ends = [
            (i, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := done.stdout.find(sep)) >= 0
        ]
        end, gap = min(ends, default=(len(done.stdout), 0))
        head, payload = done.stdout[:end], done.stdout[end + gap :]
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _raw_body(self) -> bytes:
        """The request body, with chunked transfer-encoding undone (git sends large
        pushes chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def _create_repo(self, org: str, body: dict[str, Any]) -> None:
        name = str(body.get("name", ""))
        if not re.fullmatch(r"[\w.-]+", name) or name.startswith("."):
            return self._json(422, {"message": "name is invalid"})
        repo = self._repos() / org / f"{name}.git"
        if repo.exists():
            return self._json(409, {"message": "repository already exists"})
        branch = str(body.get("default_branch") or "main")
        subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(repo)], check=True)
        hook = repo / "hooks" / "post-receive"
        hook.write_text(
            f"#!/bin/sh\nexec /usr/bin/python3 {Path(__file__).resolve()} post-receive\n"
        )
        hook.chmod(0o755)
        (repo / "webhooks.json").write_text("[]")
        (repo / "collaborators.json").write_text(json.dumps({self._login(): "owner"}))
        (repo / "standin.json").write_text(json.dumps({"store": str(self.store.resolve())}))
        self._json(201, _repo_json(org, name, branch, self.headers.get("Host", "")))

    def _add_hook(self, owner: str, name: str, body: dict[str, Any]) -> None:
        repo = self._repos() / owner / f"{name}.git"
        if not repo.is_dir():
            return self._json(404, {"message": "repository not found"})
        config = body.get("config") or {}
        if not str(config.get("url", "")).startswith(("http://", "https://")):
            return self._json(422, {"message": "config.url is required"})
        hooks = json.loads((repo / "webhooks.json").read_text())
        hook = {
            "id": len(hooks) + 1,
            "type": body.get("type", "gitea"),
            "config": {"url": config["url"], "content_type": "json"},
            "secret": str(config.get("secret", "")),
            "events": body.get("events") or ["push"],
            "active": bool(body.get("active", True)),
        }
        (repo / "webhooks.json").write_text(json.dumps([*hooks, hook]))
        self._json(201, {k: v for k, v in hook.items() if k != "secret"})

    def _add_status(self, owner: str, name: str, sha: str, body: dict[str, Any]) -> None:
        repo = self._repos() / owner / f"{name}.git"
        if not repo.is_dir():
            return self._json(404, {"message": "repository not found"})
        if body.get("state") not in ("pending", "success", "error", "failure", "warning"):
            return self._json(422, {"message": "state is invalid"})
        path = repo / "statuses.json"
        with LOCK:
            statuses = json.loads(path.read_text()) if path.exists() else []
            status = {
                "id": len(statuses) + 1,
                "sha": sha,
                "status": body["state"],
                "context": str(body.get("context", "default")),
                "description": str(body.get("description", "")),
                "target_url": str(body.get("target_url", "")),
                "created_at": datetime.now(UTC).isoformat(),
            }
            path.write_text(json.dumps([*statuses, status]))
        self._json(201, status)

    def _open_pull(self, owner: str, name: str, body: dict[str, Any]) -> None:
        repo = self._repos() / owner / f"{name}.git"
        head, base = str(body.get("head", "")), str(body.get("base", "main"))
        fork, _, branch = head.rpartition(":")
        head = branch
        sha = _rev_parse(repo, f"refs/heads/{head}") if repo.is_dir() else None
        if sha is None:
            return self._json(422, {"message": "head branch not found"})
        with LOCK:
            issues = self._load([])
            pull = {
                "number": len(issues) + 1,
                "repo": f"{owner}/{name}",
                "title": str(body.get("title", head)),
                "body": str(body.get("body", "")),
                "state": "open",
                "labels": [],
                "comments": [],
                "pull": {"head": head, "base": base, "merged": False, "fork": fork or None},
                "user": {"login": self._login(), "username": self._login()},
            }
            issues.append(pull)
            self._save(issues)
        subprocess.run(
            ["git", "-C", str(repo), "update-ref", f"refs/pull/{pull['number']}/head", sha],
            check=True,
        )
        answer = _pull_json(self._repos(), pull)
        _send_pull_hooks(repo, "opened", answer)
        self._json(201, answer)

    def _merge(self, owner: str, name: str, number: int) -> None:
        """The merge button: a merge commit of the head into the base, pushed to the
        repository (so its hooks run, as after any push)."""
        repo = self._repos() / owner / f"{name}.git"
        with LOCK:
            issues = self._load([])
            pull = self._find(issues, f"{owner}/{name}", str(number))
        if pull is None or "pull" not in pull or pull["state"] != "open":
            return self._json(404, {"message": "no open pull request"})
        work = repo.parent / f".merge-{number}"
        shutil.rmtree(work, ignore_errors=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(repo.parent), "GIT_AUTHOR_NAME": "standin",
               "GIT_AUTHOR_EMAIL": "standin@example.invalid", "GIT_COMMITTER_NAME": "standin",
               "GIT_COMMITTER_EMAIL": "standin@example.invalid"}  # fmt: skip
        base, head = pull["pull"]["base"], pull["pull"]["head"]
        steps = [
            ["git", "clone", "-q", "-b", base, str(repo), str(work)],
            ["git", "-C", str(work), "merge", "-q", "--no-ff", "-m", f"Merge pull request #{number}", f"origin/{head}"],
            ["git", "-C", str(work), "push", "-q", "origin", base],
        ]  # fmt: skip
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                shutil.rmtree(work, ignore_errors=True)
                return self._json(409, {"message": f"merge failed: {done.stderr[-300:]}"})
        shutil.rmtree(work, ignore_errors=True)
        with LOCK:
            issues = self._load([])
            found = self._find(issues, f"{owner}/{name}", str(number))
            assert found is not None
            found["state"], found["pull"]["merged"] = "closed", True
            self._save(issues)
        self._json(200, {"merged": True})

    def _login(self) -> str:
        """Who the token is: one user per token, as in Gitea."""
        token = self.headers.get("Authorization", "").removeprefix("token ")
        return "user-" + hashlib.sha256(token.encode()).hexdigest()[:8]

    def _authorized(self) -> bool:
        if self.headers.get("Authorization", "").startswith("token "):
            return True
        self._json(401, {"message": "token is required"})
        return False

    def _find(self, issues: list[dict[str, Any]], repo: str, number: str) -> dict[str, Any] | None:
        return next((i for i in issues if i["repo"] == repo and i["number"] == int(number)), None)

    def do_GET(self) -> None:
        if self._faulted():
            return None
        url = urlsplit(self.path)
        if match := GIT.match(url.path):
            return self._git(match[1], match[2], match[3], url.query)
        if url.path == "/api/v1/version":
            return self._json(200, {"version": "1.21.0+standin"})
        if url.path == "/api/v1/user":
            if not self._authorized():
                return None
            return self._json(200, {"id": 1, "login": self._login(), "username": self._login()})
        if LABELS.match(url.path):
            return self._json(200, KNOWN_LABELS)
        if match := PERMISSION.match(url.path):
            if not self._authorized():
                return None
            kept = self._repos() / match[1] / f"{match[2]}.git" / "collaborators.json"
            if not kept.exists():
                return self._json(404, {"message": "repository not found"})
            permission = json.loads(kept.read_text()).get(match[3], "none")
            return self._json(200, {"permission": permission, "role_name": permission})
        with LOCK:
            issues = self._load([])
        if match := ISSUES.match(url.path):
            query = parse_qs(url.query)
            state = query.get("state", ["open"])[0]
            repo = f"{match[1]}/{match[2]}"
            # As Gitea: label names unknown to the repository are ignored; an issue
            # must carry every known one asked for.
            asked = {x for x in query.get("labels", [""])[0].split(",") if x}
            wanted = asked & {x["name"] for x in KNOWN_LABELS}
            found = [
                {k: v for k, v in i.items() if k != "comments"}
                for i in issues
                if i["repo"] == repo
                and state in ("all", i["state"])
                and wanted <= {x["name"] for x in i["labels"]}
            ]
            return self._json(200, found)
        if match := COMMENTS.match(url.path):
            issue = self._find(issues, f"{match[1]}/{match[2]}", match[3])
            if issue is None:
                return self._json(404, {"message": "issue not found"})
            return self._json(200, issue["comments"])
        if match := PULL.match(url.path):
            pull = self._find(issues, f"{match[1]}/{match[2]}", match[3])
            if pull is None or "pull" not in pull:
                return self._json(404, {"message": "pull request not found"})
            return self._json(200, _pull_json(self._repos(), pull))
        if match := COMMIT_STATUSES.match(url.path):
            bare = self._repos() / match[1] / f"{match[2]}.git"
            sha = _rev_parse(bare, match[3]) if bare.is_dir() else None
            kept = bare / "statuses.json"
            statuses = json.loads(kept.read_text()) if sha and kept.exists() else []
            return self._json(200, [x for x in reversed(statuses) if x["sha"] == sha])
        self._json(404, {"message": "not found"})

    def do_POST(self) -> None:
        if self.path == "/test/mode":
            return self._set_mode()
        if self._faulted():
            return None
        url = urlsplit(self.path)
        if match := GIT.match(url.path):
            return self._git(match[1], match[2], match[3], url.query)
        if not self._authorized():
            return
        body = self._body()
        if match := ORG_REPOS.match(url.path):
            return self._create_repo(match[1], body)
        if match := HOOKS.match(url.path):
            return self._add_hook(match[1], match[2], body)
        if match := STATUSES.match(url.path):
            return self._add_status(match[1], match[2], match[3], body)
        if match := PULLS.match(url.path):
            return self._open_pull(match[1], match[2], body)
        if match := MERGE.match(url.path):
            return self._merge(match[1], match[2], int(match[3]))
        with LOCK:
            issues = self._load([])
            if match := ISSUES.match(url.path):
                if not body.get("title"):
                    return self._json(422, {"message": "title is required"})
                issue = {
                    "number": len(issues) + 1,
                    "repo": f"{match[1]}/{match[2]}",
                    "title": body["title"],
                    "body": body.get("body", ""),
                    "state": "open",
                    "labels": [x for x in KNOWN_LABELS if x["id"] in body.get("labels", [])],
                    "comments": [],
                }
                issues.append(issue)
                self._save(issues)
                return self._json(201, {k: v for k, v in issue.items() if k != "comments"})
            if match := COMMENTS.match(url.path):
                found = self._find(issues, f"{match[1]}/{match[2]}", match[3])
                if found is None:
                    return self._json(404, {"message": "issue not found"})
                ids = [c["id"] for i in issues for c in i["comments"]]  # global, as in Gitea
                comment = {
                    "id": max(ids, default=0) + 1,
                    "body": body.get("body", ""),
                    "user": {"login": self._login()},
                }
                found["comments"].append(comment)
                self._save(issues)
                return self._json(201, comment)
        self._json(404, {"message": "not found"})

    def _comment(
        self, issues: list[dict[str, Any]], repo: str, id: int
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        for issue in issues:
            for comment in issue["comments"] if issue["repo"] == repo else []:
                if comment["id"] == id:
                    return issue, comment
        return None

    def do_DELETE(self) -> None:
        if self._faulted() or not self._authorized():
            return
        match = COMMENT.match(urlsplit(self.path).path)
        if not match:
            return self._json(404, {"message": "not found"})
        with LOCK:
            issues = self._load([])
            found = self._comment(issues, f"{match[1]}/{match[2]}", int(match[3]))
            if found is None:
                return self._json(404, {"message": "comment not found"})
            found[0]["comments"].remove(found[1])
            self._save(issues)
        self.send_response(204)
        self.end_headers()

    def do_PUT(self) -> None:
        if self._faulted():
            return None
        url = urlsplit(self.path)
        if not self._authorized():
            return None
        match = COLLABORATOR.match(url.path)
        kept = (
            self._repos() / match[1] / f"{match[2]}.git" / "collaborators.json" if match else None
        )
        if match is None or kept is None or not kept.exists():
            return self._json(404, {"message": "not found"})
        with LOCK:
            found = json.loads(kept.read_text())
            if found.get(self._login()) not in ("owner", "admin"):
                return self._json(403, {"message": "only an admin adds collaborators"})
            found[match[3]] = str(self._body().get("permission", "write"))
            kept.write_text(json.dumps(found))
        self.send_response(204)
        self.end_headers()
        return None

    def do_PATCH(self) -> None:
        if self._faulted() or not self._authorized():
            return
        if comment := COMMENT.match(urlsplit(self.path).path):
            body = self._body()
            with LOCK:
                issues = self._load([])
                hit = self._comment(issues, f"{comment[1]}/{comment[2]}", int(comment[3]))
                if hit is None:
                    return self._json(404, {"message": "comment not found"})
                if hit[1].get("user", {}).get("login") != self._login():
                    return self._json(403, {"message": "not the comment's author"})
                hit[1]["body"] = str(body.get("body", ""))
                self._save(issues)
            return self._json(200, hit[1])
        match = ISSUE.match(urlsplit(self.path).path)
        if not match:
            return self._json(404, {"message": "not found"})
        body = self._body()
        with LOCK:
            issues = self._load([])
            found = self._find(issues, f"{match[1]}/{match[2]}", match[3])
            if found is None:
                return self._json(404, {"message": "issue not found"})
            if body.get("state") in ("open", "closed"):
                found["state"] = body["state"]
            self._save(issues)
        self._json(201, {k: v for k, v in found.items() if k != "comments"})


def _repo_json(owner: str, name: str, branch: str, host: str) -> dict[str, Any]:
    return {
        "id": int(hashlib.sha256(f"{owner}/{name}".encode()).hexdigest()[:6], 16),
        "name": name,
        "full_name": f"{owner}/{name}",
        "owner": {"login": owner, "username": owner},
        "clone_url": f"http://{host}/{owner}/{name}.git",
        "default_branch": branch,
        "private": True,
    }


def _rev_parse(repo: Path, ref: str) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _pull_json(repos: Path, pull: dict[str, Any]) -> dict[str, Any]:
    owner, name = pull["repo"].split("/")
    repo = repos / owner / f"{name}.git"
    head, base = pull["pull"]["head"], pull["pull"]["base"]
    sha = _rev_parse(repo, f"refs/pull/{pull['number']}/head")
    fork = pull["pull"].get("fork")
    head_repo = _repo_json(fork or owner, name, head, "localhost:3000")
    base_repo = _repo_json(owner, name, base, "localhost:3000")
    return {
        "id": pull["number"],
        "number": pull["number"],
        "title": pull["title"],
        "state": pull["state"],
        "merged": pull["pull"]["merged"],
        "user": pull.get("user") or {"login": "standin"},
        "head": {
            "ref": head,
            "sha": sha,
            "label": head,
            "repo_id": head_repo["id"],
            "repo": head_repo,
        },
        "base": {
            "ref": base,
            "sha": _rev_parse(repo, f"refs/heads/{base}"),
            "label": base,
            "repo_id": base_repo["id"],
            "repo": base_repo,
        },
        "html_url": f"/{owner}/{name}/pulls/{pull['number']}",
    }


def _send_pull_hooks(repo: Path, action: str, pull: dict[str, Any]) -> None:
    owner, name = repo.parent.name, repo.name.removesuffix(".git")
    sender = {"id": 1, "login": "standin", "username": "standin"}
    body = json.dumps(
        {
            "action": action,
            "number": pull["number"],
            "pull_request": pull,
            "repository": _repo_json(owner, name, "main", "localhost:3000"),
            "sender": sender,
        }
    ).encode()
    for hook in json.loads((repo / "webhooks.json").read_text()):
        if hook["active"] and "pull_request" in hook["events"]:
            print(
                f"webhook {hook['id']} (pull_request {action}): {_deliver(hook, 'pull_request', body)}"
            )


def _synchronize_pulls(repo: Path, ref: str) -> None:
    """A pushed branch that heads open pull requests: their refs/pull/N/head follow it,
    and each sends `synchronized`."""
    store = Path(json.loads((repo / "standin.json").read_text())["store"])
    issues = json.loads(store.read_text()) if store.exists() else []
    full = f"{repo.parent.name}/{repo.name.removesuffix('.git')}"
    for pull in issues:
        if pull["repo"] != full or "pull" not in pull or pull["state"] != "open":
            continue
        if ref != f"refs/heads/{pull['pull']['head']}":
            continue
        sha = _rev_parse(repo, ref)
        if sha is None:
            continue
        subprocess.run(
            ["git", "-C", str(repo), "update-ref", f"refs/pull/{pull['number']}/head", sha],
            check=True,
        )
        _send_pull_hooks(repo, "synchronized", _pull_json(repo.parent.parent, pull))


def post_receive() -> None:
    """The repository's post-receive hook: Gitea's push webhook for each pushed ref, to
    every hook of the repository, signed with its secret. Run by git in the repository
    (GIT_DIR), with `OLD NEW REF` lines on stdin; what each delivery got is printed, so
    the pusher sees it as `remote:` lines."""
    repo = Path(os.environ.get("GIT_DIR", ".")).resolve()
    owner, name = repo.parent.name, repo.name.removesuffix(".git")
    hooks = json.loads((repo / "webhooks.json").read_text())
    for line in sys.stdin:
        before, after, ref = line.split()
        body = json.dumps(_push_payload(repo, owner, name, before, after, ref)).encode()
        for hook in hooks:
            if hook["active"] and "push" in hook["events"]:
                print(f"webhook {hook['id']}: {_deliver(hook, 'push', body)}")
        _synchronize_pulls(repo, ref)


def _push_payload(
    repo: Path, owner: str, name: str, before: str, after: str, ref: str
) -> dict[str, Any]:
    commits = []
    if after != NO_COMMIT:
        span = after if before == NO_COMMIT else f"{before}..{after}"
        log = subprocess.run(
            ["git", "log", "-z", "--format=%H%x1f%s%x1f%an%x1f%ae%x1f%cI", span],
            cwd=repo,
            capture_output=True,
            text=True,
        ).stdout
        for entry in filter(None, log.split("\0")):
            sha, message, author, email, when = entry.split("\x1f")
            who = {"name": author, "email": email, "username": author}
            commits.append(
                {"id": sha, "message": message + "\n", "author": who, "committer": who,
                 "timestamp": when, "added": [], "removed": [], "modified": []}
            )  # fmt: skip
    sender = {"id": 1, "login": "standin", "username": "standin"}
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "compare_url": "",
        "commits": commits,
        "total_commits": len(commits),
        "head_commit": commits[0] if commits else None,
        "repository": _repo_json(owner, name, "main", "localhost:3000"),
        "pusher": sender,
        "sender": sender,
    }


def _deliver(hook: dict[str, Any], event: str, body: bytes) -> str:
    """One delivery with Gitea's headers; its HTTP status, or why there is none."""
    secret = hook["secret"].encode()
    sha256 = hmac.new(secret, body, hashlib.sha256).hexdigest()
    sha1 = hmac.new(secret, body, hashlib.sha1).hexdigest()
    delivery = str(uuid.uuid4())
    request = urllib.request.Request(
        hook["config"]["url"],
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Go-http-client/1.1",
            "X-Gitea-Delivery": delivery,
            "X-Gitea-Event": event,
            "X-Gitea-Event-Type": event,
            "X-Gitea-Signature": sha256,
            "X-Gogs-Delivery": delivery,
            "X-Gogs-Event": event,
            "X-Gogs-Signature": sha256,
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Event": event,
            "X-Hub-Signature": f"sha1={sha1}",
            "X-Hub-Signature-256": f"sha256={sha256}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return str(answer.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except OSError as exc:
        return f"not delivered: {exc}"


# Telegram ----------------------------------------------------------------------------

SEND = re.compile(r"^/bot([A-Za-z0-9:_-]+)/sendMessage$")


class Telegram(JsonHandler):
    def do_GET(self) -> None:
        if self.path == "/test/messages":
            with LOCK:
                return self._json(200, self._load([]))
        self._json(404, {"ok": False, "description": "Not Found"})

    def do_POST(self) -> None:
        if self.path == "/test/mode":
            return self._set_mode()
        if self._faulted():
            return None
        body = self._body()
        match = SEND.match(self.path)
        if not match:
            return self._json(404, {"ok": False, "description": "Not Found"})
        mode = self._mode()
        if mode == "down":
            return self._json(503, {"ok": False, "description": "Service Unavailable"})
        if mode == "limit":
            return self._json(
                429,
                {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests",
                    "parameters": {"retry_after": 2},
                },
            )
        if mode == "slow":
            time.sleep(15)
        if not body.get("chat_id") or not body.get("text"):
            return self._json(400, {"ok": False, "description": "Bad Request: text is empty"})
        with LOCK:
            messages = self._load([])
            message = {
                "message_id": len(messages) + 1,
                "chat_id": str(body["chat_id"]),
                "text": body["text"],
                "parse_mode": body.get("parse_mode"),
                "date": time.time(),
            }
            messages.append(message)
            self._save(messages)
        self._json(200, {"ok": True, "result": message})


# The server --------------------------------------------------------------------------

APIS: dict[str, tuple[type[JsonHandler], int, str]] = {
    "ollama": (Ollama, 11434, "/var/lib/ollama-standin/models.json"),
    "gitea": (Gitea, 3000, "/var/lib/gitea-standin/issues.json"),
    "telegram": (Telegram, 8081, "/var/lib/telegram-standin/messages.json"),
}


class Server(ThreadingHTTPServer):
    """HTTPServer.server_bind calls getfqdn(), which waits ~10 s for DNS on a host without it."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]


def main() -> None:
    if sys.argv[1:2] == ["post-receive"]:
        return post_receive()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("api", choices=sorted(APIS))
    parser.add_argument("--port", type=int, help="default: the real service's port")
    parser.add_argument("--store", help="the JSON file it keeps what it was sent in")
    parser.add_argument("--pull-seconds", type=float, default=1.0, help="ollama: a pull's time")
    args = parser.parse_args()
    handler, port, store = APIS[args.api]
    handler.store = Path(args.store or store)
    handler.store.parent.mkdir(parents=True, exist_ok=True)
    Ollama.pull_seconds = args.pull_seconds
    Server(("0.0.0.0", args.port or port), handler).serve_forever()


if __name__ == "__main__":
    main()
