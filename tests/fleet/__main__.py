"""`python -m tests.fleet up NAME... [--prefix P]`, `down`, `cut`, `restore`, `poweroff`."""

from __future__ import annotations

import argparse
import sys

from tests.fleet import lab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fleet")
    parser.add_argument("action", choices=["up", "down", "cut", "restore", "poweroff", "show"])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--prefix", default="demo")
    args = parser.parse_args(argv)
    if args.action == "up":
        booted = lab.up(args.names or ["h1", "h2"], prefix=args.prefix)
        for host in booted.hosts:
            print(f"{host.name}\t{host.address}\tnetns {host.netns}")
        return 0
    if args.action == "down":
        lab.down(args.prefix)
        return 0
    current = lab.load(args.prefix)
    if current is None:
        print(f"no lab with prefix {args.prefix!r}", file=sys.stderr)
        return 1
    if args.action == "show":
        for host in current.hosts:
            print(f"{host.name}\t{host.address}\tpid {host.pid}")
        return 0
    action = {"cut": lab.cut_link, "restore": lab.restore_link, "poweroff": lab.power_off}
    for name in args.names:
        action[args.action](current, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
