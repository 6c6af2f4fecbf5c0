"""The bot's state in one SQLite file, through sqlite-utils (WAL, versioned schema).

Events are keyed by (run_id, seq) and inserted with ``OR IGNORE``, so a retried batch
never duplicates anything. Exceptions: `StoreError` (the file cannot be written or read).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pydantic_core
import sqlite_utils
from sqlite_utils.db import NotFoundError

from bot.core.kill import Kill

SCHEMA_VERSION = 8  # = len(MIGRATIONS)
CHECKPOINT_EVERY_S = 1.0
# ~40 MiB of WAL at 4 KiB pages: then the checkpoint thread starts the file over.
WAL_RESTART_FRAMES = 10_000

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The database could not be read or written (disk full, read-only, corrupt)."""


@dataclass
class RunRecord:
    id: str
    name: str
    instance_id: str
    token_hash: str
    registered_at: float
    started_at: float
    registration: str
    target_steps: int
    eval_every: int | None
    usd_per_hour: float | None
    state: str = "registered"
    restarts: int = 0
    restart_at: float | None = None
    setup_s: float = 0.0
    restart_s: float = 0.0
    first_event_at: float | None = None
    first_step_at: float | None = None
    last_event_at: float | None = None
    acked_seq: int = 0
    table_posted_at: float | None = None
    status_ref: str | None = None
    last_checkin_at: float | None = None
    return_code: int | None = None
    kept_until: float | None = None
    trigger_memory: str | None = None  # JSON: what one trigger check leaves for the next
    alert_states: str | None = None  # JSON: {trigger: AlertState} for alerts that hold
    instance_track: str | None = None  # JSON: the Vast instance as last read (core.instance)
    attempt_of: str | None = None  # the run id of the job's previous attempt
    attempt: int = 1  # 1 for a job's first run, 2 for its relaunch, …
    final_posted_at: float | None = None  # the final card went out: a second finish is a no-op

    @property
    def active(self) -> bool:
        return self.state in ("registered", "running")


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    kind: str
    t: float
    received_at: float
    body: str


@dataclass
class CommandRecord:
    id: str
    run_id: str
    kind: str
    state: str
    grace_s: float
    created_at: float
    requested_by: str
    confirmed_by: str | None = None
    sent_at: float | None = None
    finished_at: float | None = None
    detail: str = ""


_RUN_COLUMNS = {f.name for f in fields(RunRecord)}


# Columns that later migrations add; the first migration must keep creating the
# version-1 table so every database walks the same path.
_ADDED_LATER = {
    "restart_s",
    "trigger_memory",
    "alert_states",
    "instance_track",
    "attempt_of",
    "attempt",
    "final_posted_at",
}


def _migration_1(db: sqlite_utils.Database) -> None:
    db.table("runs").create(
        {f.name: _sql_type(f.type) for f in fields(RunRecord) if f.name not in _ADDED_LATER},
        pk="id",
        not_null={"name"},
    )
    db.table("runs").create_index(["name", "instance_id"], unique=True)
    db.table("events").create(
        {"run_id": str, "seq": int, "kind": str, "t": float, "received_at": float, "body": str},
        pk=("run_id", "seq"),
    )
    db.table("events").create_index(["run_id", "kind", "seq"])
    db.table("commands").create({f.name: _sql_type(f.type) for f in fields(CommandRecord)}, pk="id")
    db.table("commands").create_index(["run_id", "state"])
    db.table("decisions").create(
        {
            "id": int,
            "run_id": str,
            "kind": str,
            "by": str,
            "at": float,
            "until": float,
            "detail": str,
        },
        pk="id",
    )


def _sql_type(annotation: Any) -> type:
    text = str(annotation)
    if text.startswith(("int", "bool")):
        return int
    if text.startswith("float"):
        return float
    return str


def _migration_2(db: sqlite_utils.Database) -> None:
    # Restart time is inside a run's elapsed time; keep it apart from pre-start setup.
    db.table("runs").add_column("restart_s", float, not_null_default=0.0)


def _migration_3(db: sqlite_utils.Database) -> None:
    # Trigger checks (issue 5) keep a little state between checks, and the alerts held.
    db.table("runs").add_column("trigger_memory", str)
    db.table("runs").add_column("alert_states", str)


