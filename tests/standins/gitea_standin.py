#!/usr/bin/env python3
"""A stand-in for Gitea: the API subset fleet-reconciler uses.

  GET   /api/v1/version
  GET   /api/v1/repos/OWNER/REPO/labels
  GET   /api/v1/repos/OWNER/REPO/issues[?state=open|closed|all][&labels=A,B]
  POST  /api/v1/repos/OWNER/REPO/issues             {title, body, labels: [id]}
  PATCH /api/v1/repos/OWNER/REPO/issues/N           {state}
  GET   /api/v1/repos/OWNER/REPO/issues/N/comments
  POST  /api/v1/repos/OWNER/REPO/issues/N/comments  {body}

Every repository has the labels P0..P3 and `incident` (ids 1-5). Issues and comments
are kept in a JSON file, so tests can read what was posted. Writes need an
`Authorization: token ...` header. Standard library only: it runs as a service binary
on a bare test host.
"""

import argparse
import json
import re
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
REPO = r"^/api/v1/repos/([^/]+)/([^/]+)"
LABELS = re.compile(REPO + r"/labels$")
ISSUES = re.compile(REPO + r"/issues$")
ISSUE = re.compile(REPO + r"/issues/(\d+)$")
COMMENTS = re.compile(REPO + r"/issues/(\d+)/comments$")
KNOWN_LABELS = [
    {"id": i + 1, "name": name} for i, name in enumerate(["P0", "P1", "P2", "P3", "incident"])
]


class Handler(BaseHTTPRequestHandler):
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

    def _load(self) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = (
            json.loads(self.store.read_text()) if self.store.exists() else []
        )
        return issues

    def _save(self, issues: list[dict[str, Any]]) -> None:
        self.store.write_text(json.dumps(issues))

    def _body(self) -> dict[str, Any]:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}"
        body: dict[str, Any] = json.loads(data)
        return body

    def _authorized(self) -> bool:
        if self.headers.get("Authorization", "").startswith("token "):
            return True
        self._json(401, {"message": "token is required"})
        return False

    def _find(self, issues: list[dict[str, Any]], repo: str, number: str) -> dict[str, Any] | None:
        return next((i for i in issues if i["repo"] == repo and i["number"] == int(number)), None)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/api/v1/version":
            return self._json(200, {"version": "1.21.0+standin"})
        if LABELS.match(url.path):
            return self._json(200, KNOWN_LABELS)
        with LOCK:
            issues = self._load()
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
        self._json(404, {"message": "not found"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if not self._authorized():
            return
        body = self._body()
        with LOCK:
            issues = self._load()
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
                comment = {"id": len(found["comments"]) + 1, "body": body.get("body", "")}
                found["comments"].append(comment)
                self._save(issues)
                return self._json(201, comment)
        self._json(404, {"message": "not found"})

    def do_PATCH(self) -> None:
        if not self._authorized():
            return
        match = ISSUE.match(urlsplit(self.path).path)
        if not match:
            return self._json(404, {"message": "not found"})
        body = self._body()
        with LOCK:
            issues = self._load()
            found = self._find(issues, f"{match[1]}/{match[2]}", match[3])
            if found is None:
                return self._json(404, {"message": "issue not found"})
            if body.get("state") in ("open", "closed"):
                found["state"] = body["state"]
            self._save(issues)
        self._json(201, {k: v for k, v in found.items() if k != "comments"})


class Server(ThreadingHTTPServer):
    """HTTPServer.server_bind calls getfqdn(), which waits ~10 s for DNS on a host without it."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--store", default="/var/lib/gitea-standin/issues.json")
    args = parser.parse_args()
    Handler.store = Path(args.store)
    Handler.store.parent.mkdir(parents=True, exist_ok=True)
    Server(("0.0.0.0", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
