#!/usr/bin/env python3
"""A stand-in for Ollama: the API subset fleet-reconciler uses, and nothing else.

GET /api/tags, POST /api/pull (streamed NDJSON progress), DELETE /api/delete.
Models are recorded in a JSON file so they survive restarts, as Ollama's do.
Standard library only: it runs as a service binary on a bare test host.
"""

import argparse
import hashlib
import json
import socketserver
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    store: Path
    pull_seconds: float

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _models(self) -> dict[str, Any]:
        models: dict[str, Any] = json.loads(self.store.read_text()) if self.store.exists() else {}
        return models

    def _save(self, models: dict[str, Any]) -> None:
        tmp = self.store.with_suffix(".tmp")
        tmp.write_text(json.dumps(models))
        tmp.replace(self.store)

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
        return body

    def do_GET(self) -> None:
        if self.path != "/api/tags":
            return self._json(404, {"error": "not found"})
        with LOCK:
            models = self._models()
        self._json(200, {"models": [dict(m, name=n, model=n) for n, m in sorted(models.items())]})

    def do_DELETE(self) -> None:
        if self.path != "/api/delete":
            return self._json(404, {"error": "not found"})
        name = self._body().get("model") or ""
        with LOCK:
            models = self._models()
            if name not in models:
                return self._json(404, {"error": f"model '{name}' not found"})
            del models[name]
            self._save(models)
        self._json(200, {})

    def do_POST(self) -> None:
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
            models = self._models()
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


class Server(ThreadingHTTPServer):
    """HTTPServer.server_bind calls getfqdn(), which waits ~10 s for DNS on a host without it."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--store", default="/var/lib/ollama-standin/models.json")
    parser.add_argument("--pull-seconds", type=float, default=1.0)
    args = parser.parse_args()
    Handler.store = Path(args.store)
    Handler.store.parent.mkdir(parents=True, exist_ok=True)
    Handler.pull_seconds = args.pull_seconds
    Server(("0.0.0.0", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