def _migration_4(db: sqlite_utils.Database) -> None:
    # Issue 9: a kill is a state machine of its own, one row per kill; the commands
    # table stays the transport to the reporter (a kill's command has the kill's id).
    db.table("kills").create({f.name: _sql_type(f.type) for f in fields(Kill)}, pk="id")
    db.table("kills").create_index(["run_id", "requested_at"])
    db.table("kills").create_index(["state"])


def _migration_5(db: sqlite_utils.Database) -> None:
    # Issue 10: events clustered by (run_id, seq), and no index by kind. A rowid table
    # with its key index and a kind index wrote three b-trees per post (7.0 WAL pages a
    # commit, 201 µs of SQLite CPU, 1,000 runs interleaved); clustered, one: 4.5 pages and
    # 127 µs. A run's events also lie together, so reading a run reads its own pages
    # rather than one row from each of thousands. A kind filter scans the run's range.
    db.execute(
        "create table events_clustered ([run_id] text, [seq] integer, [kind] text, [t] float,"
        " [received_at] float, [body] text, primary key ([run_id], [seq])) without rowid"
    )
    db.execute(
        "insert into events_clustered select run_id, seq, kind, t, received_at, body"
        " from events order by run_id, seq"
    )
    db.execute("drop table events")
    db.execute("alter table events_clustered rename to events")


def _migration_6(db: sqlite_utils.Database) -> None:
    # Issue 24: the instance's own life (status, contract end, pauses, billed price).
    db.table("runs").add_column("instance_track", str)


def _migration_7(db: sqlite_utils.Database) -> None:
    # Issue 25: a relaunch on the same instance is the job's next attempt, a run of its own,
    # so (name, instance) no longer names one run: the latest registration is the current.
    db.table("runs").add_column("attempt_of", str)
    db.table("runs").add_column("attempt", int, not_null_default=1)
    db.execute("drop index if exists idx_runs_name_instance_id")
    db.table("runs").create_index(["name", "instance_id", "registered_at"])


def _migration_8(db: sqlite_utils.Database) -> None:
    # Issue 23: a run's final card is posted once, however often its end is reported.
    db.table("runs").add_column("final_posted_at", float)


MIGRATIONS = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
    _migration_7,
    _migration_8,
]


