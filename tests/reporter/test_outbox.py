"""The durable outbox: nothing is lost across bot outages, reporter restarts or a full disk."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import time
from pathlib import Path
from typing import Any

from bot.app import build, start_server
from bot.chat.console import ConsoleChat
from reporter.outbox import Outbox
from reporter.probe import Probe
from tests.conftest import SECRET, make_settings

T0 = 1_700_000_000.0


def step(n: int) -> dict[str, Any]:
    return {"kind": "step", "t": T0 + n, "step": n, "loss": 1.0 / n}


def sample(n: int) -> dict[str, Any]:
    return {"kind": "sample", "t": T0 + n, "gpus": [], "host": {"cpu_pct": float(n)}}


def exit_event(n: int) -> dict[str, Any]:
    return {"kind": "exit", "t": T0 + n, "return_code": 0}


def kinds(outbox: Outbox) -> list[tuple[str, int | None]]:
    events = outbox.batch(10_000)
    return [(e.kind, getattr(e, "step", None)) for e in events]


class Warnings:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, key: str, message: str) -> None:
        self.seen.append((key, message))

    def codes(self) -> list[str]:
        return [key for key, _ in self.seen]


def test_seqs_are_given_once_and_kept_for_every_resend(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "spool.sqlite")
    outbox.bind("run-a", acked_seq=0)
    outbox.put([step(n) for n in range(1, 6)])
    first = outbox.batch(3)
    assert [e.seq for e in first] == [1, 2, 3]
    assert [e.seq for e in outbox.batch(3)] == [1, 2, 3]  # a resend, same numbers
    assert [e.seq for e in outbox.batch(10)] == [1, 2, 3, 4, 5]
    outbox.ack(3)
    assert outbox.pending == 2 and outbox.acked_seq == 3
    assert [(e.seq, e.step) for e in outbox.batch(10)] == [(4, 4), (5, 5)]  # type: ignore[union-attr]


def test_a_reopened_spool_resumes_its_numbering(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    outbox = Outbox(path)
    outbox.bind("run-a", acked_seq=10)
    outbox.put([step(n) for n in range(1, 5)])
    assert [e.seq for e in outbox.batch(2)] == [11, 12]  # sent, answer lost
    outbox.close()

    again = Outbox(path)
    again.bind("run-a", acked_seq=11)  # the bot stored 11 before the process died
    assert [(e.seq, e.step) for e in again.batch(10)] == [  # type: ignore[union-attr]
        (12, 2),
        (13, 3),
        (14, 4),
    ]


def test_a_spool_for_another_run_id_is_renumbered(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    outbox = Outbox(path)
    outbox.bind("run-a", acked_seq=0)
    outbox.put([step(1), step(2)])
    assert [e.seq for e in outbox.batch(10)] == [1, 2]
    outbox.close()
    fresh = Outbox(path)
    fresh.bind("run-b", acked_seq=7)  # the bot's database was reset: a new run id
    assert [e.seq for e in fresh.batch(10)] == [8, 9]


def test_an_ack_beyond_what_we_sent_renumbers_after_it() -> None:
    outbox = Outbox(None)
    outbox.bind("run-a", acked_seq=0)
    outbox.put([step(1), step(2)])
    assert [e.seq for e in outbox.batch(10)] == [1, 2]
    outbox.ack(40)  # an earlier process already used 1..40: ours were ignored
    assert outbox.pending == 2
    assert [e.seq for e in outbox.batch(10)] == [41, 42]


def test_a_refused_batch_is_dropped_and_the_rest_renumbered() -> None:
    outbox = Outbox(None)
    outbox.bind("run-a", acked_seq=5)
    outbox.put([step(n) for n in range(1, 6)])
    assert [e.seq for e in outbox.batch(2)] == [6, 7]
    outbox.refuse(6, 7)
    assert outbox.dropped == 2
    assert [(e.seq, e.step) for e in outbox.batch(10)] == [  # type: ignore[union-attr]
        (6, 3),
        (7, 4),
        (8, 5),
    ]


def test_thinning_takes_samples_first_then_every_other_old_step() -> None:
    warnings = Warnings()
    outbox = Outbox(None, max_events=8, warn=warnings)
    outbox.bind("run-a", acked_seq=0)
    outbox.put([sample(1), step(1), sample(2), step(2), sample(3)])
    outbox.put([step(n) for n in range(3, 9)] + [exit_event(9)])
    assert outbox.pending == 8 and outbox.dropped == 4
    # All three samples go first; then the oldest of every two old steps.
    assert kinds(outbox) == [("step", n) for n in range(2, 9)] + [("exit", None)]
    assert "spool-thinned" in warnings.codes()


def test_thinning_spreads_the_loss_over_old_samples() -> None:
    outbox = Outbox(None, max_events=6)
    outbox.bind("run-a", acked_seq=0)
    outbox.put([sample(n) for n in range(1, 9)])
    kept = [e.host.cpu_pct for e in outbox.batch(100)]  # type: ignore[union-attr]
    assert kept == [2.0, 4.0, 5.0, 6.0, 7.0, 8.0]


def test_numbered_events_are_never_thinned() -> None:
    outbox = Outbox(None, max_events=3)
    outbox.bind("run-a", acked_seq=0)
    outbox.put([step(1), step(2), step(3)])
    assert [e.seq for e in outbox.batch(10)] == [1, 2, 3]  # in flight
    outbox.put([step(4), step(5)])
    assert [e.seq for e in outbox.batch(10)] == [1, 2, 3]  # the new ones made room
    assert outbox.dropped == 2


def test_a_full_disk_moves_the_spool_into_memory_without_losing_events(
    tmp_path: Path,
) -> None:
    def tiny_disk(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA max_page_count = 12")  # SQLite's own "database or disk is full"
        return conn

    warnings = Warnings()
    outbox = Outbox(tmp_path / "spool.sqlite", warn=warnings, connect=tiny_disk)
    outbox.bind("run-a", acked_seq=0)
    for n in range(1, 2_001):
        outbox.put([step(n)])
    assert not outbox.on_disk
    assert "spool-full" in warnings.codes()
    assert "full" in dict(warnings.seen)["spool-full"]
    assert [e.step for e in outbox.batch(5_000)] == list(range(1, 2_001))  # type: ignore[union-attr]
    assert outbox.dropped == 0


def test_a_spool_that_cannot_be_opened_works_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool's folder should be")
    warnings = Warnings()
    outbox = Outbox(blocker / "spool.sqlite", warn=warnings)
    outbox.bind("run-a", acked_seq=0)
    outbox.put([step(1)])
    assert not outbox.on_disk and warnings.codes() == ["spool-open"]
    assert [e.seq for e in outbox.batch(10)] == [1]


def test_an_emptied_spool_removes_its_file(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    outbox = Outbox(path)
    outbox.bind("run-a", acked_seq=0)
    outbox.put([step(1)])
    outbox.ack(max(e.seq for e in outbox.batch(10)))
    outbox.close(remove_if_empty=True)
    assert not path.exists()


# --- over HTTP: the real reporter against the real bot --------------------------------


async def wait_until(predicate: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_a_bot_outage_and_a_reporter_restart_lose_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    """The bot goes down mid-run; the reporter process dies while it is down; both return."""
    settings = make_settings(tmp_path, table_deadline_s=600, checkin_interval_s=3600)
    app = build(settings, chat=ConsoleChat(io.StringIO()))
    server = await start_server(app)
    port = int(server.url.rsplit(":", 1)[1])
    spool = tmp_path / "spool.sqlite"

    def probe() -> Probe:
        return Probe(
            "outage",
            target_steps=1_000,
            url=server.url,
            ingest_secret=SECRET,
            post_interval_s=0.05,
            spool=spool,
            environ={},
        )

    first = probe()
    for n in range(1, 21):
        first.step(n, loss=1.0)
    await wait_until(lambda: first.acked_seq >= 20)
    await server.stop()  # the bot is down

    for n in range(21, 61):
        first.step(n, loss=1.0)
    # The reporter process ends while the bot is away: its events stay in the spool.
    assert await asyncio.to_thread(first.close, 0, 0.5) is False
    assert spool.exists()

    app.store.close()
    app = build(settings, chat=ConsoleChat(io.StringIO()))
    server = await start_server(app, port=port)  # the bot returns, same database
    try:
        second = probe()
        for n in range(61, 71):
            second.step(n, loss=1.0)
        assert await asyncio.to_thread(second.close, 0, 20)
        run = app.store.list_runs()[0]
        steps = [int(body["step"]) for _, _, body in app.store.events(run.id, ["step"])]
        assert steps == list(range(1, 71))  # each once, in order
        exits = list(app.store.events(run.id, ["exit"]))
        assert len(exits) == 2  # the first process's exit, then the second's
        assert not spool.exists()  # delivered, so the spool is gone
    finally:
        await server.stop()
        app.store.close()
