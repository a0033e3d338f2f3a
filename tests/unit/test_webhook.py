"""Gitea's webhook: only an exact HMAC-SHA256 of the body under the secret triggers a
fetch, once per delivery; the payload itself is never believed."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from types import SimpleNamespace

import pytest

from reconciler.forge.webhook import Deliveries, judge, signature_ok
from reconciler.untrusted.limits import MAX_BODY_BYTES as MAX_BODY

SECRET = b"test-only-webhook-secret"
BODY = b'{"ref": "refs/heads/main", "after": "' + b"a" * 40 + b'"}'


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_only_the_exact_signature_is_believed() -> None:
    assert signature_ok(SECRET, BODY, sign(BODY))
    assert signature_ok(SECRET, BODY, sign(BODY).upper())  # hex is hex
    assert not signature_ok(SECRET, BODY + b" ", sign(BODY))  # one byte more
    assert not signature_ok(SECRET, BODY, sign(BODY, b"another secret"))
    assert not signature_ok(SECRET, BODY, "sha256=" + sign(BODY))  # GitHub's form, not Gitea's
    assert not signature_ok(SECRET, BODY, "")
    assert not signature_ok(b"", BODY, sign(BODY, b""))  # no secret: nothing is believed


def test_a_body_triggers_one_fetch_and_bad_ones_none() -> None:
    now = [0.0]
    seen = Deliveries(memory=2, window=60.0, clock=lambda: now[0])
    other = BODY.replace(b"a", b"b")

    def secret() -> bytes:
        return SECRET

    assert judge(secret, BODY, sign(BODY), seen) == "fetch"
    assert judge(secret, BODY, sign(BODY), seen) == "duplicate"  # a replay, whatever its ID
    assert judge(secret, other, None, seen) == "unsigned"
    assert judge(secret, other, sign(b"forged"), seen) == "bad signature"
    assert judge(secret, other, sign(other), seen) == "fetch"  # never believed before
    big = b"x" * (MAX_BODY + 1)
    assert judge(secret, big, sign(big), seen) == "too large"
    now[0] = 61.0  # past the window, the same body is a new delivery
    assert judge(secret, BODY, sign(BODY), seen) == "fetch"


def test_the_secret_is_resolved_only_for_a_signed_delivery() -> None:
    """An unsigned or oversized body never costs a secret's resolution (an age process)."""
    asked: list[bool] = []

    def secret() -> bytes:
        asked.append(True)
        return SECRET

    seen = Deliveries()
    assert judge(secret, BODY, None, seen) == "unsigned"
    assert judge(secret, BODY, "", seen) == "unsigned"
    assert judge(secret, b"x" * (MAX_BODY + 1), sign(BODY), seen) == "too large"
    assert asked == []
    assert judge(secret, BODY, sign(BODY), seen) == "fetch"
    assert asked == [True]


def test_the_endpoint_fetches_on_a_signed_delivery_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`POST /hooks/gitea` through the real app, headers as Gitea sends them."""
    from prometheus_client import CollectorRegistry
    from starlette.testclient import TestClient

    from reconciler.daemon.assembly import loop_hook as _gitea_hook
    from reconciler.store.journal import Journal
    from reconciler.web.app import make_app
    from state.spec.source import GitSource

    monkeypatch.setenv("FLEET_TEST_WEBHOOK", SECRET.decode())
    reloads: list[bool] = []
    source = GitSource(url="file:///srv/fleet.git", webhook_secret="env:FLEET_TEST_WEBHOOK")
    loop = SimpleNamespace(
        spec=SimpleNamespace(source=source), request_reload=lambda: reloads.append(True)
    )
    Journal(tmp_path / "journal.db").close()
    app = make_app(
        tmp_path / "journal.db",
        tmp_path / "state.yaml",
        lambda: None,
        CollectorRegistry(),
        _gitea_hook(loop),  # type: ignore[arg-type]
    )
    client = TestClient(app)

    def deliver(body: bytes, signature: str | None, delivery: str) -> tuple[int, str]:
        headers = {"X-Gitea-Delivery": delivery, "X-Gitea-Event": "push"}
        if signature is not None:
            headers["X-Gitea-Signature"] = signature
        answer = client.post("/hooks/gitea", content=body, headers=headers)
        return answer.status_code, answer.text.strip()

    assert deliver(BODY, sign(b"forged"), "a") == (401, "bad signature")
    assert deliver(BODY, None, "b") == (401, "unsigned")
    assert reloads == []
    assert deliver(BODY, sign(BODY), "c") == (202, "fetching")
    assert deliver(BODY, sign(BODY), "c") == (200, "this body was delivered already")
    assert deliver(BODY, sign(BODY), "new-id") == (200, "this body was delivered already")
    assert reloads == [True]
    big = b"x" * (MAX_BODY + 1)
    assert deliver(big, sign(big), "d")[0] == 413
    assert client.get("/hooks/gitea").status_code == 405
    loop.spec.source = GitSource(url="file:///srv/fleet.git")  # no secret: nothing believed
    assert deliver(BODY, sign(BODY), "e")[0] == 404
    assert reloads == [True]


def test_the_hooks_listener_serves_the_webhook_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """`watch --hooks ADDR`: the forge reaches the webhook there, and nothing else (the
    dashboard and /metrics stay on --http, which can stay on loopback)."""
    import os

    from starlette.testclient import TestClient

    from reconciler.forge.webhook import gitea_hook
    from reconciler.web.app import make_hooks_app
    from state.spec.source import GitSource

    os.environ["FLEET_TEST_HOOKS_SECRET"] = SECRET.decode()
    fetched: list[bool] = []
    source = GitSource(url="file:///srv/fleet.git", webhook_secret="env:FLEET_TEST_HOOKS_SECRET")
    client = TestClient(make_hooks_app(gitea_hook(lambda: source, lambda: fetched.append(True))))
    for path in ("/", "/events", "/metrics"):
        assert client.get(path).status_code == 404
    headers = {"X-Gitea-Signature": sign(BODY), "X-Gitea-Event": "push"}
    assert client.post("/hooks/gitea", content=BODY, headers=headers).status_code == 202
    assert fetched == [True]
