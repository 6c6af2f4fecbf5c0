"""The bot's HTTP API: auth, validation, idempotency, and the service behind it.

Requests go through httpx's ASGI transport into the real FastAPI app; time is a fake
clock, so the table deadline is tested without waiting for it.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from bot.adapters.store import MIGRATIONS, SqliteStore, StoredEvent, StoreError
from bot.app import App, build
from bot.chat.console import ConsoleChat
from bot.core.estimate import (
    CalibrationSettings,
    RunInputs,
    StepPoint,
    calibrate_throughput,
    estimate_run,
)
from bot.core.render import fmt_usd
from bot.core.schedule import check_phase_s
from bot.service.history import load_run
from tests.conftest import SECRET, FakeClock, make_settings

T0 = 1_700_000_000.0
T = TypeVar("T")


@pytest.fixture
def chat() -> ConsoleChat:
    return ConsoleChat(io.StringIO())


@pytest.fixture
def app(tmp_path: Path, clock: FakeClock, chat: ConsoleChat) -> App:
    return build(make_settings(tmp_path, killers="alice,bob"), chat=chat, clock=clock)


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as c:
        yield c


def registration(name: str = "r1", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "target_steps": 1_000,
        "eval_every": 250,
        "usd_per_hour": 1.8,
        "gpus": [{"name": "NVIDIA GeForce RTX 4090", "count": 1, "vram_mib": 24564}],
        **extra,
    }


async def register(client: httpx.AsyncClient, **kw: Any) -> dict[str, Any]:
    r = await client.post(
        "/v1/runs", json=registration(**kw), headers={"Authorization": f"Bearer {SECRET}"}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def steps(seq_from: int, first_step: int, n: int, t0: float, step_s: float) -> dict[str, Any]:
    events = [
        {
            "kind": "step",
            "seq": seq_from + i,
            "t": t0 + i * step_s,
            "step": first_step + i,
            "loss": 2.0 - 0.001 * i,
        }
        for i in range(n)
    ]
    return {"seq_from": seq_from, "sent_at": t0 + n * step_s, "events": events}


async def post(
    client: httpx.AsyncClient, run: dict[str, Any], body: Any, token: str | None = None
) -> httpx.Response:
    return await client.post(
        f"/v1/runs/{run['run_id']}/events",
        json=body,
        headers={"Authorization": f"Bearer {token or run['run_token']}"},
    )


async def test_register_needs_the_ingest_secret(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/runs", json=registration())
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = await client.post(
        "/v1/runs", json=registration(), headers={"Authorization": "Bearer wrong"}
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    "body",
    [b"{}", b"not json", b'{"name": 7}', b"[" * 5000 + b"]" * 5000, b""],
    ids=["empty-object", "bad-json", "wrong-type", "too-deep", "no-body"],
)
@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", "Basic x"], ids=["none", "wrong", "scheme"]
)
async def test_credentials_are_checked_before_the_body(
    client: httpx.AsyncClient, body: bytes, header: str | None
) -> None:
    """A stranger gets 401 whatever they send: never a 422 listing the schema's fields."""
    run = await register(client)
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Authorization"] = header
    for path in (
        "/v1/runs",
        f"/v1/runs/{run['run_id']}/events",
        f"/v1/runs/{run['run_id']}/commands/c1",
        "/v1/runs/no-such-run/events",
    ):
        r = await client.post(path, content=body, headers=headers)
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert r.json()["error"] == "unauthorized"
        assert "loc" not in r.text and "seq_from" not in r.text


