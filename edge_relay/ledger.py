"""The relay's durable memory: which command ids it has started, their results, the outbox.

This is what makes execution **at most once**: a command id is claimed when it arrives and
marked started — committed and fsync'd, SQLite ``synchronous=FULL`` — *before* its
process starts; an id marked started is never executed again, across reconnects,
duplicate deliveries, relay crashes and power loss.

It is also what makes result delivery **at least once**: a finished command's result is
written to the outbox in the same transaction as the ledger row, re-sent after every
reconnect, and dropped only after the retention window (the gateway ignores repeats).

One SQLite file in the state dir, mode 0600, used from the daemon's event-loop thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    command_id  TEXT PRIMARY KEY,
    claimed_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL,
    result      TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    command_id TEXT PRIMARY KEY,
    result     TEXT NOT NULL,
    queued_at  REAL NOT NULL
);
"""


@dataclass(frozen=True)
class LedgerEntry:
    command_id: str
    claimed_at: float
    started_at: float | None  # None: claimed, but nothing was ever started
    result: dict[str, Any] | None  # None: no outcome recorded


class CommandLedger:
    """Persistent record of claimed command ids, their results and undelivered results."""

    def __init__(self, path: Path, *, clock=time.time):
        self.path = path
        self._clock = clock
        if not path.exists():
            # Create it 0600 ourselves: sqlite would honour the umask (often world-readable),
            # and results can contain command output.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._durable: bool | None = None

    def _sync(self, durable: bool) -> None:
        """FULL: the commit is fsync'd before it returns (survives power loss); NORMAL (WAL):
        written to the OS, survives a relay crash, fsync'd at the next FULL commit.

        Only the start mark must survive power loss for at-most-once; the rest trades that
        for latency (a lost claim means "never started"; a lost result means "outcome unknown").
        """
        if self._durable is not durable:
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable

    def close(self) -> None:
        self._db.close()

    def claim(self, command_id: str) -> bool:
        """Record that ``command_id`` arrived and is being judged (not yet started).

        Returns True when this call claimed it, False when it was claimed before (by this
        process or an earlier one): the caller must then not execute it.
        """
        self._sync(durable=False)
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO commands (command_id, claimed_at) VALUES (?, ?)",
            (command_id, self._clock()),
        )
        return cursor.rowcount == 1

    def get(self, command_id: str) -> LedgerEntry | None:
        row = self._db.execute(
            "SELECT command_id, claimed_at, started_at, result FROM commands WHERE command_id = ?",
            (command_id,),
        ).fetchone()
        if row is None:
            return None
        return LedgerEntry(row[0], row[1], row[2], json.loads(row[3]) if row[3] is not None else None)

    def mark_started(self, command_id: str) -> None:
        """Durably record that the command's process (or native op) is about to start.

        Called after judgement, immediately before execution: an id claimed but never
        marked started provably never ran, so it may be judged and run after a restart.
        """
        self._sync(durable=True)
        self._db.execute(
            "UPDATE commands SET started_at = ? WHERE command_id = ? AND started_at IS NULL",
            (self._clock(), command_id),
        )

    def record_result(self, command_id: str, result: dict[str, Any]) -> None:
        """Store the outcome and queue it for delivery, atomically."""
        payload = json.dumps(result, separators=(",", ":"))
        now = self._clock()
        self._sync(durable=False)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT INTO commands (command_id, claimed_at, finished_at, result) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(command_id) DO UPDATE SET finished_at = excluded.finished_at, result = excluded.result",
                (command_id, now, now, payload),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO outbox (command_id, result, queued_at) VALUES (?, ?, ?)",
                (command_id, payload, now),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def queue_result(self, command_id: str, result: dict[str, Any]) -> None:
        """Queue a result for delivery without touching the ledger (e.g. a refused forgery)."""
        self._db.execute(
            "INSERT OR REPLACE INTO outbox (command_id, result, queued_at) VALUES (?, ?, ?)",
            (command_id, json.dumps(result, separators=(",", ":")), self._clock()),
        )

    def outbox(self) -> list[dict[str, Any]]:
        """Every queued result, oldest first."""
        rows = self._db.execute("SELECT result FROM outbox ORDER BY queued_at").fetchall()
        return [json.loads(row[0]) for row in rows]

    def outbox_size(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def prune_outbox(self, older_than_seconds: float) -> int:
        """Drop queued results older than the retention window; returns how many."""
        cursor = self._db.execute(
            "DELETE FROM outbox WHERE queued_at < ?", (self._clock() - older_than_seconds,)
        )
        return cursor.rowcount

    def prune_commands(self, older_than_seconds: float) -> int:
        """Forget ids claimed long ago.

        Safe only far beyond the envelope lifetime: an envelope older than that is refused
        as expired before the ledger is even consulted.
        """
        cursor = self._db.execute(
            "DELETE FROM commands WHERE claimed_at < ? AND command_id NOT IN (SELECT command_id FROM outbox)",
            (self._clock() - older_than_seconds,),
        )
        return cursor.rowcount
