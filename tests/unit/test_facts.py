"""HostSnapshot parsing on output recorded from a real test host."""

import base64
from pathlib import Path

from reconciler.hosts.facts import parse_snapshot, snapshot_script
from reconciler.hosts.protocol import UnitState
from reconciler.untrusted.limits import MAX_CONTENT_BYTES

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
    assert words <= {"echo", "systemctl", "base64", "stat", "[", "dpkg-query", "if", "then"} | {
        "find",
        "else",
        "fi",
    }
    assert "systemctl show" in script and "restart" not in script


def test_contents_are_read_at_most_the_bound() -> None:
    script = snapshot_script(["svc"], ["/etc/x"], ["/etc/x"], [])
    assert script.count(f"-le {MAX_CONTENT_BYTES} ]") == 2  # the unit file and /etc/x


def test_a_unit_file_too_large_is_reported_cut_not_read() -> None:
    lines = [
        "@now 1",
        "@unit svc",
        "ActiveState=active",
        "@unitfile svc",
        "!cut 20971520 ab12",
        "@end",
    ]
    unit = parse_snapshot(lines).units["svc"]
    assert unit.file is None and unit.file_cut == "20971520 ab12"


def test_host_text_in_unit_state_is_escaped() -> None:
    lines = ["@now 1", "@unit svc", "ActiveState=act\x1b]0;pwned\x07ive\rok", "@end"]
    lines = [line.encode().decode("unicode_escape") for line in lines]
    unit = parse_snapshot(lines).units["svc"]
    assert unit.active == "act\\x1b]0;pwned\\aive\\rok"
    assert unit.active.isprintable()


def test_an_unreadable_base64_answer_is_not_a_crash() -> None:
    lines = ["@now 1", "@unit svc", "ActiveState=active", "@unitfile svc", "not*base64!", "@end"]
    assert parse_snapshot(lines).units["svc"].file == "(unreadable answer)"


def test_drop_ins_are_listed_by_name_whatever_the_name() -> None:
    names = base64.b64encode(b"override.conf\0evil\nname.conf\0").decode()
    lines = ["@now 1", "@unit svc", "ActiveState=active", "@dropins svc", names, "@end"]
    assert parse_snapshot(lines).units["svc"].dropins == ["evil\\nname.conf", "override.conf"]
