"""Install fleet-reconciler itself as a systemd service plus timer, so a host reconciles
continuously. This is how the README tells people to run it in production:

    FLEET_STATE=/srv/fleet/state/fleet.yaml pyinfra @local deploys/install_controller.py

Two ways to run: a oneshot service plus timer (`controller`), or the long-running
`reconcile watch` service with a systemd watchdog (`watch_service`, RECONCILE_MODE=watch).
"""

from __future__ import annotations

import os
import shlex
from io import StringIO

from pyinfra.operations import files, systemd

from deploys.controller_files import CONFIG_DIR, ENVIRONMENT_FILE, SERVICE, UNIT_DIR, WATCH_UNIT
from deploys.service import typed_deploy


def render_service(reconcile_bin: str, state_file: str) -> str:
    """A oneshot unit: one `reconcile --yes` pass; the timer repeats it."""
    return (
        "# Installed by deploys/controller.py.\n"
        "[Unit]\n"
        "Description=fleet-reconciler: converge the fleet to the desired state\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={reconcile_bin} --yes --lock-timeout 300 {state_file}\n"
        f"WorkingDirectory={os.path.dirname(state_file) or '/'}\n"
        "TimeoutStartSec=30min\n"
    )


HARDENING = (
    # What the controller needs: SSH, HTTP and etcd out; its state and cache dirs; the
    # keys, the age identity and the state file read. Everything else is taken away.
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ReadWritePaths=/var/lib/fleet-reconciler /var/cache/fleet-reconciler",
    "ProtectHome=read-only",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "PrivateMounts=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "ProcSubset=pid",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "RemoveIPC=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    # Taken back from those two: SQLite, as root, fchowns its -wal and -shm files to the
    # journal's owner; restic restores files' owners (drills, restores, rebuilds); Go
    # (restic) raises its soft open-files limit at start. A call left out fails (EPERM)
    # instead of killing the loop.
    "SystemCallFilter=@chown setrlimit prlimit64",
    "SystemCallErrorNumber=EPERM",
    "MemoryDenyWriteExecute=yes",
    # restic restores a snapshot's files with their owners and modes into a scratch
    # directory (CHOWN, FOWNER), which is then read to be copied to the host
    # (DAC_OVERRIDE: the files may be another user's, mode 0600). Nothing else.
    "CapabilityBoundingSet=CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE",
    "AmbientCapabilities=",
    "DevicePolicy=closed",
    "KeyringMode=private",
    "UMask=0077",
)
"""The watch service's sandbox (`systemd-analyze security`: 9.6 UNSAFE without it, 2.3 OK
with it, measured on the running unit by tests/integration/test_controller_in_production.py).
Not set, and why: `PrivateNetwork`, `IPAddressDeny` (it must reach every host),
`User=`/`DynamicUser` (the keys and the age identity are root's files, restic's sftp runs
ssh with root's key, and restored files keep their owners), `PrivateUsers` (the same
owners). The lab test found what an empty capability set and the plain system-call
filter broke: the journal's WAL files (killed by SIGSYS), restic (its rlimit call), and
a drill of another user's file (its owner not restored)."""


