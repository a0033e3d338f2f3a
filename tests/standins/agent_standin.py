#!/usr/bin/env python3
"""A stand-in agent (Allegro, Ezra, Primus): appends a heartbeat line every interval.

The reconciler's `file_fresh` check watches that log, as the seed's runbook does
("no log entries for more than 30 minutes"). With --metrics-db it also records each
heartbeat in a SQLite database (WAL mode), like the seed's timmy_metrics.db.
"""

import argparse
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--metrics-db")
    args = parser.parse_args()
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    if args.metrics_db:
        Path(args.metrics_db).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(args.metrics_db) if args.metrics_db else None
    if db is not None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS heartbeats (at TEXT NOT NULL, agent TEXT NOT NULL)")
    while True:
        now = datetime.now(UTC).isoformat()
        with log.open("a") as out:
            out.write(f"{now} {args.name} heartbeat ok\n")
        if db is not None:
            with db:
                db.execute("INSERT INTO heartbeats VALUES (?, ?)", (now, args.name))
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
