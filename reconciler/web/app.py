"""The dashboard: Starlette with Jinja2 templates, live through server-sent events.

Why this stack: Starlette and Jinja2 are small, well kept and typed; the page is
rendered on the server and a 3-line EventSource swaps the live part, so there is no
JavaScript to build or vendor. Read-only: it offers no actions, so it needs no token.
It binds where `--http ADDR` says (loopback in every example). The one thing it takes
is Gitea's signed push webhook (`POST /hooks/gitea`, reconciler.forge.webhook), which
can only make the controller fetch its git source sooner."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import uvicorn
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from reconciler.forge.webhook import Hook
from reconciler.render.charts import short
from reconciler.render.plan_text import MARKS
from reconciler.untrusted.limits import MAX_BODY_BYTES
from reconciler.untrusted.text import shown
from reconciler.web.metrics import FleetCollector, register_process_metrics
from reconciler.web.snapshot import Snapshot, SnapshotCache
from state.load import LoadedFleet

LIVE_EVERY_S = 1.0
READY_REASON_MAX = 1024  # /readyz says why in one line, at most this long
ACTION_OF_MARK = {mark: action for action, mark in MARKS.items()}


def _at(at: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) if at else "-"


def plan_mark(line: str) -> str:
    """The class of one line of a rendered plan, by its mark (`+`, `~`, `-`, `!`)."""
    head = line[2:3]
    return ACTION_OF_MARK.get(head, "") if line.startswith("  ") and head != " " else ""


def plan_summary(snap: Snapshot) -> str:
    """The plan's last line when one is pending, as `--dry-run` ends."""
    if not snap.pending:
        return "In sync: the fleet matches the desired state."
    summary = [line for line in snap.plan_text.splitlines() if line.startswith("Plan: ")]
    return summary[-1] if summary else f"Out of sync: {len(snap.pending)} pending"


def make_app(
    journal_path: Path,
    state_file: Path,
    loaded: Callable[[], LoadedFleet | None],
    registry: CollectorRegistry,
    gitea_hook: Hook | None = None,
    leading: Callable[[], dict[str, bool]] | None = None,
    ready: Callable[[], str | None] | None = None,
    share: Callable[[], LoadedFleet | None] | None = None,
) -> Starlette:
    """The dashboard, its live updates, /metrics, /healthz and /readyz (`ready()`: why
    the loop is not ready, or None), and the webhook. The page, every live client and
    every scrape read one snapshot, taken again once per pass of the loop."""
    templates = Environment(
        loader=PackageLoader("reconciler.web", "templates"), autoescape=select_autoescape()
    )
    templates.globals["at"] = _at
    templates.globals["plan_mark"] = plan_mark
    templates.globals["plan_summary"] = plan_summary
    templates.globals["short"] = short
    snapshots = SnapshotCache(journal_path, state_file, loaded)
    registry.register(FleetCollector(snapshots.current, loaded, leading, share))
    register_process_metrics(registry)

    def fragment() -> str:
        return templates.get_template("fragment.html").render(snap=snapshots.current())

    async def page(_request: Request) -> HTMLResponse:
        body = await run_in_threadpool(fragment)
        html = templates.get_template("page.html").render(fragment=body, state_file=state_file)
        return HTMLResponse(html)

    async def events(request: Request) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            while not await request.is_disconnected():
                body = await run_in_threadpool(fragment)
                yield "".join(f"data: {line}\n" for line in body.splitlines()) + "\n"
                await asyncio.sleep(LIVE_EVERY_S)

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")  # the process answers: alive

    async def readyz(_request: Request) -> Response:
        why = await run_in_threadpool(ready) if ready is not None else None
        if why is None:
            return PlainTextResponse("ready\n")
        # The reason may carry etcd's own words: one escaped, bounded line.
        return PlainTextResponse(f"not ready: {shown(why)[:READY_REASON_MAX]}\n", 503)

    async def metrics(_request: Request) -> Response:
        data = await run_in_threadpool(generate_latest, registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/events", events),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            hook_route(gitea_hook),
        ]
    )


def hook_route(gitea_hook: Hook | None) -> Route:
    """`POST /hooks/gitea`: at most MAX_BODY_BYTES bytes read, then judged by `gitea_hook`
    (404 when there is none here)."""

    async def hook(request: Request) -> Response:
        if gitea_hook is None:
            return Response("no webhook is served here (source.webhook_secret, --hooks)\n", 404)
        body = bytearray()
        async for chunk in request.stream():  # read no more than a delivery may hold
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return Response("too large\n", 413)
        status, line = await run_in_threadpool(
            gitea_hook,
            bytes(body),
            request.headers.get("x-gitea-signature"),
            request.headers.get("x-gitea-delivery"),
            request.headers.get("x-gitea-event"),
        )
        return Response(line + "\n", status)

    return Route("/hooks/gitea", hook, methods=["POST"])


def make_hooks_app(gitea_hook: Hook) -> Starlette:
    """The webhook's own listener (`watch --hooks`): nothing else is served there."""
    return Starlette(routes=[hook_route(gitea_hook)])


def serve_in_background(app: Starlette, address: str, name: str = "dashboard") -> uvicorn.Server:
    """Start serving `app` on HOST:PORT in a daemon thread; `server.should_exit = True` stops it."""
    host, _, port = address.rpartition(":")  # see is_loopback
    config = uvicorn.Config(app, host=host or "127.0.0.1", port=int(port), log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name=name, daemon=True).start()
    return server


def is_loopback(address: str) -> bool:
    """Whether `--http HOST:PORT` serves this machine alone (no host means 127.0.0.1)."""
    host = address.rpartition(":")[0].strip("[]") or "127.0.0.1"
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything
