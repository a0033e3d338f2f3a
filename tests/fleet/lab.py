"""A lab of real test hosts: systemd-nspawn containers, each in its own network namespace.

Hosts boot from a cached debootstrap Debian 12 image (see build-image.sh) with
`--volatile=overlay`, so every boot starts clean and nothing is written to the image.
Each host's netns has a veth into a bridge in 198.18.0.0/15 (the range reserved for
benchmarking); the controller reaches hosts over real SSH through that bridge.

Every resource a lab creates is named after its prefix and recorded in a state file
under /run, so `down()` cleans up after a crashed run too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from state.ssh import KEX_ALGORITHMS

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("FLEET_CACHE", "/var/cache/fleet-reconciler"))
RUN_DIR = Path("/run/fleet-reconciler")
# One /24 per lab prefix, so a demo, the tests and a benchmark can run side by side;
# the test suite's parallel workers take test0, test1, ... (see `test_prefix`).
SUBNETS = {"demo": 0, "test": 1, "bench": 2, "soak": 3, "labtest": 4}
SUBNETS |= {f"test{worker}": 40 + worker for worker in range(16)}
BOOT_TIMEOUT_S = 30.0


class LabError(RuntimeError):
    """A lab host could not be created, booted or reached."""


@dataclass(frozen=True)
class LabHost:
    """One booted host: its name, address, netns, root-side veth and nspawn pid."""

    name: str
    address: str
    netns: str
    veth: str
    pid: int


@dataclass(frozen=True)
class Lab:
    """A running lab: its hosts plus the SSH key and known_hosts that reach them."""

    prefix: str
    bridge: str
    gateway: str
    hosts: tuple[LabHost, ...]
    ssh_key: str
    known_hosts: str
    persistent: bool = False  # hosts keep their disk across `reboot` (an overlay of ours)

    def host(self, name: str) -> LabHost:
        return next(h for h in self.hosts if h.name == name)


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(args)}: {result.stderr.strip()}")
    return result


def ensure_image() -> Path:
    """The cached image directory, built first if its package list changed."""
    result = subprocess.run(
        ["bash", str(HERE / "build-image.sh")], stdout=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise LabError("building the test-host image failed (see stderr above)")
    return Path(result.stdout.strip().splitlines()[-1])


def test_prefix() -> str:
    """The lab prefix of this test process: FLEET_TEST_LAB (default "test"), and under
    pytest-xdist the worker's number after it ("test0", "test1", ...), so that parallel
    workers never share a host, a bridge, a subnet or a state file."""
    base = os.environ.get("FLEET_TEST_LAB", "test")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist
    return f"{base}{worker.removeprefix('gw')}" if worker else base


def subnet(prefix: str) -> int:
    """The third octet of a lab's /24: fixed for known prefixes, hashed for others."""
    return SUBNETS.get(prefix, 16 + int(hashlib.sha256(prefix.encode()).hexdigest(), 16) % 200)


def _refuse_taken(prefix: str, gateway: str) -> None:
    """Two labs must never share a subnet: their hosts would answer for each other."""
    taken = _run("ip", "-o", "-4", "addr", "show").stdout
    if f" {gateway}/" in taken:
        raise LabError(f"lab {prefix!r}: {gateway} is already in use by another lab")


def _state_file(prefix: str) -> Path:
    return RUN_DIR / f"{prefix}.json"


def up(names: list[str], prefix: str = "test", persistent: bool = False) -> Lab:
    """Boot one host per name; clean up any earlier lab with this prefix first.

    `persistent` hosts boot from an overlay this lab mounts (upper layer under /run)
    instead of nspawn's volatile one, so `reboot` keeps what was written to them."""
    down(prefix)
    image = ensure_image()
    _room_for(len(names))
    net = subnet(prefix)
    _refuse_taken(prefix, f"198.18.{net}.1")
    bridge, gateway = f"{prefix}-br", f"198.18.{net}.1"
    _run("ip", "link", "add", bridge, "type", "bridge")
    _run("ip", "addr", "add", f"{gateway}/24", "dev", bridge)
    _run("ip", "link", "set", bridge, "up")
    known_hosts = CACHE / f"{prefix}.known_hosts"
    host_key = (image / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]
    ssh_key = CACHE / f"{prefix}.id_ed25519"  # a stable path for state files to name
    ssh_key.unlink(missing_ok=True)
    ssh_key.symlink_to(f"{image}.id_ed25519")
    lab = Lab(prefix, bridge, gateway, (), str(ssh_key), str(known_hosts), persistent)
    _save(lab)
    hosts = []
    try:
        for i, name in enumerate(names):
            address = f"198.18.{net}.{11 + i}"
            hosts.append(_boot(prefix, name, address, bridge, gateway, image, persistent))
            lab = replace(lab, hosts=tuple(hosts))
            _save(lab)
        known_hosts.write_text("".join(f"{h.address} {' '.join(host_key)}\n" for h in hosts))
        for host in hosts:
            _wait_for_ssh(host)
        for host in hosts:
            _wait_until_booted(lab, host)
    except BaseException:
        down(prefix)
        raise
    return lab


INOTIFY_PER_HOST = 16  # each container's systemd, journald and udev take a few


def _room_for(hosts: int) -> None:
    """Raise (never lower) the inotify instances a user may hold: every container runs
    as root, and its systemd takes several, so the default of 128 is reached near 30
    hosts and a further host's systemd fails to start."""
    limit = Path("/proc/sys/fs/inotify/max_user_instances")
    need = 128 + INOTIFY_PER_HOST * hosts
    if int(limit.read_text()) < need:
        limit.write_text(f"{need}\n")


def _boot(
    prefix: str, name: str, address: str, bridge: str, gateway: str, image: Path, persistent: bool
) -> LabHost:
    netns, veth = f"{prefix}-{name}", _veth_name(prefix, name)
    _run("ip", "netns", "add", netns)
    _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    _run("ip", "link", "set", veth, "master", bridge, "up")
    for cmd in (
        ("ip", "link", "set", "lo", "up"),
        ("ip", "addr", "add", f"{address}/24", "dev", "eth0"),
        ("ip", "link", "set", "eth0", "up"),
        ("ip", "route", "add", "default", "via", gateway),
    ):
        _run("ip", "netns", "exec", netns, *cmd)
    return LabHost(name, address, netns, veth, _start(netns, name, image, persistent))


def _veth_name(prefix: str, name: str) -> str:
    """The host's root-side veth: `prefix-name`, or a digest of it when that is longer
    than a link name may be (15): cut short, two labs' names could meet."""
    full = f"{prefix}-{name}"
    return full if len(full) <= 15 else f"v{hashlib.sha256(full.encode()).hexdigest()[:14]}"


