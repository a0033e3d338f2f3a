"""Faults in the middle of a run on real hosts: a link cut during a deploy to two hosts."""

from __future__ import annotations

import contextlib
import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from reconciler.store.journal import Journal
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec, start_reconcile


@contextlib.contextmanager
def trickling_server(address: str) -> Iterator[str]:
    """An HTTP server on the lab's gateway that sends one byte a second: a download from
    it keeps a command running on the host for as long as the test needs."""

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "120")
            self.end_headers()
            for _ in range(120):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((address, 0), Trickle)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}/bulky"
    finally:
        server.shutdown()
        server.server_close()


def test_a_link_cut_mid_deploy_fails_that_host_alone_and_soon(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    spec, journal_path = tmp_path / "fleet.yaml", tmp_path / "journal.db"
    with trickling_server(lab.gateway) as url:
        # h1 downloads a file that takes two minutes to arrive; h2 converges as usual.
        text = lab_spec(lab).replace(
            "models:\n",
            "  bulky:\n    host: h1\n    install: {kind: file, source: "
            f"'{url}', sha256: '{'0' * 64}', dest: /usr/local/bin/bulky}}\n"
            "models:\n",
        )
        spec.write_text(text)
        started = time.monotonic()
        proc = start_reconcile(str(spec), "--yes", "--journal", str(journal_path), capture=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "curl" not in fleet_lab.ssh(
            lab, "h1", "ps ax", check=False
        ):
            time.sleep(0.2)
        fleet_lab.cut_link(lab, "h1")  # while h1 is mid-command
        try:
            out, err = proc.communicate(timeout=200)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        finally:
            fleet_lab.restore_link(lab, "h1")
    took = time.monotonic() - started
    assert "host h2: ok" in out, out + err
    assert "host h1: FAILED" in out
    assert proc.returncode == 1
    assert took < 120, f"the cut host held the whole run for {took:.0f}s"
    journal = Journal(journal_path)
    [run] = journal.runs(1)
    h2 = [r for r in journal.results(run.id) if r[0] == "h2"]
    journal.close()
    assert run.outcome == "failed"
    assert any(status == "changed" for _, _, _, status, _ in h2)  # h2's results were kept
    assert fleet_lab.ssh(lab, "h2", "systemctl is-active ollama").strip() == "active"
