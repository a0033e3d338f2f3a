"""Every verb of `reconcile`: its name, its one-line summary, the `module:function` that
runs it (imported only then), and whether it needs an SSH worker started first. A new
verb is a row here, its flags in `parser`, and a `*_command` module."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verb:
    name: str
    summary: str
    run: str
    """"module:function", imported only when the verb runs."""
    ssh: str | None = None
    """"warm" or "cold": start an SSH worker before importing `run`, so the worker's
    start-up (pyinfra, gevent) overlaps with the command's own imports."""


VERBS = {
    verb.name: verb
    for verb in (
        Verb(
            "validate",
            "check a state file: schema and cross-references",
            "validate_command:cmd_validate",
        ),
        Verb("schema", "print the JSON Schema of the state file", "validate_command:cmd_schema"),
        Verb(
            "status",
            "per host and service: desired vs observed, health, the last run",
            "status_command:cmd_status",
            ssh="cold",
        ),
        Verb("history", "the runs recorded in the journal", "status_command:cmd_history"),
        Verb(
            "watch",
            "reconcile continuously: full passes, probes, file watch, healing",
            "watch_command:cmd_watch",
        ),
        Verb(
            "backup",
            "backup policies: list, now, copy, forget, check, drill, restore, rotate-key",
            "backup_command:cmd_backup",
        ),
        Verb(
            "failover",
            "move the failover services: --to HOST, or --accept-data-loss",
            "failover_command:cmd_failover",
        ),
        Verb(
            "failback",
            "bring the failover services home, with zero data loss",
            "failover_command:cmd_failback",
        ),
        Verb(
            "incidents",
            "open and recent incidents; ack ID; pir ID",
            "incidents_command:cmd_incidents",
        ),
        Verb(
            "notify",
            "notify test [CHANNEL]: a test message per channel",
            "incidents_command:cmd_notify",
        ),
        Verb(
            "drill",
            "the DR test: restart, recovery, restore, channels against RTO/RPO",
            "drill_command:cmd_drill",
        ),
        Verb(
            "pin",
            "hold one commit of the git source as the desired state",
            "source_command:cmd_pin",
        ),
        Verb("unpin", "follow the git source's branch again", "source_command:cmd_unpin"),
        Verb(
            "accept",
            "take the git source's held tip (one that does not descend from the commit in force)",
            "source_command:cmd_accept",
        ),
        Verb(
            "suspend",
            "stop applying; observing, probing, paging and failover go on",
            "source_command:cmd_suspend",
        ),
        Verb("resume", "apply again after `reconcile suspend`", "source_command:cmd_resume"),
        Verb(
            "review",
            "plan a Gitea pull request read-only; post the plan and its status",
            "source_command:cmd_review",
            ssh="warm",
        ),
        Verb(
            "enroll",
            "a new host's cloud-init user-data: the controller's key, a host key it made",
            "enroll_command:cmd_enroll",
        ),
        Verb(
            "doctor",
            "check what this controller needs: tools, modes, host keys, secrets, etcd, clock",
            "doctor_command:cmd_doctor",
        ),
        Verb(
            "install-controller",
            "make this machine the controller: the sandboxed watch unit, its secrets",
            "install_command:cmd_install_controller",
        ),
        Verb(
            "journal",
            "the controller's own journal: backup PATH (online), prune (its retention)",
            "journal_command:cmd_journal",
        ),
        Verb(
            "migrate-store",
            "move this controller's memory (intent, incidents, ledger) into etcd, once",
            "journal_command:cmd_migrate_store",
        ),
        Verb(
            "completion",
            "print a shell completion script: bash or zsh",
            "completion_command:cmd_completion",
        ),
        Verb(
            "secret",
            "age: references: init (the controller's identity), encrypt (stdin)",
            "secret_command:cmd_secret",
        ),
    )
}
PLAN = Verb(
    "reconcile",
    "plan, ask, apply, verify (--dry-run: plan only)",
    "plan_command:cmd_reconcile",
    ssh="warm",
)
