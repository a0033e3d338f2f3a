"""Where the controller's own service lives on its machine: names and paths shared by the
deploy that installs it (deploys.controller) and the commands that check it
(`reconcile install-controller`, `reconcile doctor`). No pyinfra here."""

from __future__ import annotations

SERVICE = "fleet-reconciler"
WATCH_UNIT = f"{SERVICE}-watch.service"
UNIT_DIR = "/etc/systemd/system"
CONFIG_DIR = "/etc/fleet-reconciler"
ENVIRONMENT_FILE = f"{CONFIG_DIR}/environment"
DEFAULT_BIN = "/opt/fleet-reconciler/.venv/bin/reconcile"
APT_PACKAGES = ("python3-venv", "restic", "age", "git", "gnupg", "openssh-client", "sqlite3")
"""The controller's own system packages: the README's install line, and the lab image
holds each of them (tests/unit/test_controller_unit.py checks both)."""
