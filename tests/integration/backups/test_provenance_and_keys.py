"""What the controller believes about a repository: it lists it only for a snapshot it
has not confirmed, never restores a snapshot it did not record, and rotates the host's
SSH key and the restic key without losing a snapshot."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from backups.repository import open_repository
from backups.restic_repo import WrongPassword
from reconciler.store.journal import Journal
from state.layout import backup_path
from state.load import load_fleet
from tests.fleet import lab as fleet_lab
from tests.integration.backups.conftest import (
    ENV,
    PASSWORD,
    reconcile,
    write_spec,
)
from tests.integration.conftest import run_reconcile


def test_a_plan_lists_the_repository_only_for_a_snapshot_it_has_not_confirmed(
    lab: fleet_lab.Lab, base: Path
) -> None:
    """The backup script leaves the new snapshot's ID on the host; once the repository
    confirmed that ID, plans read it from the host snapshot instead of listing again."""
    import httpx

    from reconciler.flows.once import plan_once
    from reconciler.store.confirmations import Confirmations

    spec = write_spec(lab, base / "confirm.yaml", rpo="1h")
    spec.write_text(spec.read_text().replace("/srv/restic/h1", "/srv/restic/h1-confirm"))
    journal_path = base / "confirm.db"
    done = reconcile(str(spec), "--yes", "--journal", str(journal_path))
    assert done.returncode == 0, done.stdout + done.stderr
    last = fleet_lab.ssh(lab, "h1", "cat /var/lib/fleet-reconciler/backup-db.last").split()
    os.environ["FLEET_TEST_RESTIC_PASSWORD"] = PASSWORD
    loaded = load_fleet(spec)
    confirmations = Confirmations(Journal(journal_path))
    with httpx.Client(trust_env=False) as client:
        first = plan_once(loaded, client, confirmations=confirmations).observed.backups["db"]
        again = plan_once(loaded, client, confirmations=confirmations).observed.backups["db"]
        assert first.newest_id is not None and first.newest_id.startswith(last[0])
        assert (again.listed, again.newest_id, again.last_snapshot) == (
            False,
            first.newest_id,
            first.last_snapshot,
        )
        taken = reconcile(
            "backup", "now", "db", "--state", str(spec), "--journal", str(journal_path)
        )
        assert taken.returncode == 0, taken.stdout + taken.stderr + backup_journal(lab)
        newer = plan_once(loaded, client, confirmations=confirmations).observed.backups["db"]
    assert newer.listed and newer.newest_id != first.newest_id  # a new ID: asked again


def test_a_forged_snapshot_is_never_restored_and_raises_its_p1(
    lab: fleet_lab.Lab, base: Path
) -> None:
    """As root on h1, with its key, its password and its own backup script: plant a
    snapshot tagged `epoch-999` and one claiming to be h2's, each reported in h1's
    `.last`, with a poisoned row and a setuid-root file. Before, a restore took the
    highest epoch; now only the snapshot the controller recorded is restored or drilled,
    each forgery raises one P1 `backup_forged`, and a restore carries no setuid bit and
    no link."""
    spec = write_spec(lab, base / "provenance.yaml", rpo="1h")
    spec.write_text(spec.read_text().replace("/srv/restic/h1", "/srv/restic/h1-provenance"))
    journal_path = base / "provenance.db"
    state, journal = ("--state", str(spec)), ("--journal", str(journal_path))
    fleet_lab.ssh(lab, "h1", "mkdir -p /etc/agent && echo genuine > /etc/agent/marker")
    assert reconcile(str(spec), "--yes", *journal).returncode == 0
    good = reconcile("backup", "now", "db", *state, *journal)
    assert good.returncode == 0, good.stdout + good.stderr
    genuine = good.stdout.split()[3]  # "backup db: snapshot ID at ..."
    script, env = backup_path("db", "script"), backup_path("db", "env")
    plant = (
        "echo poisoned > /etc/agent/marker && cp /bin/true /etc/agent/rootshell && "
        "chmod 4755 /etc/agent/rootshell && ln -sfn /etc/shadow /etc/agent/shadow-link"
    )
    fleet_lab.ssh(lab, "h1", plant)
    for forgery in ("s/epoch-\\$epoch/epoch-999/", "s/--host h1/--host h2/"):
        fleet_lab.ssh(
            lab,
            "h1",
            f"sed '{forgery}' {script} > /tmp/forge.sh && set -a && . {env} && set +a && "
            "sh /tmp/forge.sh",
        )
    applied = reconcile(str(spec), "--yes", *journal)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    forged = Journal(journal_path).events(20, "backup_forged")
    assert len(forged) == 2 and all(e.severity == "P1" for e in forged), forged
    reasons = " | ".join(e.message for e in forged)
    assert "tagged epoch-999, above the fleet's epoch 0" in reasons, reasons
    assert "claims host 'h2', which never held this policy" in reasons, reasons
    listing = reconcile("backup", "list", "db", *state, *journal).stdout
    assert listing.count(" forged") == 2 and f"{genuine} " in listing, listing
    drill = reconcile("backup", "drill", "db", *state, *journal)
    assert f"restored snapshot {genuine}" in drill.stdout, drill.stdout + drill.stderr
    restore = reconcile(
        "backup", "restore", "db", "--to", "h2:/tmp/prov", *state, *journal, "--yes"
    )
    assert f"of snapshot {genuine} into h2:/tmp/prov" in restore.stdout, restore.stderr
    assert fleet_lab.ssh(lab, "h2", "cat /tmp/prov/etc/agent/marker").strip() == "genuine"
    # The host's own next backup is genuine (recorded) but carries the planted files:
    # what is restored has no setuid bit and no link.
    fleet_lab.ssh(lab, "h1", "systemctl start fleet-backup-db.service")
    assert reconcile(str(spec), "--yes", *journal).returncode == 0
    restore = reconcile(
        "backup", "restore", "db", "--to", "h2:/tmp/prov2", *state, *journal, "--yes"
    )
    assert restore.returncode == 0, restore.stderr
    assert "etc/agent/shadow-link is a symlink: left out" in restore.stderr
    assert "etc/agent/rootshell: setuid/setgid bit cleared" in restore.stderr
    mode = fleet_lab.ssh(lab, "h2", "stat -c %a /tmp/prov2/etc/agent/rootshell").strip()
    assert mode == "755"
    gone = fleet_lab.ssh(lab, "h2", "test -e /tmp/prov2/etc/agent/shadow-link; echo $?")
    assert gone.strip() == "1"
    fleet_lab.ssh(lab, "h1", "rm -f /etc/agent/rootshell /etc/agent/shadow-link /etc/agent/marker")


def test_rotate_key_revokes_the_old_key_and_keeps_every_snapshot(
    lab: fleet_lab.Lab, base: Path
) -> None:
    """After a suspected compromise of h1: the key h1 held no longer opens anything on h2
    (it did, for rclone's forced command), the new one backs up, and every snapshot is
    still listed. Uses the provenance test's spec and repository."""
    spec = base / "provenance.yaml"
    state, journal = ("--state", str(spec)), ("--journal", str(base / "provenance.db"))
    old_key = (base / "backup-db_ed25519").read_text()
    stolen = base / "stolen.key"
    stolen.write_text(old_key)
    stolen.chmod(0o600)
    h2 = lab.host("h2").address

    def with_stolen_key() -> tuple[int, str]:
        """(exit code, stderr); what answers an accepted key is rclone's binary greeting."""
        only = ["-oIdentitiesOnly=yes", "-i", str(stolen)]  # not the lab's root key
        done = subprocess.run(
            ["ssh", *fleet_lab.ssh_options(lab)[2:], *only, f"root@{h2}", "true"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )
        return done.returncode, done.stderr.decode(errors="replace")

    assert with_stolen_key()[0] != 255  # accepted: rclone's forced command ran
    os.environ["FLEET_TEST_RESTIC_PASSWORD"] = PASSWORD
    repository = open_repository(load_fleet(spec).fleet, "db")
    before = {s.id for s in repository.snapshots(tag="db")}
    asked = reconcile("backup", "rotate-key", "db", *state, *journal)
    assert asked.returncode == 64 and "Rotate plan:" in asked.stdout  # no terminal, no --yes
    assert (base / "backup-db_ed25519").read_text() == old_key  # nothing changed
    done = reconcile("backup", "rotate-key", "db", *state, *journal, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"key rotated: SHA256:\S+ deployed to h1; SHA256:\S+ revoked", done.stdout)
    code, said = with_stolen_key()
    assert code == 255 and "Permission denied" in said, said
    held = fleet_lab.ssh(lab, "h1", f"cat {backup_path('db', 'key')}")
    assert held.strip() == (base / "backup-db_ed25519").read_text().strip() != old_key.strip()
    assert {s.id for s in repository.snapshots(tag="db")} == before  # every snapshot kept
    again = reconcile("backup", "now", "db", *state, *journal)  # through the new key
    assert again.returncode == 0, again.stdout + again.stderr
    new = again.stdout.split()[3]
    assert any(s.id.startswith(new) for s in repository.snapshots(tag="db"))


NEW_PASSWORD = "test-only-rotated-password-9d2e"


def test_rotate_key_with_the_old_password_replaces_the_restic_key_too(
    lab: fleet_lab.Lab, base: Path
) -> None:
    """The restic key: the state file's reference now holds a new password, and
    `--old-password` names the one h1 held. After the rotation the old password opens
    nothing, h1 holds only the new one, and every snapshot is still there and restorable.
    Uses the provenance test's repository, after the SSH key's rotation."""
    spec = base / "rotated.yaml"
    old_ref = "env:FLEET_TEST_RESTIC_PASSWORD"
    spec.write_text(
        (base / "provenance.yaml").read_text().replace(old_ref, "env:FLEET_TEST_NEW_PASSWORD")
    )
    state, journal = ("--state", str(spec)), ("--journal", str(base / "provenance.db"))
    env = {**ENV, "FLEET_TEST_NEW_PASSWORD": NEW_PASSWORD}
    os.environ["FLEET_TEST_RESTIC_PASSWORD"] = PASSWORD
    old = open_repository(load_fleet(base / "provenance.yaml").fleet, "db")
    before = {s.id for s in old.snapshots(tag="db")}
    refused = run_reconcile(
        "backup", "rotate-key", "db", "--old-password", "$(id)", "--yes", *state, *journal, env=env
    )
    assert refused.returncode == 64 and "expected a reference" in refused.stderr, refused.stderr
    done = run_reconcile(
        "backup", "rotate-key", "db", "--old-password", old_ref, "--yes", *state, *journal, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    said = re.search(r"restic key (\w+) opens the repository; (\w+) removed", done.stdout)
    assert said and said[1] != said[2], done.stdout
    for output in (done.stdout, done.stderr, refused.stdout, refused.stderr):
        assert PASSWORD not in output and NEW_PASSWORD not in output
    with pytest.raises(WrongPassword):
        old.snapshots(tag="db")
    os.environ["FLEET_TEST_NEW_PASSWORD"] = NEW_PASSWORD
    new = open_repository(load_fleet(spec).fleet, "db")
    assert {s.id for s in new.snapshots(tag="db")} == before  # every snapshot kept
    held = fleet_lab.ssh(lab, "h1", f"cat {backup_path('db', 'env')}")
    assert NEW_PASSWORD in held and PASSWORD not in held
    again = run_reconcile("backup", "now", "db", *state, *journal, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    drill = run_reconcile("backup", "drill", "db", *state, *journal, env=env)
    assert drill.returncode == 0 and "drill passed" in drill.stdout, drill.stdout + drill.stderr
    rerun = run_reconcile(
        "backup", "rotate-key", "db", "--old-password", old_ref, "--yes", *state, *journal, env=env
    )  # a rotation run again finds the new key there and the old one gone
    assert rerun.returncode == 0 and "no older key removed" in rerun.stdout, rerun.stdout


def backup_journal(lab: fleet_lab.Lab) -> str:
    """What h1's backup unit said: why a run failed."""
    said = fleet_lab.ssh(
        lab, "h1", "journalctl -u fleet-backup-db -n 30 --no-pager -o cat", check=False
    )
    return f"\n--- h1 fleet-backup-db ---\n{said}"
