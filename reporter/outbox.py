"""The reporter's durable outbox: events wait in a local SQLite spool until the bot acks them.

Every event is written here before it is sent and deleted only once the bot's
``acked_seq`` covers it, so a bot that is down for hours, or a reporter that restarts,
loses nothing. Seqs are given out when an event is first sent and kept for every resend,
so the bot, which stores each seq once, never stores an event twice.

Invariant: the rows that hold a seq are the oldest rows, numbered ``acked + 1, acked + 2,
…`` without a gap; everything after them waits unnumbered. Thinning and refusals only
ever touch unnumbered rows or renumber the whole prefix, so the invariant holds.

The spool is bounded: past ``max_events`` the oldest samples are thinned first (every
other one), then the oldest steps, so a week-long outage cannot fill the disk. When
the disk itself is full, or the spool cannot be opened, the outbox carries on in memory
(with the same bound) and says so once: the training job must never notice.

Only the probe's background thread uses an `Outbox`; it is not thread-safe.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from reporter.wire import Event

MAX_SPOOL_EVENTS = 500_000
_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    seq INTEGER UNIQUE
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

Connect = Callable[[str], sqlite3.Connection]
Warn = Callable[[str, str], None]


def _connect(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


class Outbox:
    """A bounded, ack-driven spool of wire events; ``path=None`` keeps it in memory."""

    def __init__(
        self,
        path: Path | str | None,
        *,
        max_events: int = MAX_SPOOL_EVENTS,
        warn: Warn | None = None,
        connect: Connect = _connect,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.max_events = max(1, max_events)
        self.dropped = 0  # events given up on: thinned, invalid or refused
        self._warn = warn or (lambda key, message: None)
        self._connect = connect
        self._known_meta: dict[str, str] = {}  # survives even a spool that cannot be read
        self._conn = self._open()
        self._count = self._scalar("SELECT count(*) FROM events")

    # --- state ------------------------------------------------------------------------

    @property
    def on_disk(self) -> bool:
        return self.path is not None

    @property
    def pending(self) -> int:
        """Events not yet acknowledged by the bot."""
        return self._count

    @property
    def acked_seq(self) -> int:
        return int(self._meta("acked_seq") or 0)

    def bind(self, run_id: str, acked_seq: int) -> None:
        """Start (or resume) sending for ``run_id``, whose stored watermark is ``acked_seq``.

        A spool left by an earlier process of the same run keeps its numbering; one left
        for another run id (the bot's database was reset) is renumbered from scratch.
        """
        if self._meta("run_id") != run_id:
            self._write("UPDATE events SET seq = NULL")
            self._set_meta("run_id", run_id)
            self._set_meta("acked_seq", str(acked_seq))
            return
        self._known_meta.update(run_id=run_id, acked_seq=str(self.acked_seq))
        self.ack(acked_seq)

    # --- writing ----------------------------------------------------------------------

    def put(self, events: Sequence[dict[str, Any]]) -> None:
        """Spool wire events given as dicts without ``seq`` (already validated)."""
        if not events:
            return
        rows = [(e["kind"], json.dumps(e, separators=(",", ":"))) for e in events]
        try:
            self._insert(rows)
        except sqlite3.Error as exc:
            self._fall_back_to_memory(exc)
            self._insert(rows)
        self._count += len(rows)
        if self._count > self.max_events:
            self._thin(self._count - self.max_events)

    def batch(self, limit: int) -> list[Event]:
        """The oldest ``limit`` pending events, numbered; the same seqs on every resend."""
        rows = self._conn.execute(
            "SELECT id, body, seq FROM events ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        next_seq = self.acked_seq + 1
        numbered = [(row_id, body, seq) for row_id, body, seq in rows if seq is not None]
        if numbered:
            next_seq = numbered[-1][2] + 1
        fresh = [(next_seq + i, row_id) for i, (row_id, _, _) in enumerate(rows[len(numbered) :])]
        if fresh:
            self._write_many("UPDATE events SET seq = ? WHERE id = ?", fresh)
        seqs = {row_id: seq for seq, row_id in fresh} | {r: s for r, _, s in numbered}
        events: list[Event] = []
        invalid: list[int] = []
        for row_id, body, _ in rows:
            try:
                events.append(_EVENT.validate_python({**json.loads(body), "seq": seqs[row_id]}))
            except (ValidationError, ValueError):
                invalid.append(row_id)
        if invalid:
            # Cannot happen unless the file was edited; renumber rather than leave a gap.
            self._delete_ids(invalid)
            self._write("UPDATE events SET seq = NULL")
            self._warn("spool-invalid", f"dropped {len(invalid)} unreadable spooled events")
            return self.batch(limit)
        return events

    def ack(self, acked_seq: int) -> None:
        """The bot stores every seq up to ``acked_seq``: forget those events."""
        highest = self._scalar("SELECT coalesce(max(seq), 0) FROM events")
        if acked_seq < self.acked_seq:
            # The bot lost events it once acknowledged (its database was restored): what
            # it lost is gone from here too, so continue after its new mark, not ours.
            self._warn("spool-regressed", f"the bot's mark went back to seq {acked_seq}")
            self._write("UPDATE events SET seq = NULL")
        elif highest and acked_seq > highest:
            # The bot's numbering is ahead of everything we sent: an earlier reporter
            # process used those seqs, so ours were ignored. Number them after its mark.
            self._write("UPDATE events SET seq = NULL")
        else:
            self._delete_where("seq IS NOT NULL AND seq <= ?", acked_seq)
        if acked_seq != self.acked_seq:
            self._set_meta("acked_seq", str(acked_seq))

    def refuse(self, seq_from: int, seq_to: int) -> None:
        """The bot refused these seqs for good: drop them and renumber what follows."""
        self.dropped += self._delete_where("seq BETWEEN ? AND ?", seq_from, seq_to)
        self._write("UPDATE events SET seq = NULL")

    def drop_all(self) -> None:
        """Nobody will read these (the bot disowned the run): keep the disk clean."""
        self.dropped += self._count
        self._write("DELETE FROM events")
        self._count = 0

    def close(self, *, remove_if_empty: bool = False) -> None:
        self._conn.close()
        if remove_if_empty and self._count == 0 and self.path is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with suppress(OSError):
                    os.remove(f"{self.path}{suffix}")

    # --- internals --------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = self._connect(str(self.path))
                conn.execute("PRAGMA journal_mode=WAL")
                # A lost power cut may cost the last transaction; never a corrupt file.
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                return conn
            except (sqlite3.Error, OSError) as exc:
                self._warn(
                    "spool-open",
                    f"cannot open the spool {self.path} ({exc}); keeping events in memory",
                )
                self.path = None
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.executescript(_SCHEMA)
        return conn

    def _fall_back_to_memory(self, exc: sqlite3.Error) -> None:
        """Copy the spool into memory and carry on there (the disk is full or broken)."""
        memory = sqlite3.connect(":memory:", isolation_level=None)
        with suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")  # backup() waits forever on an open write
        try:
            self._conn.backup(memory)
        except sqlite3.Error:
            # Unreadable too: start empty, count the loss, but keep which run and which
            # seq the bot has, or new events would reuse seqs it already stored.
            memory.executescript(_SCHEMA)
            memory.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)", list(self._known_meta.items())
            )
            self.dropped += self._count
            self._count = 0
        self._warn(
            "spool-full",
            f"the spool {self.path} failed ({exc}); keeping up to {self.max_events:,} "
            "events in memory instead",
        )
        with suppress(sqlite3.Error):
            self._conn.close()
        self._conn = memory
        self.path = None

    def _insert(self, rows: list[tuple[str, str]]) -> None:
        with self._transaction():
            self._conn.executemany("INSERT INTO events (kind, body) VALUES (?, ?)", rows)

    def _thin(self, excess: int) -> None:
        """Drop ``excess`` unsent events: old samples first, then old steps, then any."""
        for kind in ("sample", "step", None):
            while excess > 0:
                removed = self._thin_pass(kind, excess)
                if removed == 0:
                    break
                excess -= removed
        self._warn(
            "spool-thinned",
            f"the bot has been unreachable for long: thinned the spool to "
            f"{self.max_events:,} events ({self.dropped:,} dropped so far)",
        )

    def _thin_pass(self, kind: str | None, excess: int) -> int:
        # Every other one of the oldest keeps what remains evenly spread over time; the
        # last resort (any kind but the exit) simply drops the oldest.
        where = "seq IS NULL AND " + ("kind != 'exit'" if kind is None else "kind = ?")
        args: tuple[Any, ...] = () if kind is None else (kind,)
        stride = 1 if kind is None else 2
        ids = [
            row[0]
            for row in self._conn.execute(
                f"SELECT id FROM events WHERE {where} ORDER BY id LIMIT ?",
                (*args, excess * stride),
            )
        ]
        victims = ids[::stride][:excess]
        self.dropped += len(victims)
        return self._delete_ids(victims)

    def _delete_ids(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        self._write_many("DELETE FROM events WHERE id = ?", [(i,) for i in ids])
        self._count -= len(ids)
        return len(ids)

    def _delete_where(self, where: str, *args: Any) -> int:
        deleted = self._write(f"DELETE FROM events WHERE {where}", *args)
        self._count -= deleted
        return deleted

    def _write(self, sql: str, *args: Any) -> int:
        try:
            with self._transaction():
                return self._conn.execute(sql, args).rowcount
        except sqlite3.Error as exc:
            self._fall_back_to_memory(exc)
            with self._transaction():
                return self._conn.execute(sql, args).rowcount

    def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            with self._transaction():
                self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            self._fall_back_to_memory(exc)
            with self._transaction():
                self._conn.executemany(sql, rows)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)

    def _scalar(self, sql: str) -> int:
        return int(self._conn.execute(sql).fetchone()[0])

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._known_meta[key] = value
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, value)


class _Transaction:
    """BEGIN … COMMIT, rolled back on error, on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN")

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                # A full disk often fails at COMMIT; an open write transaction would
                # block the memory fallback's backup forever.
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
        else:
            with suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")


__all__ = ["MAX_SPOOL_EVENTS", "Outbox"]
