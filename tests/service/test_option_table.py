"""The bot posts the full option table for a run on an RTX 4090: alternatives priced from
the catalog's reference prices, or from a (loopback) Vast API when a key is set."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import App, build
from bot.chat.console import ConsoleChat
from tests.conftest import SECRET, SHARED, FakeClock, make_settings
from tests.fake_vast import FAKE_KEY, FakeVast

T0 = 1_700_000_000.0
GPU_4090 = {"name": "NVIDIA GeForce RTX 4090", "count": 1, "vram_mib": 24564}


async def run_on_a_4090(app: Any, clock: FakeClock) -> str:
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        registered = (
            await client.post(
                "/v1/runs",
                json={
                    "name": "llm",
                    "target_steps": 20_000,
                    "usd_per_hour": 0.40,
                    "gpus": [GPU_4090],
                },
                headers={"Authorization": f"Bearer {SECRET}"},
            )
        ).json()
        clock.now = T0 + 60
        events: list[dict[str, Any]] = [
            {"kind": "step", "seq": i, "t": T0 + i * 0.5, "step": i, "loss": 3 - i / 100}
            for i in range(1, 101)
        ]
        events.append(
            {
                "kind": "sample",
                "seq": 101,
                "t": T0 + 50,
                "gpus": [
                    {
                        "index": 0,
                        "util_pct": 97,
                        "mem_util_pct": 91,
                        "vram_used_mib": 14_000,
                        "vram_total_mib": 24_564,
                        "vram_peak_mib": 15_000,
                    }
                ],
            }
        )
        response = await client.post(
            f"/v1/runs/{registered['run_id']}/events",
            json={"seq_from": 1, "sent_at": clock.now, "events": events},
            headers={"Authorization": f"Bearer {registered['run_token']}"},
        )
        assert response.status_code == 200, response.text
    return str(registered["run_id"])


class StepPoster:
    """A 2,000-step run registered on the bot, and its steps posted as the reporter
    would, step i at ``at(i)`` (the clock moves to a second after the last one)."""

    def __init__(self, client: httpx.AsyncClient, clock: FakeClock, at: Callable[[int], float]):
        self.client, self.clock, self.at = client, clock, at
        self.run_id, self.token = "", ""

    async def register(self) -> str:
        registered = (
            await self.client.post(
                "/v1/runs",
                json={"name": "llm", "target_steps": 2_000, "usd_per_hour": 0.40},
                headers={"Authorization": f"Bearer {SECRET}"},
            )
        ).json()
        self.run_id, self.token = registered["run_id"], registered["run_token"]
        return self.run_id

    async def send(self, first: int, last: int) -> None:
        self.clock.now = self.at(last) + 1
        await self.post(
            [{"kind": "step", "seq": i, "t": self.at(i), "step": i} for i in range(first, last + 1)]
        )

    async def post(self, events: list[dict[str, Any]]) -> None:
        response = await self.client.post(
            f"/v1/runs/{self.run_id}/events",
            json={"seq_from": events[0]["seq"], "sent_at": self.clock.now, "events": events},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.text


@asynccontextmanager
async def bot_with_a_run(
    tmp_path: Path, clock: FakeClock, at: Callable[[int], float]
) -> AsyncIterator[tuple[App, ConsoleChat, StepPoster]]:
    """The bot on a console chat, and one registered run posting step i at ``at(i)``."""
    chat = ConsoleChat(io.StringIO())
    app = build(make_settings(tmp_path), chat=chat, clock=clock)
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        run = StepPoster(client, clock, at)
        await run.register()
        yield app, chat, run


def posted_table(chat: ConsoleChat) -> Any:
    (card,) = [c for action, _, c in chat.transcript if c.kind == "table"]
    return card


async def test_the_table_for_a_4090_run_lists_priced_predicted_alternatives(
    tmp_path: Path, clock: FakeClock
) -> None:
    attachments = tmp_path / "attachments"
    attachments.mkdir()
    chat = ConsoleChat(io.StringIO(), attachments_dir=attachments)
    app = build(make_settings(tmp_path), chat=chat, clock=clock)
    run_id = await run_on_a_4090(app, clock)
    assert await app.service.post_table(run_id)

    card = posted_table(chat)
    assert card.table is not None and len(card.table.rows) > 3
    rows = [dict(zip(card.table.columns, row, strict=True)) for row in card.table.rows]
    assert rows[0]["GPU option"] == "1× NVIDIA GeForce RTX 4090 (this run)"
    assert rows[0]["step/s"] == "2 (observed)"
    assert all(r["step/s"].endswith("(predicted)") for r in rows[1:])
    # no alternative without room for the 15 GB the run peaked at
    assert not any(r["GPU option"].startswith(("1× RTX 3070 ", "1× RTX 3080 ")) for r in rows)
    assert len(card.fields) == 3  # this run and the two best alternatives, one line each
    assert all(len(f.value) < 200 for f in card.fields)
    # the GPU is busy and so is its memory controller: the card says which rows may be off
    assert any(n.startswith("This run keeps the memory controller 91% busy") for n in card.notes)

    table_csv = list(csv.DictReader(io.StringIO((attachments / "options.csv").read_text())))
    assert [r["gpu_option"] for r in table_csv] == [r["GPU option"] for r in rows]
    assert [r["decision"] for r in table_csv] == [r["decision"] for r in rows]
    assert table_csv[0]["step_per_s"] == "2.0000"
    assert (attachments / "options.png").read_bytes().startswith(b"\x89PNG")
    table = await app.service.option_table(app.service.snapshot(app.store.get_run(run_id)))  # type: ignore[arg-type]
    assert all(r.price_source.startswith("median Vast price, ") for r in table.rows[1:])


@pytest.mark.skipif(not (SHARED / "vast").is_dir(), reason="needs ../shared/vast (real offers)")
async def test_with_a_vast_key_alternatives_are_live_offers(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeVast.from_shared(SHARED / "vast")
    url = await fake.start()
    try:
        monkeypatch.setenv("VAST_API_KEY", FAKE_KEY)
        monkeypatch.setenv("VAST_API_URL", url)
        chat = ConsoleChat(io.StringIO())
        app = build(make_settings(tmp_path, offer_disk_gb=80), chat=chat, clock=clock)
        run_id = await run_on_a_4090(app, clock)
        table = await app.service.option_table(app.service.snapshot(app.store.get_run(run_id)))  # type: ignore[arg-type]
    finally:
        await fake.stop()
    assert len(table.rows) > 3
    assert all(r.price_source.startswith("Vast offer ") for r in table.rows[1:])
    searches = fake.posted_searches()  # this machine's GPU count, and twice it
    assert [s["num_gpus"] for s in searches] == [{"eq": 1}, {"eq": 2}]
    assert all(s["allocated_storage"] == 80 for s in searches)


async def test_the_table_is_revised_in_place_when_the_pace_moves(
    tmp_path: Path, clock: FakeClock
) -> None:
    # The first 28 steps take 2 s each (a slow start), then the run settles at 0.2 s.
    times = [T0 + 2.0 * i for i in range(29)]
    times += [times[-1] + 0.2 * i for i in range(1, 400)]
    async with bot_with_a_run(tmp_path, clock, lambda i: times[i - 1]) as (app, chat, run):
        run_id, send = run.run_id, run.send

        await send(1, 28)
        assert await app.service.post_table(run_id)
        (posted,) = [(a, ref, c) for a, ref, c in chat.transcript if c.kind == "table"]
        assert posted[0] == "reply" and posted[2].headline.startswith("STAY · whole run")
        assert " at 0.5 step/s" in posted[2].headline

        await send(29, 200)
        clock.now += 60
        assert await app.service.post_table(run_id)
        updates = [(a, ref, c) for a, ref, c in chat.transcript if c.kind == "table"][1:]
        assert [a for a, _, _ in updates] == ["update"]
        _, ref, card = updates[0]
        assert ref == posted[1]  # the table's own message, edited in place
        assert card.notes[0] == "Revised at step 200 (pace 0.5 → 5 step/s)."
        assert " at 5 step/s" in card.headline

        # the pace holds: nothing more to revise
        clock.now += 60
        await send(201, 300)
        assert not await app.service.post_table(run_id)


async def test_a_revised_total_rebuilds_the_table(tmp_path: Path, clock: FakeClock) -> None:
    # The reporter learns the run is 3 epochs of the 2,000 steps it registered with.
    async with bot_with_a_run(tmp_path, clock, lambda i: T0 + 0.5 * i) as (app, chat, run):
        run_id = run.run_id
        await run.send(1, 100)
        assert await app.service.post_table(run_id)
        assert not await app.service.post_table(run_id)  # nothing moved

        clock.now = T0 + 0.5 * 101 + 1
        await run.post([{"kind": "target", "seq": 101, "t": T0 + 0.5 * 101, "target_steps": 6_000}])
        assert app.store.get_run(run_id).target_steps == 6_000  # type: ignore[union-attr]
        clock.now += 60
        assert await app.service.post_table(run_id)
        _, _, card = [(a, ref, c) for a, ref, c in chat.transcript if c.kind == "table"][-1]
        assert card.notes[0] == "Revised at step 100 (total 2,000 → 6,000 steps)."


async def test_a_table_check_the_scheduler_dropped_is_queued_again(
    tmp_path: Path, clock: FakeClock
) -> None:
    """APScheduler skips (and, for a one-off job, drops) a job whose id is still finishing
    its last run; the table must not stop following the run because one check was lost."""
    async with bot_with_a_run(tmp_path, clock, lambda i: T0 + 0.5 * i) as (app, _, run):
        run_id, send = run.run_id, run.send
        check = f"table-check:{run_id}"

        await send(1, 40)
        assert await app.service.post_table(run_id)
        clock.now += 60
        await send(41, 200)  # the table is out: this post queues a revision check
        assert check in app.jobs.job_ids()
        while check in app.jobs.job_ids():  # the scheduler is not started: all queued copies
            app.jobs.scheduler.remove_job(check)  # what it does to a skipped one-off run
        await send(201, 210)  # within the throttle: not queued again yet
        assert check not in app.jobs.job_ids()
        await send(211, 300)  # 45 s later: queued again, not waiting forever
        assert check in app.jobs.job_ids()
