#!/usr/bin/env python3
"""A stand-in for Gitea: GET /api/v1/version and POST /api/v1/repos/OWNER/REPO/issues.

Issues are recorded in a JSON file and listed by GET on the same path, so tests can
see what was posted. Requests that create issues need an `Authorization: token ...`
header. Standard library only: it runs as a service binary on a bare test host.
"""

import argparse
import json
import re
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LOCK = threading.Lock()
ISSUES = re.compile(r"^/api/v1/repos/([^/]+)/([^/]+)/issues$")


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

    def _issues(self) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = (
            json.loads(self.store.read_text()) if self.store.exists() else []
        )
        return issues

    def do_GET(self) -> None:
        if self.path == "/api/v1/version":
            return self._json(200, {"version": "1.21.0+standin"})
        match = ISSUES.match(self.path)
        if not match:
            return self._json(404, {"message": "not found"})
        with LOCK:
            issues = [i for i in self._issues() if i["repo"] == f"{match[1]}/{match[2]}"]
        self._json(200, issues)

    def do_POST(self) -> None:
        match = ISSUES.match(self.path)
        if not match:
            return self._json(404, {"message": "not found"})
        if not self.headers.get("Authorization", "").startswith("token "):
            return self._json(401, {"message": "token is required"})
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not body.get("title"):
            return self._json(422, {"message": "title is required"})
        with LOCK:
            issues = self._issues()
            issue = {
                "number": len(issues) + 1,
                "repo": f"{match[1]}/{match[2]}",
                "title": body["title"],
                "body": body.get("body", ""),
                "state": "open",
            }
            issues.append(issue)
            self.store.write_text(json.dumps(issues))
        self._json(201, issue)


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