class SqliteStore:
    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        try:
            if read_only:
                conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
            else:
                # One connection shared by the event loop and test portals; SQLite serialises.
                conn = sqlite3.connect(str(path), check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            if str(path) != ":memory:" and not read_only:
                self.db.enable_wal()
                # In WAL mode NORMAL syncs at checkpoints, not at every commit: a killed
                # bot loses nothing; a power cut may lose the last acked batches, which
                # reporters cannot resend. Halves the cost of a post (bench/ingest_load.py).
                self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA busy_timeout = 5000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc
        self.path = Path(path)
        self._checkpointer: _Checkpointer | None = None

    @classmethod
    def reader(cls, path: Path) -> SqliteStore:
        """A read-only store on a connection of its own, for one worker thread (WAL lets
        it read while the event loop writes). Open, use and close it on that thread."""
        return cls(path, read_only=True)

    @property
    def on_disk(self) -> bool:
        """Whether another connection can open this database (``:memory:`` cannot)."""
        return str(self.path) != ":memory:"

    def migrate(self) -> int:
        """Bring the schema to `SCHEMA_VERSION`; returns the version found before."""
        with self._errors("migrating"):
            self.db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
            version = self._meta_int("schema_version")
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema {version}, newer than this probecast "
                    f"({SCHEMA_VERSION}); upgrade probecast"
                )
            if 0 < version < 5:
                # Schema 5 copies every event (about 7 s a million): say why start-up waits.
                log.warning(
                    "upgrading %s from schema %d to %d: rebuilding the events table",
                    self.path,
                    version,
                    SCHEMA_VERSION,
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                with self.db.atomic():
                    MIGRATIONS[number - 1](self.db)
                    self.db.table("meta").upsert(
                        {"key": "schema_version", "value": str(number)}, pk="key"
                    )
            return version

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.db.close()

    def checkpoint_in_background(
        self, every_s: float = CHECKPOINT_EVERY_S, restart_frames: int = WAL_RESTART_FRAMES
    ) -> None:
        """Move WAL checkpoints off the caller's thread (the event loop).

        SQLite checkpoints inside the commit that fills the WAL to 1,000 pages: under load
        that was one post in about 150 waiting ~35 ms for the copy and its fsync, and every
        request behind it with it (bench/ingest_load.py). A thread with its own connection
        runs a PASSIVE checkpoint every ``every_s`` instead; PASSIVE never blocks readers
        or the writer, and sqlite3 lets go of the GIL while SQLite works.

        But SQLite starts the WAL file over only after a checkpoint that copied all of it,
        which a PASSIVE one never does while posts keep coming: the file grew without
        bound (258 MB in eight minutes of 1,000 runs). So past ``restart_frames`` the
        thread runs a RESTART checkpoint: it holds the writer back while it copies what
        the last PASSIVE one left (a second's frames) and the next commit writes from the
        start of the file again, which keeps its size. In 40 s of commits every 4 ms the
        longest commit was 12 ms with RESTART and 82 ms with TRUNCATE (which shrinks the
        file, so every commit after it grows it again).
        """
        if self._checkpointer is not None or str(self.path) == ":memory:":
            return
        with self._errors("configuring checkpoints"):
            self.db.execute("PRAGMA wal_autocheckpoint = 0")
        self._checkpointer = _Checkpointer(self.path, every_s, restart_frames)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One commit for several writes (a post's events and its run update); nested
        writes join it as savepoints. A failure rolls all of it back."""
        with self._errors("committing"), self.db.atomic():
            yield

    # --- runs -----------------------------------------------------------------------

    def find_run(self, name: str, instance_id: str) -> RunRecord | None:
        """The latest run of this name on this instance (earlier ones are its attempts)."""
        rows = self._rows(
            "select * from runs where name = ? and instance_id = ?"
            " order by registered_at desc, rowid desc limit 1",
            name,
            instance_id,
        )
        return RunRecord(**rows[0]) if rows else None

    def latest_run_named(self, name: str) -> RunRecord | None:
        """The latest run of this name on any instance: what a relaunch follows."""
        rows = self._rows(
            "select * from runs where name = ? order by registered_at desc, rowid desc limit 1",
            name,
        )
        return RunRecord(**rows[0]) if rows else None

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._rows("select * from runs where id = ?", run_id)
        return RunRecord(**rows[0]) if rows else None

    def list_runs(self) -> list[RunRecord]:
        return [RunRecord(**row) for row in self._rows("select * from runs order by registered_at")]

    def create_run(self, run: RunRecord) -> None:
        with self._errors("creating a run"):
            self.db.table("runs").insert(asdict(run), pk="id")

    def update_run(self, run_id: str, **changes: Any) -> None:
        unknown = set(changes) - _RUN_COLUMNS
        if unknown:
            raise ValueError(f"unknown run columns {sorted(unknown)}")
        with self._errors("updating a run"):
            self._update("runs", run_id, changes)

    # --- events ---------------------------------------------------------------------

    def add_events(self, run_id: str, events: Iterable[StoredEvent]) -> int:
        """Store events not seen before; returns how many were new."""
        rows = [(run_id, e.seq, e.kind, e.t, e.received_at, e.body) for e in events]
        with self._errors("storing events"), self.db.atomic():
            before = self.db.conn.total_changes
            self.db.conn.executemany(
                "insert or ignore into events (run_id, seq, kind, t, received_at, body)"
                " values (?, ?, ?, ?, ?, ?)",
                rows,
            )
            return self.db.conn.total_changes - before

    def count_events(self, run_id: str, kind: str) -> int:
        cursor = self.db.execute(
            "select count(*) from events where run_id = ? and kind = ?", [run_id, kind]
        )
        return int(cursor.fetchone()[0])

    def known_seqs(self, run_id: str, seq_from: int, seq_to: int) -> set[int]:
        cursor = self.db.execute(
            "select seq from events where run_id = ? and seq between ? and ?",
            [run_id, seq_from, seq_to],
        )
        return {seq for (seq,) in cursor}

    def contiguous_seq(self, run_id: str, acked_seq: int) -> int:
        """The highest seq such that every seq up to it is stored."""
        cursor = self.db.execute(
            "select seq from events where run_id = ? and seq > ? order by seq",
            [run_id, acked_seq],
        )
        for (seq,) in cursor:
            if seq != acked_seq + 1:
                break
            acked_seq = seq
        return acked_seq

    def events(
        self, run_id: str, kinds: Iterable[str]
    ) -> Iterator[tuple[str, float, dict[str, Any]]]:
        kinds = list(kinds)
        marks = ",".join("?" for _ in kinds)
        cursor = self.db.execute(
            f"select kind, t, body from events where run_id = ? and kind in ({marks}) order by seq",
            [run_id, *kinds],
        )
        for kind, t, body in cursor:
            # pydantic-core's parser: 0.9 µs for a step's body where json.loads takes 4.4;
            # a trigger check parses every event of the run, once a minute.
            yield kind, t, pydantic_core.from_json(body)

    def step_times(
        self, run_id: str
    ) -> tuple[list[tuple[int, float]], list[tuple[str, str, float]]]:
        """A run's (step, t) rows and (phase, edge, t) marks, in seq order, for the
        estimate. SQLite takes the fields out of the JSON: on a ten-hour run (36,000
        steps) that read took 240 ms parsing each body in Python."""
        steps: list[tuple[int, float]] = []
        marks: list[tuple[str, str, float]] = []
        cursor = self.db.execute(
            "select kind, t, iif(kind = 'step', json_extract(body, '$.step'), null),"
            " iif(kind = 'phase', json_extract(body, '$.phase'), null),"
            " iif(kind = 'phase', json_extract(body, '$.edge'), null)"
            " from events where run_id = ? and kind in ('step', 'phase') order by seq",
            [run_id],
        )
        for kind, t, step, phase, edge in cursor:
            if kind == "step":
                steps.append((step, t))
            else:
                marks.append((phase, edge, t))
        return steps, marks

    def events_between(
        self, run_id: str, after_seq: int, upto_seq: int
    ) -> Iterator[tuple[str, float, dict[str, Any]]]:
        """Events with ``after_seq < seq <= upto_seq``, in seq order (a range of the key)."""
        cursor = self.db.execute(
            "select kind, t, body from events where run_id = ? and seq > ? and seq <= ?"
            " order by seq",
            [run_id, after_seq, upto_seq],
        )
        for kind, t, body in cursor:
            yield kind, t, pydantic_core.from_json(body)

    # --- commands and decisions -----------------------------------------------------

    def add_command(self, command: CommandRecord) -> None:
        with self._errors("queueing a command"):
            self.db.table("commands").insert(asdict(command), pk="id")

    def get_command(self, command_id: str) -> CommandRecord | None:
        rows = self._rows("select * from commands where id = ?", command_id)
        return CommandRecord(**rows[0]) if rows else None

    def commands(self, run_id: str, states: Iterable[str]) -> list[CommandRecord]:
        states = list(states)
        marks = ",".join("?" for _ in states)
        rows = self._rows(
            f"select * from commands where run_id = ? and state in ({marks}) order by created_at",
            run_id,
            *states,
        )
        return [CommandRecord(**row) for row in rows]

    def update_command(self, command_id: str, **changes: Any) -> None:
        with self._errors("updating a command"):
            self._update("commands", command_id, changes)

    def add_decision(
        self,
        run_id: str,
        kind: str,
        by: str,
        at: float,
        until: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self._errors("recording a decision"):
            self.db.table("decisions").insert(
                {
                    "run_id": run_id,
                    "kind": kind,
                    "by": by,
                    "at": at,
                    "until": until,
                    "detail": json.dumps(detail or {}),
                }
            )

    def decisions(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("select * from decisions where run_id = ? order by id", run_id)

    # --- kills ----------------------------------------------------------------------

    def add_kill(self, kill: Kill) -> None:
        with self._errors("recording a kill"):
            self.db.table("kills").insert(asdict(kill), pk="id")

    def save_kill(self, kill: Kill, expected_state: str) -> bool:
        """Store ``kill`` only if the stored one is still in ``expected_state``.

        False means someone else moved it first (a second confirm, a replayed button, a
        job racing a report): the caller then acts on nothing.
        """
        row = {k: v for k, v in asdict(kill).items() if k != "id"}
        with self._errors("updating a kill"):
            return self._update("kills", kill.id, row, only_if_state=expected_state) == 1

    def get_kill(self, kill_id: str) -> Kill | None:
        rows = self._rows("select * from kills where id = ?", kill_id)
        return _kill(rows[0]) if rows else None

    def latest_kill(self, run_id: str) -> Kill | None:
        rows = self._rows(
            "select * from kills where run_id = ? order by requested_at desc, rowid desc limit 1",
            run_id,
        )
        return _kill(rows[0]) if rows else None

    def open_kills(self) -> list[Kill]:
        """Kills a restarted bot must carry on with."""
        rows = self._rows(
            "select * from kills where state not in ('done', 'failed', 'cancelled')"
            " order by requested_at"
        )
        return [_kill(row) for row in rows]

    def stopped_instance_kills(self) -> list[Kill]:
        """Kills that left an instance stopped: its disk bills until someone destroys it."""
        rows = self._rows(
            "select * from kills where state = 'done' and on_kill = 'stop' order by requested_at"
        )
        return [_kill(row) for row in rows]

    # --- health ---------------------------------------------------------------------

    def check(self) -> None:
        """Raise `StoreError` unless the file can be read and written now."""
        with self._errors("checking health"), self.db.atomic():
            self.db.execute("select count(*) from runs").fetchone()
            self.db.table("meta").upsert({"key": "health_probe", "value": "ok"}, pk="key")

    def _meta_int(self, key: str) -> int:
        try:
            return int(self.db.table("meta").get(key)["value"])
        except NotFoundError:
            return 0

    # Hot paths are plain SQL: sqlite-utils' Table.get/update/rows_where read the schema
    # (sqlite_master, PRAGMA table_info) on every call, which was most of a post's cost
    # under load (bench/ingest_load.py). Column names below come from our own dataclasses.

    def _rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with self._errors("reading"):
            cursor = self.db.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _update(
        self, table: str, key: str, changes: dict[str, Any], *, only_if_state: str | None = None
    ) -> int:
        """Rows changed: 0 when ``key`` is unknown or its state is not ``only_if_state``."""
        if not changes:
            return 0
        assignments = ", ".join(f"[{name}] = ?" for name in changes)
        where, params = "id = ?", [*changes.values(), key]
        if only_if_state is not None:
            where, params = "id = ? and state = ?", [*params, only_if_state]
        with self.db.atomic():  # commits unless it joins the caller's transaction
            cursor = self.db.execute(f"update [{table}] set {assignments} where {where}", params)
            return int(cursor.rowcount)

    def _errors(self, doing: str) -> AbstractContextManager[None]:
        return _store_errors(doing, self.path)


class _Checkpointer:
    """A daemon thread that checkpoints the WAL; see `SqliteStore.checkpoint_in_background`."""

    def __init__(self, path: Path, every_s: float, restart_frames: int) -> None:
        self.path, self.every_s, self.restart_frames = path, every_s, restart_frames
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(str(self.path))  # made, used and closed on this thread
        failing = False
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            while not self._stop.wait(self.every_s):
                try:
                    _, wal_frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if wal_frames > self.restart_frames:
                        # No waiting: a writer held back while this waits for readers
                        # would sit in SQLite's busy back-off (tens of ms). Busy now means
                        # the frames are copied anyway and the restart is tried next time.
                        conn.execute("PRAGMA busy_timeout = 0")
                        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                        conn.execute("PRAGMA busy_timeout = 5000")
                    failing = False
                except sqlite3.Error as exc:
                    # Full or read-only disk: the writes fail too and /healthz says so;
                    # one line here, then quiet until it works again.
                    if not failing:
                        log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
                    failing = True
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _kill(row: dict[str, Any]) -> Kill:
    return Kill(**{**row, "instance_accepted": bool(row["instance_accepted"])})


@contextmanager
def _store_errors(doing: str, path: Path) -> Iterator[None]:
    """Turn sqlite3 errors into one `StoreError` that says what was being done."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{doing} in {path}: {exc}") from exc


__all__ = [
    "MIGRATIONS",
    "CommandRecord",
    "Kill",
    "RunRecord",
    "SqliteStore",
    "StoreError",
    "StoredEvent",
]
