"""HostSnapshot parsing on output recorded from a real test host."""

from pathlib import Path

from reconciler.ssh.facts import parse_snapshot, snapshot_script
from reconciler.ssh.protocol import UnitState

RECORDED = Path(__file__).parent / "recorded" / "snapshot_kimi.txt"


def test_parse_recorded_snapshot() -> None:
    snap = parse_snapshot(RECORDED.read_text().splitlines())
    assert snap.complete is True
    assert snap.now == 1795827766
    assert snap.units["ssh"].active == "active"
    assert snap.units["ssh"].enabled == "enabled"
    assert snap.units["ssh"].file is None  # vendor unit, not in /etc/systemd/system
    assert snap.units["nope"] == UnitState(
        active="inactive", sub="dead", enabled="not-found", since="", file=None
    )
    conf = snap.files["/etc/ssh/sshd_config.d/fleet-test.conf"]
    assert conf is not None
    assert conf.mode == "0644" and conf.owner == "root" and conf.size == 70
    assert conf.content is not None
    assert conf.content.startswith("PermitRootLogin prohibit-password\n")
    assert snap.files["/missing"] is None
    assert snap.files["/etc/hostname"] is None
    assert snap.packages == {"openssh-server": "installed", "restic": "installed"}


def test_truncated_output_is_incomplete() -> None:
    lines = RECORDED.read_text().splitlines()[:5]
    assert parse_snapshot(lines).complete is False


def test_script_quotes_hostile_paths() -> None:
    script = snapshot_script([], ["/tmp/a;rm -rf /"], [], [])
    assert "'/tmp/a;rm -rf /'" in script


def test_script_is_read_only() -> None:
    script = snapshot_script(["svc"], ["/etc/x"], ["/etc/x"], ["pkg"])
    words = {w for part in script.split(";") for w in part.split()[:1]}
    assert words <= {"echo", "systemctl", "base64", "stat", "[", "dpkg-query"}
    assert "systemctl show" in script and "restart" not in script
