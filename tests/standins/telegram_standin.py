#!/usr/bin/env python3
"""A stand-in for Telegram's Bot API: POST /bot<TOKEN>/sendMessage, as fleet-reconciler
uses it. Messages are kept in a JSON file (and listed by GET /test/messages) so tests
can read what arrived. Faults for tests, by POST /test/mode {"mode": ...}:
`ok`, `down` (503), `slow` (answers after 15 s) and `limit` (429 with retry_after 2).
Standard library only: it runs as a service binary on a bare test host.
"""

import argparse
import json
import re
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LOCK = threading.Lock()
SEND = re.compile(r"^/bot([A-Za-z0-9:_-]+)/sendMessage$")
MODE = {"mode": "ok"}


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

    def _messages(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (
            json.loads(self.store.read_text()) if self.store.exists() else []
        )
        return found

    def do_GET(self) -> None:
        if self.path == "/test/messages":
            with LOCK:
                return self._json(200, self._messages())
        self._json(404, {"ok": False, "description": "Not Found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path == "/test/mode":
            MODE["mode"] = body.get("mode", "ok")
            return self._json(200, MODE)
        match = SEND.match(self.path)
        if not match:
            return self._json(404, {"ok": False, "description": "Not Found"})
        mode = MODE["mode"]
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
            messages = self._messages()
            message = {
                "message_id": len(messages) + 1,
                "chat_id": str(body["chat_id"]),
                "text": body["text"],
                "parse_mode": body.get("parse_mode"),
                "date": time.time(),
            }
            messages.append(message)
            self.store.write_text(json.dumps(messages))
        self._json(200, {"ok": True, "result": message})


class Server(ThreadingHTTPServer):
    """HTTPServer.server_bind calls getfqdn(), which waits ~10 s for DNS on a host without it."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--store", default="/var/lib/telegram-standin/messages.json")
    args = parser.parse_args()
    Handler.store = Path(args.store)
    Handler.store.parent.mkdir(parents=True, exist_ok=True)
    Server(("0.0.0.0", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