async def test_with_the_right_credentials_a_bad_body_is_explained(
    client: httpx.AsyncClient,
) -> None:
    run = await register(client)
    r = await client.post(
        f"/v1/runs/{run['run_id']}/events",
        json={},
        headers={"Authorization": f"Bearer {run['run_token']}"},
    )
    assert r.status_code == 422 and r.json()["error"] == "invalid_body"
    r = await client.post(
        "/v1/runs",
        content=b"not json",
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"] == "bad_json"


async def test_reregistration_continues_the_same_run(client: httpx.AsyncClient, app: App) -> None:
    first = await register(client, vast={"container_id": "123"})
    again = await register(client, vast={"container_id": "123"})
    other = await register(client, vast={"container_id": "456"})
    assert again["run_id"] == first["run_id"] and again["restarts"] == 1
    assert again["acked_seq"] == 0
    assert other["run_id"] != first["run_id"]
    # the old token stops working: only the restarted reporter may write
    r = await post(client, first, steps(1, 1, 1, T0, 1.0))
    assert r.status_code == 401
    stored = app.store.get_run(first["run_id"])
    assert stored is not None and stored.token_hash != first["run_token"]
    await post(client, again, steps(1, 1, 7, T0, 1.0))
    # a third reporter process learns where the bot's numbering stands
    third = await register(client, vast={"container_id": "123"})
    assert third["acked_seq"] == 7 and third["restarts"] == 2


async def test_tokens_do_not_cross_runs(client: httpx.AsyncClient) -> None:
    a = await register(client, name="a")
    b = await register(client, name="b")
    r = await post(client, a, steps(1, 1, 3, T0, 1.0), token=b["run_token"])
    assert r.status_code == 401
    r = await client.post(
        "/v1/runs/nope/events",
        json=steps(1, 1, 1, T0, 1.0),
        headers={"Authorization": f"Bearer {a['run_token']}"},
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "bad_json"),
        (json.dumps({"seq_from": 1, "sent_at": T0, "events": []}).encode(), 422, "invalid_body"),
        (
            json.dumps(
                {
                    "seq_from": 1,
                    "sent_at": T0,
                    "events": [{"kind": "step", "seq": 2, "t": T0, "step": 1}],
                }
            ).encode(),
            422,
            "invalid_body",
        ),
        (
            json.dumps(
                {
                    "seq_from": 1,
                    "sent_at": T0,
                    "events": [{"kind": "step", "seq": 1, "t": 12.5, "step": 1}],
                }
            ).encode(),
            422,
            "invalid_body",
        ),
        (
            json.dumps(
                {"seq_from": 1, "sent_at": T0, "events": [{"kind": "teleport", "seq": 1, "t": T0}]}
            ).encode(),
            422,
            "invalid_body",
        ),
        (json.dumps(steps(1, 1, 5_001, T0, 0.001)).encode(), 422, "invalid_body"),
    ],
    ids=["bad-json", "empty", "seq-gap", "t-not-unix", "unknown-kind", "oversize-batch"],
)
async def test_bad_batches_get_a_json_4xx(
    client: httpx.AsyncClient, body: bytes, status: int, error: str
) -> None:
    run = await register(client)
    r = await client.post(
        f"/v1/runs/{run['run_id']}/events",
        content=body,
        headers={"Authorization": f"Bearer {run['run_token']}", "Content-Type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert r.json()["error"] == error


async def test_body_over_the_limit_is_refused(
    tmp_path: Path, clock: FakeClock, chat: ConsoleChat
) -> None:
    small = build(make_settings(tmp_path, max_body_bytes=2048), chat=chat, clock=clock)
    transport = httpx.ASGITransport(app=small.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as c:
        run = await register(c)
        r = await post(c, run, steps(1, 1, 100, T0, 1.0))
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"


async def test_duplicate_seqs_are_stored_once(client: httpx.AsyncClient, app: App) -> None:
    run = await register(client)
    body = steps(1, 1, 10, T0, 1.0)
    first = await post(client, run, body)
    again = await post(client, run, body)
    assert first.json()["acked_seq"] == again.json()["acked_seq"] == 10
    overlapping = await post(client, run, steps(6, 6, 10, T0 + 5, 1.0))
    assert overlapping.json()["acked_seq"] == 15
    count = app.store.db.execute("select count(*) from events").fetchone()[0]
    assert count == 15


async def test_out_of_order_batch_acks_only_the_contiguous_part(client: httpx.AsyncClient) -> None:
    run = await register(client)
    later = await post(client, run, steps(11, 11, 5, T0 + 10, 1.0))
    assert later.json()["acked_seq"] == 0
    earlier = await post(client, run, steps(1, 1, 10, T0, 1.0))
    assert earlier.json()["acked_seq"] == 15


async def test_nonfinite_loss_is_carried(client: httpx.AsyncClient, app: App) -> None:
    run = await register(client)
    body = {
        "seq_from": 1,
        "sent_at": T0,
        "events": [
            {"kind": "step", "seq": 1, "t": T0, "step": 1, "loss": "nan"},
            {"kind": "step", "seq": 2, "t": T0 + 1, "step": 2, "loss": "-inf"},
        ],
    }
    assert (await post(client, run, body)).status_code == 200
    losses = [b["loss"] for _, _, b in app.store.events(run["run_id"], ["step"])]
    assert losses == ["nan", "-inf"]


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"ok": True}
    run = await register(client)
    await post(client, run, steps(1, 1, 3, T0, 1.0))
    text = (await client.get("/metrics")).text
    assert "probecast_events_received_total 3" in text
    assert "probecast_runs_registered_total 1" in text


async def test_health_fails_when_the_database_is_read_only(
    app: App, client: httpx.AsyncClient
) -> None:
    app.store.db.execute("PRAGMA query_only = ON")
    r = await client.get("/healthz")
    assert r.status_code == 503 and r.json()["error"] == "store_unavailable"


async def test_table_posts_when_the_probe_completes(
    client: httpx.AsyncClient, app: App, clock: FakeClock, chat: ConsoleChat
) -> None:
    run = await register(client)
    clock.now = T0 + 15
    await post(client, run, steps(1, 1, 10, T0, 0.5))
    assert not await app.service.post_table(run["run_id"])  # 9 clean steps: not yet
    clock.now = T0 + 30
    await post(client, run, steps(11, 11, 20, T0 + 5, 0.5))
    assert await app.service.post_table(run["run_id"])
    assert not await app.service.post_table(run["run_id"])  # exactly once
    tables = [card for action, _, card in chat.transcript if card.kind == "table"]
    assert len(tables) == 1
    # the numbers are the core's, computed here from the same steps
    points = [StepPoint(1 + i, T0 + i * 0.5) for i in range(30)]
    est = estimate_run(
        calibrate_throughput(points, settings=CalibrationSettings()),
        RunInputs(1_000, 250, 1.8, setup_s=0.0),
        origin_s=T0,
    )
    assert est is not None
    row = dict(zip(tables[0].table.columns, tables[0].table.rows[0], strict=True))  # type: ignore[union-attr]
    assert row["step/s"] == "2 (observed)"
    assert fmt_usd(est.live_cost_usd("base")) in row["cost (opt/base/pess)"]
    assert row["decision"] == "stay" or row["decision"].startswith("switch to ")


async def test_table_posts_at_the_deadline_with_what_is_missing(
    client: httpx.AsyncClient, app: App, clock: FakeClock, chat: ConsoleChat
) -> None:
    run = await register(client)
    clock.now = T0 + 5
    await post(client, run, steps(1, 1, 5, T0, 1.0))
    # the deadline runs on the bot's clock from when the first event arrived (T0 + 5)
    clock.now = T0 + 604
    assert not await app.service.post_table(run["run_id"])
    clock.now = T0 + 605
    assert await app.service.post_table(run["run_id"])
    card = [c for _, _, c in chat.transcript if c.kind == "table"][0]
    assert any("probe not complete: 4 of 20 clean steps" in n for n in card.notes)


async def test_kill_asks_then_queues_once_and_reaches_the_reporter(
    client: httpx.AsyncClient, app: App, clock: FakeClock
) -> None:
    run = await register(client)
    clock.now = T0 + 40
    await post(client, run, steps(1, 1, 30, T0, 1.0))
    await app.service.handle_command("/kill r1", "mallory")  # may ask, may not confirm
    ack = await post(client, run, steps(31, 31, 1, T0 + 30.5, 1.0))
    assert ack.json()["poll_s"] is None  # so the reporter is not kept polling fast
    ask = await app.service.handle_command("/kill r1", "alice")
    assert ask.title == "Kill r1?" and "confirm" in ask.notes[0]
    ack = await post(client, run, steps(31, 31, 1, T0 + 31, 1.0))
    assert ack.json()["commands"] == []  # nothing happens before confirmation
    assert ack.json()["poll_s"] == 2.0  # but the reporter asks more often from now on
    await app.service.handle_command("/kill r1 confirm", "alice")
    again = await app.service.handle_command("/kill r confirm", "bob")  # prefix, 2nd click
    assert "already confirmed by alice" in again.headline
    ack = await post(client, run, steps(32, 32, 1, T0 + 32, 1.0))
    commands = ack.json()["commands"]
    assert [c["kind"] for c in commands] == ["kill"]
    r = await client.post(
        f"/v1/runs/{run['run_id']}/commands/{commands[0]['id']}",
        json={"state": "done", "detail": "SIGTERM sent", "t": T0 + 33},
        headers={"Authorization": f"Bearer {run['run_token']}"},
    )
    assert r.status_code == 200
    assert app.store.commands(run["run_id"], ["done"])[0].detail == "SIGTERM sent"
    kinds = [d["kind"] for d in app.store.decisions(run["run_id"])]
    # No Vast instance id: the kill is done once the process is, and says what still bills.
    assert kinds == ["kill-request", "kill-request", "kill-confirm", "kill-done"]  # mallory, alice
    kill = app.store.latest_kill(run["run_id"])
    assert (
        kill is not None
        and kill.state == "done"
        and "stop the machine by hand" in str(kill.instance_result)
    )
    polled = await client.get(
        f"/v1/runs/{run['run_id']}/commands",
        headers={"Authorization": f"Bearer {run['run_token']}"},
    )
    assert polled.json() == {"acked_seq": 32, "commands": [], "poll_s": None}


async def test_keep_and_usage_answers(client: httpx.AsyncClient, app: App) -> None:
    run = await register(client)
    kept = await app.service.handle_command("/keep r1 90m", "carol")
    assert "1h 30m" in kept.headline
    decision = app.store.decisions(run["run_id"])[0]
    assert decision["kind"] == "keep" and decision["by"] == "carol"
    assert decision["until"] - decision["at"] == pytest.approx(5400)
    for text, expected in [
        ("/keep r1 soon", "not a duration"),
        ("/kill", "which run"),
        ("/probecast table", "usage"),
        ("/keep zz", "no run named"),
        ("/frobnicate", "unknown command"),
    ]:
        answer = await app.service.handle_command(text, "carol")
        assert expected in answer.headline, text


async def test_restart_rebuilds_schedules_from_the_database(
    tmp_path: Path, clock: FakeClock, chat: ConsoleChat
) -> None:
    first = build(make_settings(tmp_path), chat=chat, clock=clock)
    transport = httpx.ASGITransport(app=first.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as c:
        run = await register(c)
        await post(c, run, steps(1, 1, 5, T0, 1.0))
    first.store.close()
    second = build(make_settings(tmp_path), chat=chat, clock=clock)
    assert second.service.resume() == 1
    assert second.jobs.job_ids() == [
        f"check:{run['run_id']}",
        f"checkin:{run['run_id']}",
        f"table:{run['run_id']}",
    ]
    stored = second.store.get_run(run["run_id"])
    assert stored is not None and stored.acked_seq == 5
    # The periodic check keeps its phase: first due at now + the run's own offset.
    phase_s = check_phase_s(run["run_id"], second.service.settings.check_interval_s)
    trigger = second.jobs.scheduler.get_job(f"check:{run['run_id']}").trigger
    assert trigger.start_date.timestamp() == pytest.approx(clock() + phase_s)


def test_check_phases_spread_runs_registered_together_over_the_interval() -> None:
    interval_s = 60.0
    phases = [check_phase_s(f"run-{i}", interval_s) for i in range(1_000)]
    assert all(0 < p <= interval_s for p in phases)
    assert check_phase_s("run-7", interval_s) == phases[7]  # the same after a restart
    per_6_s = [sum(1 for p in phases if k * 6 < p <= (k + 1) * 6) for k in range(10)]
    assert max(per_6_s) < 2 * 100, per_6_s  # no second of the minute gets them all


def test_background_checkpoints_copy_the_wal_off_the_writers_thread(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "x.db")
    store.migrate()
    store.checkpoint_in_background(every_s=0.02)
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    main_file = tmp_path / "x.db"
    before = main_file.stat().st_size
    body = json.dumps({"step": 1, "loss": 2.0, "note": "x" * 200})
    for batch in range(10):
        events = [StoredEvent(batch * 500 + i, "step", 1.0, 1.0, body) for i in range(1, 501)]
        with store.transaction():
            store.add_events("r", events)
    # With SQLite's own checkpoints off, only the thread can have moved these pages
    # from the WAL into the database file.
    deadline = time.monotonic() + 20
    while main_file.stat().st_size < before + 1_000_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert main_file.stat().st_size >= before + 1_000_000
    store.close()
    assert not [t for t in threading.enumerate() if t.name == "sqlite-checkpoint"]
    reopened = SqliteStore(tmp_path / "x.db")
    assert reopened.count_events("r", "step") == 5_000
    assert reopened.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    reopened.close()


def test_the_wal_stays_bounded_under_writes_that_never_pause(tmp_path: Path) -> None:
    """A PASSIVE checkpoint never catches up with a writer that never stops, and SQLite
    starts the WAL over only after a complete one: the file grew to 258 MB in eight
    minutes of the 1,000-run load. Past ``restart_frames`` the thread restarts it."""
    store = SqliteStore(tmp_path / "x.db")
    store.migrate()
    store.checkpoint_in_background(every_s=0.01, restart_frames=400)
    wal = tmp_path / "x.db-wal"
    body = json.dumps({"step": 1, "loss": 2.0, "note": "x" * 200})
    largest = 0
    seq = 0
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:  # small commits back to back, as posts arrive
        events = [StoredEvent(seq + i, "step", 1.0, 1.0, body) for i in range(1, 21)]
        seq += 20
        with store.transaction():
            store.add_events("r", events)
        largest = max(largest, wal.stat().st_size if wal.exists() else 0)
        time.sleep(0.001)  # the next post
    written = (tmp_path / "x.db").stat().st_size
    store.close()
    assert seq > 5_000
    # 400 frames of 4 KiB, plus what arrives while a truncate waits its turn
    assert largest < 6_000_000, (largest, written)
    reopened = SqliteStore(tmp_path / "x.db")
    assert reopened.count_events("r", "step") == seq
    assert reopened.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    reopened.close()


def test_store_schema_is_versioned(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "x.db")
    assert store.migrate() == 0
    assert store.migrate() == 8
    assert {"trigger_memory", "alert_states", "instance_track", "attempt_of", "attempt"} <= set(
        store.db.table("runs").columns_dict
    )
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrating_to_clustered_events_keeps_every_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Schema 5 rebuilds the events table clustered by (run_id, seq): a database from
    before keeps every event, in order, and its duplicate protection."""
    store = SqliteStore(tmp_path / "x.db")
    store.db.table("meta").create({"key": str, "value": str}, pk="key")
    for migration in MIGRATIONS[:4]:
        migration(store.db)
    store.db.table("meta").insert({"key": "schema_version", "value": "4"})
    for run_id in ("b", "a"):
        for seq in range(1, 301):
            kind = "sample" if seq % 10 == 0 else "step"
            store.db.table("events").insert(
                dict(run_id=run_id, seq=seq, kind=kind, t=seq, received_at=seq, body="{}")
            )
    assert store.migrate() == 4
    assert "rebuilding the events table" in caplog.text  # start-up says why it waits
    sql = store.db.execute("select sql from sqlite_master where name = 'events'").fetchone()[0]
    assert "without rowid" in sql.lower()
    assert store.count_events("a", "step") == 270 and store.count_events("b", "sample") == 30
    assert [t for _, t, _ in store.events_between("a", 0, 300)] == list(range(1, 301))
    again = StoredEvent(seq=5, kind="step", t=5.0, received_at=5.0, body="{}")
    assert store.add_events("a", [again]) == 0
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


def test_a_reader_reads_beside_the_writer_and_cannot_write(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "x.db")
    store.migrate()
    body = json.dumps({"step": 1})
    store.add_events("a", [StoredEvent(seq=1, kind="step", t=1.0, received_at=1.0, body=body)])
    reader = SqliteStore.reader(tmp_path / "x.db")
    assert reader.step_times("a") == store.step_times("a") == ([(1, 1.0)], [])
    again = StoredEvent(seq=2, kind="step", t=2.0, received_at=2.0, body=body)
    with pytest.raises(StoreError, match="readonly"):
        reader.add_events("a", [again])
    assert store.add_events("a", [again]) == 1  # the writer is not held up by the reader
    assert reader.step_times("a")[0] == [(1, 1.0), (1, 2.0)]
    reader.close()
    store.close()


async def _ticks_while(work: Awaitable[T]) -> tuple[T, int]:
    """``work``'s result, and how often another task ran on the loop while it did."""
    ticks, done = 0, False

    async def tick() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    result = await work
    done = True
    await ticker
    return result, ticks


async def test_a_long_runs_history_is_read_off_the_event_loop(
    tmp_path: Path, clock: FakeClock, chat: ConsoleChat
) -> None:
    """Past ``history_off_loop_events`` a snapshot reads and calibrates the steps on a
    worker thread, so the loop goes on answering; the figures are the same."""
    app = build(make_settings(tmp_path, history_off_loop_events=500), chat=chat, clock=clock)
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        long, short = await register(client, name="long"), await register(client, name="short")
        for batch in range(3):  # 600 events: over the line
            clock.now = T0 + 100 * (batch + 1)  # sent as the batch ends: no clock skew
            first = 1 + 200 * batch
            await post(client, long, steps(first, first, 200, T0 + 100 * batch, 0.5))
            if batch == 0:
                await post(client, short, steps(1, 1, 200, T0, 0.5))  # 200 events: under it
    for run_id, off_loop in ((long["run_id"], True), (short["run_id"], False)):
        run = app.store.get_run(run_id)
        assert run is not None
        snap, ticks = await _ticks_while(app.service.read_snapshot(run))
        assert (ticks > 0) is off_loop, (run.name, ticks)
        assert snap.estimate is not None
        assert snap.estimate == app.service.snapshot(run).estimate  # read on this thread
    long_snap = app.service.snapshot(app.store.get_run(long["run_id"]))  # type: ignore[arg-type]
    assert long_snap.estimate is not None
    assert long_snap.estimate.calibration.step_time_s == pytest.approx(0.5)
    app.store.close()


async def test_memory_controller_utilisation_reaches_the_checks(
    client: httpx.AsyncClient, app: App, clock: FakeClock
) -> None:
    run = await register(client)
    assert run["settings"]["schema_version"] >= 2  # reporters may send wire version 2 fields
    clock.now = T0
    gpu = {"index": 0, "util_pct": 97, "mem_util_pct": 91, "vram_used_mib": 20_000}

    def sample(seq: int, gpu: dict[str, Any]) -> dict[str, Any]:
        event = {"kind": "sample", "seq": seq, "t": T0, "gpus": [gpu]}
        return {"seq_from": seq, "sent_at": T0, "events": [event]}

    assert (await post(client, run, sample(1, gpu))).status_code == 200
    refused = await post(client, run, sample(2, {**gpu, "mem_util_pct": 101}))
    assert refused.status_code == 422  # a percentage, or refused
    stored = app.store.get_run(run["run_id"])
    assert stored is not None
    (reading,) = load_run(app.store, stored, post_interval_s=1.0).history.gpus
    assert (reading.util_pct, reading.mem_util_pct) == (97.0, 91.0)


async def test_a_reporter_clock_ahead_keeps_step_spacing(
    client: httpx.AsyncClient, app: App, clock: FakeClock
) -> None:
    run = await register(client)
    clock.now = T0 + 20 - 1.5  # the reporter's clock runs 1.5 s ahead of ours
    await post(client, run, steps(1, 1, 30, T0 - 10, 0.5))
    snap = app.service.snapshot(app.store.get_run(run["run_id"]))  # type: ignore[arg-type]
    assert snap.estimate is not None
    assert snap.estimate.calibration.step_time_s == pytest.approx(0.5)


async def test_a_reporter_clock_behind_is_moved_onto_ours(
    client: httpx.AsyncClient, app: App, clock: FakeClock
) -> None:
    run = await register(client)
    clock.now = T0 + 20 + 300  # the reporter's clock runs 5 minutes behind ours
    await post(client, run, steps(1, 1, 30, T0 - 10, 0.5))  # sent at T0 + 5 on its clock
    stored = [t for _, t, _ in app.store.events(run["run_id"], ["step"])]
    assert stored[-1] == pytest.approx(clock.now - 0.5)  # the last step, just before sending
    assert stored[1] - stored[0] == pytest.approx(0.5)


async def test_a_resent_batch_repeats_no_side_effect(
    client: httpx.AsyncClient, app: App, chat: ConsoleChat
) -> None:
    run = await register(client)
    exit_only = {
        "seq_from": 2,
        "sent_at": T0,
        "events": [{"kind": "exit", "seq": 2, "t": T0, "return_code": 0}],
    }
    await post(client, run, exit_only)
    await post(client, run, exit_only)
    assert app.jobs.job_ids().count(f"final:{run['run_id']}") == 1
    assert app.store.get_run(run["run_id"]).state == "finished"  # type: ignore[union-attr]


async def test_a_rerun_after_exit_is_the_next_attempt(client: httpx.AsyncClient, app: App) -> None:
    run = await register(client, vast={"container_id": "9"})
    await post(
        client,
        run,
        {
            "seq_from": 1,
            "sent_at": T0,
            "events": [{"kind": "exit", "seq": 1, "t": T0, "return_code": 1}],
        },
    )
    assert app.store.get_run(run["run_id"]).state == "failed"  # type: ignore[union-attr]
    again = await register(client, vast={"container_id": "9"}, target_steps=5_000)
    # issue 25: a rerun after the exit is the job's next attempt, a run of its own
    assert again["run_id"] != run["run_id"] and again["restarts"] == 0
    stored = app.store.get_run(again["run_id"])
    assert stored is not None and stored.active and stored.target_steps == 5_000
    assert stored.return_code is None
    assert stored.attempt == 2 and stored.attempt_of == run["run_id"]
    first = app.store.get_run(run["run_id"])
    assert first is not None and first.state == "failed"  # the earlier attempt stays as it was


async def test_a_reporter_clock_about_a_minute_behind_does_not_flip_between_batches(
    client: httpx.AsyncClient, app: App, clock: FakeClock
) -> None:
    run = await register(client)
    stored: list[float] = []
    for i, latency in enumerate((0.5, 0.1, 0.4, 0.2)):  # jitter around a 59.8 s lag
        t0 = T0 + 100 + 10 * i
        clock.now = t0 + 5 + 59.8 + latency
        body = steps(1 + 5 * i, 1 + 5 * i, 5, t0, 1.0)
        body["sent_at"] = t0 + 5
        assert (await post(client, run, body)).status_code == 200
    stored = [t for _, t, _ in app.store.events(run["run_id"], ["step"])]
    gaps = [b - a for a, b in zip(stored, stored[1:], strict=False)]
    assert all(0 < gap < 7 for gap in gaps), gaps  # no step goes back in time