def render_watch_service(
    reconcile_bin: str,
    state_file: str,
    watchdog: str,
    credentials: dict[str, str] | None = None,
    environment_file: str = ENVIRONMENT_FILE,
    watch_args: tuple[str, ...] = (),
    encrypted: dict[str, str] | None = None,
) -> str:
    """`reconcile watch` as a long-running service that systemd restarts and watches.

    The loop sends READY=1, STATUS= after each pass, and WATCHDOG=1 while it keeps
    making progress; at start it sets the watchdog to its real stall limit
    (WATCHDOG_USEC=, from the largest RTO), so `WatchdogSec=` here is only the limit
    until then. Secrets come as systemd credentials (`credentials`: {name: file},
    read with `cred:NAME` in the state file) or from `environment_file` (0600; `env:`).
    `watch_args` are the watch's own flags (`--http 127.0.0.1:9300`, `--hooks ...`).
    `encrypted`: {name: file} made by `systemd-creds encrypt` (LoadCredentialEncrypted=).
    """
    loaded = "".join(
        f"LoadCredential={name}:{path}\n" for name, path in sorted((credentials or {}).items())
    ) + "".join(
        f"LoadCredentialEncrypted={name}:{path}\n"
        for name, path in sorted((encrypted or {}).items())
    )
    sandbox = "".join(f"{line}\n" for line in HARDENING)
    return (
        "# Installed by deploys/controller.py.\n"
        "[Unit]\n"
        "Description=fleet-reconciler watch: continuous reconcile of the fleet\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n[Service]\n"
        "Type=notify\n"
        "NotifyAccess=main\n"
        f"ExecStart={shlex.join([reconcile_bin, 'watch', *watch_args, state_file])}\n"
        "ExecReload=/bin/kill -HUP $MAINPID\n"
        f"WorkingDirectory={os.path.dirname(state_file) or '/'}\n"
        f"EnvironmentFile=-{environment_file}\n"
        "Environment=FLEET_RECONCILER_HOME=/var/lib/fleet-reconciler\n"
        "Environment=XDG_CACHE_HOME=/var/cache/fleet-reconciler\n"
        f"{loaded}"
        "StateDirectory=fleet-reconciler\n"
        "StateDirectoryMode=0700\n"
        "CacheDirectory=fleet-reconciler\n"
        "CacheDirectoryMode=0700\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        f"WatchdogSec={watchdog}\n"
        "KillSignal=SIGTERM\n"
        "KillMode=mixed\n"
        "TimeoutStopSec=30min\n"
        f"{sandbox}"
        "\n[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def render_timer(interval: str) -> str:
    """Run the service at boot and then `interval` after each run finished."""
    return (
        "# Installed by deploys/controller.py.\n"
        "[Unit]\n"
        "Description=fleet-reconciler: periodic reconcile\n"
        "\n[Timer]\n"
        "OnBootSec=1min\n"
        f"OnUnitInactiveSec={interval}\n"
        "Persistent=true\n"
        "\n[Install]\n"
        "WantedBy=timers.target\n"
    )


@typed_deploy("fleet-reconciler watch")
def watch_service(
    state_file: str,
    reconcile_bin: str,
    watchdog: str = "60s",
    credentials: dict[str, str] | None = None,
    watch_args: tuple[str, ...] = (),
    encrypted: dict[str, str] | None = None,
) -> None:
    """`reconcile watch` as a service: Restart=on-failure and a watchdog; its config
    directory (0700) and environment file (0600, created empty, never overwritten)."""
    files.directory(name=CONFIG_DIR, path=CONFIG_DIR, mode="700")
    files.file(name=ENVIRONMENT_FILE, path=ENVIRONMENT_FILE, mode="600")
    text = render_watch_service(
        reconcile_bin, state_file, watchdog, credentials, watch_args=watch_args, encrypted=encrypted
    )
    unit = files.put(
        name="fleet-reconciler-watch.service",
        src=StringIO(text),
        dest=f"{UNIT_DIR}/{WATCH_UNIT}",
        mode="644",
    )
    systemd.daemon_reload(name="daemon-reload", _if=unit.did_change)
    systemd.service(
        name="watch enabled and running",
        service=WATCH_UNIT,
        running=True,
        enabled=True,
        restarted=True,
        _if=unit.did_change,
    )
    systemd.service(
        name="watch enabled and running",
        service=WATCH_UNIT,
        running=True,
        enabled=True,
        _if=lambda: not unit.did_change(),
    )


@typed_deploy("fleet-reconciler controller")
def controller(state_file: str, reconcile_bin: str, interval: str) -> None:
    service = files.put(
        name="fleet-reconciler.service",
        src=StringIO(render_service(reconcile_bin, state_file)),
        dest=f"{UNIT_DIR}/{SERVICE}.service",
        mode="644",
    )
    timer = files.put(
        name="fleet-reconciler.timer",
        src=StringIO(render_timer(interval)),
        dest=f"{UNIT_DIR}/{SERVICE}.timer",
        mode="644",
    )
    systemd.daemon_reload(
        name="daemon-reload", _if=lambda: service.did_change() or timer.did_change()
    )
    systemd.service(
        name="timer enabled and running", service=f"{SERVICE}.timer", running=True, enabled=True
    )
