"""`reconcile enroll`: a host that takes its SSH host key from the controller's user-data
is reached with `host_key_policy: strict` on the very first connection, no key trusted
on first use. The lab host plays the new VPS: a second sshd on port 2222 with exactly
the user-data's files (its host key, root's authorized key), as cloud-init puts them."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from tests.fleet import lab as fleet_lab
from tests.integration.conftest import run_reconcile

PORT = 2222


def test_an_enrolled_host_is_checked_strictly_on_first_contact(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"  # empty: nothing about this host is known yet
    spec = tmp_path / "fleet.yaml"
    address = lab.host("h1").address
    spec.write_text(
        "version: 1\nhosts:\n"
        f"  new-vps: {{address: {address}, ssh_port: {PORT}, ssh_key: {lab.ssh_key}, "
        f"ssh_known_hosts: {known}, host_key_policy: strict}}\n"
        "services: {}\n"
    )
    user_data = tmp_path / "user-data"
    done = run_reconcile("enroll", "new-vps", str(spec), "--user-data", str(user_data))
    assert done.returncode == 0, done.stderr
    assert user_data.stat().st_mode & 0o777 == 0o600
    config = yaml.safe_load(user_data.read_text())
    assert user_data.read_text().startswith("#cloud-config\n")
    public = config["ssh_keys"]["ed25519_public"]
    assert known.read_text() == f"[{address}]:{PORT} {' '.join(public.split()[:2])}\n"

    # cloud-init's part, by hand: the host key and root's key from the user-data only.
    files = {
        "/etc/ssh/enrolled_host_ed25519_key": config["ssh_keys"]["ed25519_private"],
        "/etc/ssh/enrolled_authorized_keys": config["users"][0]["ssh_authorized_keys"][0] + "\n",
    }
    for path, text in files.items():
        fleet_lab.ssh(lab, "h1", f"umask 077; cat > {path}", stdin=text.encode())
    sshd = (
        f"/usr/sbin/sshd -D -p {PORT} -h /etc/ssh/enrolled_host_ed25519_key "
        "-o AuthorizedKeysFile=/etc/ssh/enrolled_authorized_keys"
    )
    fleet_lab.ssh(lab, "h1", f"systemd-run --unit=enrolled-sshd {sshd}")
    try:
        plan = run_reconcile("--dry-run", str(spec), "--journal", str(tmp_path / "j.db"))
        assert plan.returncode in (0, 2), plan.stdout + plan.stderr  # observed: not 3
        assert "unreachable" not in plan.stdout and "refused" not in plan.stdout, plan.stdout
        # The check is real: another host key at that address is refused.
        other = tmp_path / "other"
        done = run_reconcile("enroll", "new-vps", str(spec), "--user-data", str(other))
        assert done.returncode == 1 and "already holds a key" in done.stderr
        fleet_lab.ssh(lab, "h1", "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/impostor_key")
        fleet_lab.ssh(lab, "h1", "systemctl stop enrolled-sshd")
        impostor = sshd.replace("enrolled_host_ed25519_key", "impostor_key")
        fleet_lab.ssh(lab, "h1", f"systemd-run --unit=impostor-sshd {shlex.quote(impostor)[1:-1]}")
        refused = run_reconcile("--dry-run", str(spec), "--journal", str(tmp_path / "j.db"))
        assert refused.returncode == 3, refused.stdout
        assert "has CHANGED since it was recorded" in refused.stdout, refused.stdout
    finally:
        fleet_lab.ssh(
            lab, "h1", "systemctl stop enrolled-sshd impostor-sshd 2>/dev/null; true", check=False
        )