def _start(netns: str, name: str, image: Path, persistent: bool) -> int:
    """Start the host's systemd-nspawn; its pid."""
    root = ["--volatile=overlay", f"--directory={image}"]
    if persistent:
        root = [f"--directory={_persistent_root(netns, image)}"]
    log = (RUN_DIR / f"{netns}.log").open("a")
    # In its own control group, entered before nspawn starts: outside a systemd unit,
    # nspawn puts every container in the same `payload` group beside its own, so the
    # hosts' systemds shared `payload/system.slice/UNIT` and removed each other's groups
    # (starts failed with status=219/CGROUP, kills with "Input/output error").
    enter = " && ".join(f"echo $$ > {g}/cgroup.procs" for g in _own_cgroups(netns))
    proc = subprocess.Popen(
        [
            "sh",
            "-c",
            f'{enter} && exec "$@"',
            "sh",
            "systemd-nspawn",
            "--boot",
            "--register=no",
            "--keep-unit",
            *root,
            f"--network-namespace-path=/run/netns/{netns}",
            f"--machine={name}",
            "--quiet",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"},
    )
    return proc.pid


def _cgroup_paths(netns: str) -> list[Path]:
    """The host's own control group beside this process's, in each hierarchy that has
    one for it (cgroup v2, and v1's `name=systemd`)."""
    groups = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        mount = {"": _cgroup2_mount(), "name=systemd": Path("/sys/fs/cgroup/systemd")}.get(
            controllers
        )
        if mount is not None and (mount / "cgroup.procs").exists():
            groups.append(mount / path.lstrip("/") / f"fleet-lab-{netns}")
    return groups


def _own_cgroups(netns: str) -> list[Path]:
    """The host's control groups (`_cgroup_paths`), made empty and ready."""
    groups = _cgroup_paths(netns)
    for group in groups:
        _remove_cgroup(group)
        group.mkdir(parents=True, exist_ok=True)
    return groups


def _cgroup2_mount() -> Path:
    """Where cgroup v2 is mounted: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid)."""
    unified = Path("/sys/fs/cgroup/unified")
    return unified if (unified / "cgroup.procs").exists() else Path("/sys/fs/cgroup")


def _remove_cgroup(group: Path) -> None:
    """Remove an emptied control group and the groups under it, deepest first."""
    if not group.is_dir():
        return
    for child in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        group.rmdir()


def _persistent_root(netns: str, image: Path) -> Path:
    """The host's root: the image under an upper layer kept under /run, mounted once."""
    base = RUN_DIR / "roots" / netns
    merged = base / "merged"
    if not os.path.ismount(merged):
        for part in ("upper", "work", "merged"):
            (base / part).mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={image},upperdir={base / 'upper'},workdir={base / 'work'}"
        _run("mount", "-t", "overlay", "overlay", "-o", options, str(merged))
    return merged


def reboot(lab: Lab, name: str) -> Lab:
    """Shut a persistent host down in order and boot it again from the same disk."""
    if not lab.persistent:
        raise LabError(
            "reboot needs a lab booted with persistent=True (volatile hosts start clean)"
        )
    return _boot_again(lab, name)


def boot_blank(lab: Lab, name: str) -> Lab:
    """Destroy a volatile host and boot a blank one from the image at the same address
    (the runbook's "Restore from Backups"): everything written on it is gone."""
    if lab.persistent:
        raise LabError("boot_blank needs a volatile lab (persistent hosts keep their disk)")
    return _boot_again(lab, name)


def _boot_again(lab: Lab, name: str) -> Lab:
    current = load(lab.prefix) or lab
    host = current.host(name)
    _stop(host.pid)
    pid = _start(host.netns, name, ensure_image(), persistent=lab.persistent)
    rebooted = replace(host, pid=pid)
    lab = replace(current, hosts=tuple(rebooted if h.name == name else h for h in current.hosts))
    _save(lab)
    _wait_for_ssh(rebooted)
    _wait_until_booted(lab, rebooted)
    return lab


def _wait_for_ssh(host: LabHost) -> None:
    if not _answers_ssh(host, BOOT_TIMEOUT_S):
        log = (RUN_DIR / f"{host.netns}.log").read_text()[-2000:]
        raise LabError(f"host {host.name} did not answer SSH in {BOOT_TIMEOUT_S}s; log:\n{log}")


def _answers_ssh(host: LabHost, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host.address, 22), 0.5) as s:
            if s.recv(4).startswith(b"SSH-"):
                return True
        time.sleep(0.1)
    return False


def _wait_until_booted(lab: Lab, host: LabHost) -> None:
    """Boot finished: no unit still starting or queued, and root can log in.

    A boot that ends `degraded` (a unit failed, under load) may never remove
    /run/nologin, so that file is not waited on: it does not stop root, and with no job
    left nothing else would remove it. That wait was the cause of the lab's slow-boot
    failures (seen with the demo fleet and another lab running)."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        answer = ssh(
            lab, host.name, "systemctl is-system-running --wait; systemctl list-jobs", check=False
        )
        if answer.split()[:1] in (["running"], ["degraded"]) and "No jobs running" in answer:
            return
        time.sleep(0.2)
    # Say what it was waiting for, so a slow boot names its cause instead of a timeout.
    jobs = ssh(
        lab,
        host.name,
        "systemctl is-system-running; systemctl list-jobs --no-pager; "
        "systemctl --failed --no-pager; ls -l /run/nologin 2>&1; uptime",
        check=False,
    )
    raise LabError(
        f"host {host.name} did not finish booting in {BOOT_TIMEOUT_S}s; still running:\n{jobs}"
    )


def _save(lab: Lab) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    _state_file(lab.prefix).write_text(json.dumps(asdict(lab)))


def load(prefix: str = "test") -> Lab | None:
    """The lab recorded under `prefix`, if any."""
    try:
        data = json.loads(_state_file(prefix).read_text())
    except (OSError, ValueError):
        return None
    data["hosts"] = tuple(LabHost(**h) for h in data["hosts"])
    return Lab(**data)


def down(prefix: str = "test") -> None:
    """Stop every host of the lab and remove its namespaces, veths and bridge. Idempotent."""
    lab = load(prefix)
    hosts = lab.hosts if lab else ()
    for host in hosts:
        _stop(host.pid)
    names = _run("ip", "netns", "list", check=False).stdout.split()
    for netns in {h.netns for h in hosts} | {n for n in names if n.startswith(f"{prefix}-")}:
        _kill_netns_processes(netns)
        _run("ip", "netns", "delete", netns, check=False)
    for host in hosts:
        _run("ip", "link", "delete", host.veth, check=False)
        for group in _cgroup_paths(host.netns):
            _remove_cgroup(group)
        root = RUN_DIR / "roots" / host.netns
        if os.path.ismount(root / "merged"):
            _run("umount", str(root / "merged"), check=False)
        shutil.rmtree(root, ignore_errors=True)
    _run("ip", "link", "delete", f"{prefix}-br", check=False)
    _state_file(prefix).unlink(missing_ok=True)


def _kill_netns_processes(netns: str) -> None:
    for pid in _run("ip", "netns", "pids", netns, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _stop(pid: int, timeout: float = 10.0) -> None:
    """Power a host off: nspawn turns SIGTERM into an orderly container shutdown."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            waited = pid if not _alive(pid) else 0
        if waited:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cut_link(lab: Lab, name: str) -> None:
    """Make a host unreachable while it keeps running."""
    _run("ip", "link", "set", lab.host(name).veth, "down")


