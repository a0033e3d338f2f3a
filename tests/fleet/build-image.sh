#!/usr/bin/env bash
# Build (or reuse) the cached Debian 12 image that test hosts boot from.
# The cache key is a hash of this script, so a changed package list rebuilds it.
# Prints the image directory on stdout.
set -euo pipefail

# A fleet host's packages, and a controller's own (the README's apt line,
# deploys/controller_files.APT_PACKAGES), so that a lab host can play a blank controller.
PACKAGES="systemd,systemd-sysv,dbus,openssh-server,python3,restic,rclone,sqlite3,curl,git,iproute2,ca-certificates"
PACKAGES="$PACKAGES,python3-venv,age,gnupg,openssh-client"
CACHE_ROOT="${FLEET_CACHE:-/var/cache/fleet-reconciler}"
KEY="$(sha256sum "$0" | cut -c1-12)"
IMAGE="$CACHE_ROOT/image-$KEY"

if [[ -f "$IMAGE/.complete" ]]; then
    echo "$IMAGE"
    exit 0
fi

# The Debian mirror this machine's apt already uses (deb822 `.sources` or one-line
# `sources.list`); $FLEET_DEBIAN_MIRROR overrides it. No mirror is named here.
debian_mirror() {
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    local uri
    # The first source that serves the `bookworm` suite itself (not -security, -updates).
    uri="$(cat "${files[@]}" 2>/dev/null | awk '
        function flush() { if (u != "" && s ~ /(^| )bookworm( |$)/ && !found) { print u; found = 1 } u = ""; s = "" }
        /^[[:space:]]*#/ { next }
        /^deb[[:space:]]/ { u = ""; for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { u = $i; s = $(i + 1); break } flush(); next }
        /^URIs:/ { u = $2; next }
        /^Suites:/ { s = ""; for (i = 2; i <= NF; i++) s = s " " $i; sub(/^ /, "", s); next }
        /^[[:space:]]*$/ { flush() }
        END { flush() }
    ')"
    [[ -n "$uri" ]] || { echo "no Debian mirror in /etc/apt sources; set FLEET_DEBIAN_MIRROR" >&2; exit 1; }
    echo "$uri"
}
MIRROR="${FLEET_DEBIAN_MIRROR:-$(debian_mirror)}"

mkdir -p "$CACHE_ROOT"
# One build at a time (parallel test workers may all find the image missing); the
# ones that waited find it built.
exec 9>"$CACHE_ROOT/build.lock"
flock 9
if [[ -f "$IMAGE/.complete" ]]; then
    echo "$IMAGE"
    exit 0
fi
rm -rf "$IMAGE.tmp"
echo "building test-host image $IMAGE (about 60-80 s)..." >&2
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$IMAGE.tmp" \
    "$MIRROR" >"$CACHE_ROOT/debootstrap.log" 2>&1 \
    || { echo "debootstrap failed; see $CACHE_ROOT/debootstrap.log" >&2; exit 1; }

root="$IMAGE.tmp"
# Key-based root SSH only; the key pair lives beside the image, outside the repo.
ssh-keygen -q -t ed25519 -N '' -C fleet-test -f "$IMAGE.id_ed25519" <<<y >/dev/null
install -d -m 700 "$root/root/.ssh"
install -m 600 "$IMAGE.id_ed25519.pub" "$root/root/.ssh/authorized_keys"
cat >"$root/etc/ssh/sshd_config.d/fleet-test.conf" <<'CONF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
CONF
# Networking is configured from outside (veth in a netns we create).
chroot "$root" systemctl enable ssh.service >/dev/null 2>&1 || true
chroot "$root" systemctl mask systemd-networkd-wait-online.service getty@tty1.service \
    console-getty.service systemd-resolved.service >/dev/null 2>&1 || true
# A test host changes only when a test changes it: no housekeeping timers (tmpfiles-clean
# fired 15 minutes after boot, between a dry run's before and after footprints; apt
# would reach for a mirror the lab cannot reach).
chroot "$root" systemctl mask systemd-tmpfiles-clean.timer apt-daily.timer \
    apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
    >/dev/null 2>&1 || true
rm -f "$root/etc/hostname"  # nspawn --machine= names each host
rm -f "$root/etc/machine-id" && touch "$root/etc/machine-id"
apt-get -o RootDir="$root" clean >/dev/null 2>&1 || true

rm -rf "$IMAGE"
mv "$root" "$IMAGE"
touch "$IMAGE/.complete"
echo "$IMAGE"
