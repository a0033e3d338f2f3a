#!/usr/bin/env python3
"""A stand-in agent (Allegro, Ezra, Primus): appends a heartbeat line every interval.

The reconciler's `file_fresh` check watches that log, as the seed's runbook does
("no log entries for more than 30 minutes").
"""

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    while True:
        with log.open("a") as out:
            out.write(f"{datetime.now(UTC).isoformat()} {args.name} heartbeat ok\n")
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
