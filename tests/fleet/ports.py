"""Ports for servers a test starts in another process: etcd, the stand-ins, chromium,
the dashboard.

A port the kernel picks with bind(0) is free only until the probe closes it, and the
next process to ask may be given the same one: with parallel workers, one worker's
etcd could take the port another worker just handed to its stand-in. So each test
process hands out ports from its own block, below the kernel's ephemeral range (which
starts at 32768 on Debian), in turn, skipping any that something already holds.
"""

from __future__ import annotations

import itertools
import os
import socket

FIRST, BLOCK = 20000, 400  # 16 workers end at 26400


def _worker() -> int:
    """0 in a serial run; N for pytest-xdist's worker gwN."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


_block = range(FIRST + BLOCK * _worker(), FIRST + BLOCK * (_worker() + 1))
_turn = itertools.cycle(_block)


def free_port(address: str = "127.0.0.1") -> int:
    """A port on `address` that nothing holds now, and that no other worker hands out."""
    for port in itertools.islice(_turn, len(_block)):
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port left in {_block.start}-{_block.stop - 1} on {address}")
