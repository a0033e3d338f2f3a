#!/usr/bin/env bash
# Install everything fleet-reconciler needs on a fresh Debian 12 machine (as root):
# system packages, the project venv (.venv) and the cached test-host image.
set -euo pipefail
cd "$(dirname "$0")/.."

need=(systemd-container debootstrap restic iproute2 openssh-client sqlite3 git gnupg age python3-venv curl etcd-server chromium)
missing=()
for pkg in "${need[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -q '^installed$' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/reconcile ]] || [[ pyproject.toml -nt .venv/.installed ]]; then
    echo "setup: creating .venv" >&2
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
    # setuptools warns on every editable install that a folder named like a package
    # may shadow it (here they are the package): said once here, not on every setup.
    PYTHONWARNINGS="ignore:Editable installation" \
        .venv/bin/pip install -q -e '.[dev]' 2>&1 | grep -v '^WARNING' >&2 || true
    .venv/bin/python -c 'import reconciler, pyinfra, pydantic, httpx, watchfiles, restic'
    touch .venv/.installed
fi

# promtool checks and tests the shipped alert rules (contrib/prometheus), and a real
# Prometheus evaluates them against a watch on the lab (tests/integration/test_alerts.py).
# Both binaries are taken from Debian's prometheus package without installing it:
# installing would start a server.
prometheus_dir=/var/cache/fleet-reconciler/prometheus
if [[ ! -x $prometheus_dir/promtool || ! -x $prometheus_dir/prometheus ]]; then
    echo "setup: fetching promtool and prometheus (from Debian's prometheus package)" >&2
    work=$(mktemp -d)
    chmod 755 "$work"
    (cd "$work" && apt-get download -qq prometheus 2>/dev/null \
        && dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool ./usr/bin/prometheus)
    mkdir -p "$prometheus_dir"
    mv "$work/usr/bin/promtool" "$work/usr/bin/prometheus" "$prometheus_dir/"
    rm -rf "$work"
fi

bash tests/fleet/build-image.sh >/dev/null