def restore_link(lab: Lab, name: str) -> None:
    """Bring the host's link back; if the host runs, return once it answers SSH again.

    The link is up at once, but CI saw an ssh right after a 90 s cut fail with "No route
    to host" (likely the controller's neighbour entry, which failed during the cut, not
    yet resolved again); a short cut here did not reproduce it.
    """
    host = (load(lab.prefix) or lab).host(name)  # after a reboot its pid changed
    _run("ip", "link", "set", host.veth, "up")
    if _alive(host.pid) and not _answers_ssh(host, BOOT_TIMEOUT_S):
        neighbour = _run("ip", "neigh", "show", host.address, check=False).stdout.strip()
        raise LabError(f"host {name}: link restored but no SSH in {BOOT_TIMEOUT_S}s ({neighbour})")


def drop_route(lab: Lab, name: str, address: str) -> None:
    """A one-sided partition: `name` can no longer answer `address` (the controller is the
    lab's gateway address); its other links still work."""
    _route(lab, name, "add", address)


def restore_route(lab: Lab, name: str, address: str) -> None:
    _route(lab, name, "del", address, check=False)


def _route(lab: Lab, name: str, verb: str, address: str, check: bool = True) -> None:
    netns = lab.host(name).netns
    _run(
        "ip", "netns", "exec", netns, "ip", "route", verb, "blackhole", f"{address}/32", check=check
    )


def power_off(lab: Lab, name: str) -> None:
    _stop((load(lab.prefix) or lab).host(name).pid)  # after a reboot its pid changed


def ssh_options(lab: Lab) -> list[str]:
    """The `ssh` client arguments that reach the lab's hosts: its key, host keys checked."""
    options = [
        f"UserKnownHostsFile={lab.known_hosts}",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
        "ConnectTimeout=5",
        KEX_ALGORITHMS,
    ]
    return ["-i", lab.ssh_key, *(f"-o{o}" for o in options)]


def ssh(lab: Lab, name: str, command: str, check: bool = True, stdin: bytes = b"") -> str:
    """Run `command` on a host over real SSH (as a test would by hand); return stdout."""
    result = subprocess.run(
        ["ssh", *ssh_options(lab), f"root@{lab.host(name).address}", command],
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise LabError(f"ssh {name} {command!r}: {result.stderr.decode().strip()}")
    return result.stdout.decode()


def _sshd_pids(lab: Lab, name: str) -> list[int]:
    pids = _run("ip", "netns", "pids", lab.host(name).netns, check=False).stdout.split()
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                found.append(int(pid))
    return found


def freeze_ssh(lab: Lab, name: str) -> None:
    """Make a host slow rather than down: TCP still connects, SSH never answers (SIGSTOP)."""
    for pid in _sshd_pids(lab, name):
        os.kill(pid, signal.SIGSTOP)


def thaw_ssh(lab: Lab, name: str) -> None:
    for pid in _sshd_pids(lab, name):
        os.kill(pid, signal.SIGCONT)
