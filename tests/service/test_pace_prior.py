"""The earlier attempt teaches the ETA (issue 25, part 3): attempts registered through the
real API app over httpx, with an injected clock; the status and comparison cards read."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import App, build
from bot.chat.console import ConsoleChat
from bot.core.card import Card
from tests.conftest import SECRET, FakeClock, make_settings

TARGET = 2000
GPU = {"name": "NVIDIA GeForce RTX 4090", "count": 1, "vram_mib": 24564}


@pytest.fixture
def app(tmp_path: Path, clock: FakeClock) -> App:
    return build(make_settings(tmp_path), chat=ConsoleChat(io.StringIO()), clock=clock)


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as c:
        yield c


async def register(client: httpx.AsyncClient, name: str, **extra: Any) -> dict[str, Any]:
    body = {"name": name, "target_steps": TARGET, "usd_per_hour": 1.0, "gpus": [GPU], **extra}
    r = await client.post("/v1/runs", json=body, headers={"Authorization": f"Bearer {SECRET}"})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def run_schedule(
    client: httpx.AsyncClient, clock: FakeClock, run: dict[str, Any], step_s: float, upto: int
) -> None:
    """Steps to ``upto`` on a designed schedule: ``step_s`` each to half-way, then twice
    that; sent in batches of 100 as the clock moves, and an exit at the target."""
    seq, t = 1, clock.now
    for first in range(1, upto + 1, 100):
        events = []
        for step in range(first, min(upto, first + 99) + 1):
            t += step_s * (1.0 if step <= TARGET // 2 else 2.0)
            events.append({"kind": "step", "seq": seq, "t": t, "step": step, "loss": 1.0})
            seq += 1
        if upto == TARGET and step == TARGET:
            events.append({"kind": "exit", "seq": seq, "t": t, "return_code": 0})
            seq += 1
        clock.now = t
        r = await client.post(
            f"/v1/runs/{run['run_id']}/events",
            json={"seq_from": events[0]["seq"], "sent_at": t, "events": events},
            headers={"Authorization": f"Bearer {run['run_token']}"},
        )
        assert r.status_code == 200, r.text


def fields(card: Card) -> dict[str, str]:
    return {f.label: f.value for f in card.fields}


async def test_a_relaunch_at_its_probe_follows_the_earlier_attempts_schedule(
    app: App, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    first = await register(client, "job-a")
    await run_schedule(client, clock, first, 0.5, TARGET)
    assert app.store.get_run(first["run_id"]).state == "finished"  # type: ignore[union-attr]

    second = await register(client, "job-b", attempt_of="job-a")
    start = clock.now
    await run_schedule(client, clock, second, 0.3, 100)  # the probe: 100 steps at 0.3 s
    run = app.store.get_run(second["run_id"])
    assert run is not None and run.attempt == 2
    snap = app.service.snapshot(run)
    assert snap.estimate is not None
    truth_s = 1000 * 0.3 + 1000 * 0.6
    eta_s = snap.estimate.eta.base.eta_total_s
    assert eta_s == pytest.approx(truth_s, rel=0.03)
    assert clock.now - start == pytest.approx(30.0)
    assert snap.estimate.eta_interval.low_s <= truth_s <= snap.estimate.eta_interval.high_s

    status = await app.service.handle_command("/probecast status job-b", "console")
    note = fields(status)["Pace profile"]
    assert note.startswith("ETA follows attempt 1's pace profile (×1.5")
    compare = await app.service.handle_command("/probecast compare job-b", "console")
    assert fields(compare)["ETA"] == note


async def test_a_relaunch_on_another_gpu_does_not_inherit_the_profile(
    app: App, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    first = await register(client, "job-a")
    await run_schedule(client, clock, first, 0.5, TARGET)
    other = {"name": "NVIDIA H100 80GB HBM3", "count": 1, "vram_mib": 81559}
    second = await register(client, "job-b", attempt_of="job-a", gpus=[other])
    await run_schedule(client, clock, second, 0.3, 100)
    run = app.store.get_run(second["run_id"])
    assert run is not None
    snap = app.service.snapshot(run)
    assert snap.estimate is not None and snap.estimate.pace is None
    # flat from the probe, as without an earlier attempt: well short of the schedule's 900 s
    assert snap.estimate.eta.base.eta_total_s < 0.75 * 900
    status = await app.service.handle_command("/probecast status job-b", "console")
    assert fields(status)["Pace profile"] == (
        "not from attempt 1's pace profile: GPU 1× NVIDIA GeForce RTX 4090 → "
        "1× NVIDIA H100 80GB HBM3"
    )


async def test_a_first_run_and_a_short_earlier_attempt_give_no_profile(
    app: App, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    first = await register(client, "job-a")
    await run_schedule(client, clock, first, 0.5, 400)  # killed at 20%: no profile
    run = app.store.get_run(first["run_id"])
    assert run is not None
    status = await app.service.handle_command("/probecast status job-a", "console")
    assert "Pace profile" not in fields(status)
    second = await register(client, "job-b", attempt_of="job-a")
    await run_schedule(client, clock, second, 0.3, 100)
    status = await app.service.handle_command("/probecast status job-b", "console")
    assert fields(status)["Pace profile"] == (
        "not from attempt 1's pace profile: it ran too little of its target to have one"
    )
