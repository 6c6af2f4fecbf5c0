"""Alerts through the service: fire once, repeat at most every 30 min, resolve, re-arm,
silence with /keep or Snooze, on an injected clock; and check-ins with a chart."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import App, build
from bot.chat.console import ConsoleChat
from bot.core.card import Card, action_id
from tests.conftest import SECRET, FakeClock, make_settings

T0 = 1_700_000_000.0


class Reporter:
    """Posts events for one run the way the real reporter does, numbered."""

    def __init__(self, client: httpx.AsyncClient, clock: FakeClock) -> None:
        self.client, self.clock = client, clock
        self.seq = 0
        self.step = 0
        self.run: dict[str, Any] = {}

    async def register(self, **extra: Any) -> str:
        response = await self.client.post(
            "/v1/runs",
            json={"name": "r1", "target_steps": 5_000, "usd_per_hour": 2.0, **extra},
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        assert response.status_code == 200, response.text
        self.run = response.json()
        return str(self.run["run_id"])

    async def post(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.seq += 1
            event["seq"] = self.seq
        response = await self.client.post(
            f"/v1/runs/{self.run['run_id']}/events",
            json={"seq_from": events[0]["seq"], "sent_at": self.clock.now, "events": events},
            headers={"Authorization": f"Bearer {self.run['run_token']}"},
        )
        assert response.status_code == 200, response.text

    async def steps(self, n: int, step_s: float) -> None:
        """``n`` steps ending now."""
        start = self.clock.now - n * step_s
        events = []
        for i in range(1, n + 1):
            self.step += 1
            events.append(
                {
                    "kind": "step",
                    "t": start + i * step_s,
                    "step": self.step,
                    "loss": 3.0 / self.step,
                }
            )
        await self.post(events)

    async def heartbeat(self) -> None:
        await self.post([{"kind": "sample", "t": self.clock.now, "host": {"cpu_pct": 40.0}}])


@pytest.fixture
def chat() -> ConsoleChat:
    return ConsoleChat(io.StringIO())


@pytest.fixture
def app(tmp_path: Path, clock: FakeClock, chat: ConsoleChat) -> App:
    clock.now = T0
    return build(make_settings(tmp_path), chat=chat, clock=clock)


@pytest.fixture
async def reporter(app: App, clock: FakeClock) -> AsyncIterator[Reporter]:
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        yield Reporter(client, clock)


def alerts(chat: ConsoleChat) -> list[tuple[str, Card]]:
    return [(action, card) for action, _, card in chat.transcript if card.kind.startswith("alert")]


async def hang(app: App, reporter: Reporter, clock: FakeClock, seconds: float) -> None:
    """Time passes with no step; the reporter's samples keep coming (the process lives)."""
    for _ in range(int(seconds // 60)):
        clock.advance(60)
        await reporter.heartbeat()


async def start_run(app: App, reporter: Reporter, clock: FakeClock) -> str:
    run_id = await reporter.register()
    clock.advance(200)
    await reporter.steps(200, 1.0)  # a healthy 1 step/s for 200 s
    await app.service.check(run_id)
    assert alerts(app.service.chat) == []  # type: ignore[arg-type]
    return run_id


async def test_a_hung_job_fires_once_repeats_after_30_min_resolves_and_rearms(
    app: App, reporter: Reporter, clock: FakeClock, chat: ConsoleChat
) -> None:
    run_id = await start_run(app, reporter, clock)

    await hang(app, reporter, clock, 540)
    await app.service.check(run_id)
    assert alerts(chat) == []  # 9 min without a step is not yet "far longer"

    await hang(app, reporter, clock, 120)
    await app.service.check(run_id)
    (fired,) = alerts(chat)
    action, card = fired
    assert action == "post" and card.kind == "alert"
    assert "hung" in card.title.lower() and "r1" in card.title
    assert {b.action_id for b in card.buttons} == {
        action_id(verb, run_id) for verb in ("kill", "keep", "snooze")
    }
    fields = dict((f.label, f.value) for f in card.fields)
    assert fields["Likely bottleneck"] and fields["Change first"]
    # What the hang costs (#22): it never finishes at this pace.
    # ... in the alert's first three lines (#23): title, what holds, what it costs.
    assert card.headline.splitlines()[1].startswith("At the current pace the run never finishes")

    for _ in range(5):  # checks every minute: no repeats within 30 minutes
        await hang(app, reporter, clock, 60)
        await app.service.check(run_id)
    assert len(alerts(chat)) == 1

    await hang(app, reporter, clock, 1800)
    await app.service.check(run_id)
    assert [c.title.startswith("Still:") for _, c in alerts(chat)] == [False, True]

    await reporter.steps(60, 1.0)  # it moves again: the alert keeps firing for 10 min,
    await app.service.check(run_id)  # and says at once that it is clearing (#23)
    assert [(a, c.kind, c.title) for a, c in alerts(chat)][2:] == [
        ("update", "alert-clearing", "Clearing: No progress: job looks hung · r1")
    ]
    for _ in range(10):  # healthy minutes, checked each minute
        clock.advance(60)
        await reporter.steps(60, 1.0)
        await app.service.check(run_id)
    action, card = alerts(chat)[-1]
    assert action == "update" and card.kind == "alert-resolved"
    assert "cleared after" in card.headline

    # Hangs again within 30 min of resolving: the earlier message is edited back, with
    # no new notifying post (#22).
    await hang(app, reporter, clock, 700)
    await app.service.check(run_id)
    action, card = alerts(chat)[-1]
    assert action == "update" and card.kind == "alert" and card.title.startswith("Back:")
    assert [a for a, _ in alerts(chat)].count("post") == 2
    decisions = [d["kind"] for d in app.store.decisions(run_id)]
    assert decisions.count("alert-fire") == 1 and decisions.count("alert-repeat") == 1


async def test_keep_silences_alerts_until_it_expires_and_status_says_so(
    app: App, reporter: Reporter, clock: FakeClock, chat: ConsoleChat
) -> None:
    run_id = await start_run(app, reporter, clock)
    answer = await app.service.handle_command("/keep r1 30m", "alice")
    assert "Kept by alice: r1's alerts are silenced for 30m" in answer.headline
    status = await app.service.handle_command("/probecast status r1", "bob")
    silenced = next(f for f in status.fields if f.label == "Alerts silenced until")
    assert silenced.at_s == pytest.approx(clock.now + 1800)

    await hang(app, reporter, clock, 720)
    await app.service.check(run_id)
    assert alerts(chat) == []  # it holds, but the run is kept
    status = await app.service.handle_command("/probecast status r1", "bob")
    assert status.headline.startswith("Trouble: No progress")

    await hang(app, reporter, clock, 1200)  # the keep ran out; it still holds
    await app.service.check(run_id)
    (fired,) = alerts(chat)
    assert fired[1].kind == "alert"
    kinds = [(d["kind"], d["by"]) for d in app.store.decisions(run_id)]
    assert ("keep", "alice") in kinds


async def test_alert_buttons_snooze_keep_and_ask_before_a_kill(
    app: App, reporter: Reporter, clock: FakeClock
) -> None:
    run_id = await start_run(app, reporter, clock)
    snoozed = await app.service.handle_action(action_id("snooze", run_id), "carol")
    assert snoozed.title.startswith("Snoozed") and "1h" in snoozed.headline
    run = app.store.get_run(run_id)
    assert run is not None and run.kept_until == pytest.approx(clock.now + 3600)
    kept = await app.service.handle_action(action_id("keep", run_id), "carol")
    assert "for 2h" in kept.headline
    asked = await app.service.handle_action(action_id("kill", run_id), "carol")
    assert asked.kind == "confirm"
    assert app.store.commands(run_id, ("queued",)) == []  # nothing happens before confirm
    assert {b.action_id for b in asked.buttons} == {
        action_id("confirm-kill", run_id),
        action_id("cancel-kill", run_id),
    }
    unknown = await app.service.handle_action("probecast:kill:no-such-run", "carol")
    assert unknown.kind == "usage"


async def test_a_checkin_carries_a_chart(
    tmp_path: Path, clock: FakeClock, reporter: Reporter, app: App
) -> None:
    attachments = tmp_path / "attachments"
    attachments.mkdir()
    chat = ConsoleChat(io.StringIO(), attachments_dir=attachments)
    app.service.chat = chat
    run_id = await start_run(app, reporter, clock)
    await app.service.check(run_id)  # fixes the expected figure from the probe
    await app.service.checkin(run_id)
    png = (attachments / "chart.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


SLOWDOWN_CHILD = """
import sys, time
t_ms = 0
for s in range(1, 10_001):
    step_ms = 20 if s <= 150 else 100  # five times slower after step 150
    time.sleep(step_ms / 1000)
    t_ms += step_ms
    print(f"step:{s}/10000 train_loss:{3.0 / s:.4f} train_time:{t_ms}ms step_avg:1ms", flush=True)
"""


async def test_a_slowdown_in_a_real_child_raises_an_alert_with_a_diagnosis(
    tmp_path: Path,
) -> None:
    import asyncio
    import os
    import subprocess
    import sys
    import time

    from bot.app import start_server

    out = io.StringIO()
    chat = ConsoleChat(out)
    settings = make_settings(
        tmp_path, check_interval_s=1.0, checkin_interval_s=3600, table_deadline_s=600
    )
    bot = build(settings, chat=chat)
    server = await start_server(bot)
    child = tmp_path / "train.py"
    child.write_text(SLOWDOWN_CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBECAST_")}
    env.update(
        PROBECAST_URL=server.url,
        PROBECAST_INGEST_SECRET=SECRET,
        PROBECAST_SPOOL_DIR=str(tmp_path / "spool"),
        PROBECAST_POST_INTERVAL_S="0.2",
    )
    repo = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            "--name",
            "slow",
            "--",
            sys.executable,
            str(child),
        ],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(kind == "alert" for kind in (c.kind for _, _, c in chat.transcript)):
            assert time.monotonic() < deadline, out.getvalue()[-3000:]
            assert process.poll() is None
            await asyncio.sleep(0.1)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)  # the bot must answer its last posts
        await server.stop()
        bot.store.close()
    card = next(c for _, _, c in chat.transcript if c.kind == "alert")
    assert card.title.startswith("Throughput below expected · slow")
    assert "%" in card.headline  # says how far below
    text = out.getvalue()
    assert "Likely bottleneck" in text and "Change first" in text


async def test_only_killers_may_confirm_and_a_refusal_is_audited(
    tmp_path: Path, clock: FakeClock, chat: ConsoleChat
) -> None:
    clock.now = T0
    app = build(make_settings(tmp_path, killers="U0KILLER, U0OTHER"), chat=chat, clock=clock)
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        run_id = await start_run(app, Reporter(client, clock), clock)
    refused = await app.service.handle_action(action_id("confirm-kill", run_id), "U0MALLORY")
    assert refused.kind == "refused" and "allows to kill (a list of users)" in refused.headline
    assert app.store.commands(run_id, ("queued",)) == []
    assert ("kill-refused", "U0MALLORY") in [
        (d["kind"], d["by"]) for d in app.store.decisions(run_id)
    ]

    for _ in range(3):  # pressed three times: one kill
        await app.service.handle_action(action_id("confirm-kill", run_id), "U0KILLER")
    (queued,) = app.store.commands(run_id, ("queued",))
    assert queued.confirmed_by == "U0KILLER"


async def test_an_ended_run_resolves_its_alerts_and_its_buttons_answer_plainly(
    app: App, reporter: Reporter, clock: FakeClock, chat: ConsoleChat
) -> None:
    run_id = await start_run(app, reporter, clock)
    await hang(app, reporter, clock, 720)
    await app.service.check(run_id)
    assert [c.kind for _, c in alerts(chat)] == ["alert"]
    await reporter.post([{"kind": "exit", "t": clock.now, "return_code": 1}])
    await app.service.finish(run_id)
    # Not "Resolved": it never cleared; the message says how it ended (#22).
    assert [c.kind for _, c in alerts(chat)] == ["alert", "alert-ended"]
    assert alerts(chat)[-1][1].headline.startswith("the run failed while it held, after")
    late = await app.service.handle_action(action_id("confirm-kill", run_id), "console")
    assert late.kind == "usage" and "already failed" in late.headline


async def test_audit_lists_every_decision_with_who_when_and_the_numbers(
    app: App, reporter: Reporter, clock: FakeClock
) -> None:
    run_id = await start_run(app, reporter, clock)
    await app.service.handle_command("/keep r1 30m", "alice")
    await app.service.handle_action(action_id("snooze", run_id), "bob")
    await app.service.handle_command("/kill r1", "carol")
    audit = await app.service.handle_command("/probecast audit r1", "dave")
    assert audit.kind == "audit" and audit.headline == "3 decision(s) recorded"
    kinds = [f.label.split(" · ")[1] for f in audit.fields]
    assert kinds == ["keep", "snooze", "kill-request"]
    keep = audit.fields[0].value
    assert keep.startswith("by alice · until ") and "step 200" in keep and "spent $" in keep
    usage = await app.service.handle_command("/probecast audit", "dave")
    assert usage.kind == "usage" and "/probecast audit RUN" in usage.headline


async def test_checks_read_only_new_events_and_judge_as_the_whole_history_would(
    app: App, reporter: Reporter, clock: FakeClock, chat: ConsoleChat
) -> None:
    """A check keeps a trimmed history between checks (bot/core/trim.py) and reads only
    the events since; at every check its memory must equal what evaluating the whole
    stored history gives, and what it keeps must not grow with the run."""
    from bot.core.triggers import CheckMemory, evaluate_triggers
    from bot.core.trim import TAIL_ROWS
    from bot.service.history import load_run

    run_id = await start_run(app, reporter, clock)
    settings = app.service.settings
    run = app.store.get_run(run_id)
    assert run is not None and run.trigger_memory is not None
    whole_memory = CheckMemory.from_json(run.trigger_memory)
    for minute in range(40):
        clock.advance(60)
        step_s = 1.0 if minute < 30 else 2.5  # then a slowdown: the throughput alert
        await reporter.steps(int(60 / step_s), step_s)
        await reporter.heartbeat()
        await app.service.check(run_id)
        run = app.store.get_run(run_id)
        assert run is not None and run.trigger_memory is not None
        loaded = load_run(app.store, run, post_interval_s=settings.post_interval_s)
        _, whole_memory = evaluate_triggers(
            loaded.history, clock.now, whole_memory, settings.trigger_settings()
        )
        assert CheckMemory.from_json(run.trigger_memory) == whole_memory, f"minute {minute}"
    assert [c.kind for _, c in alerts(chat)] == ["alert"]
    assert "throughput" in alerts(chat)[0][1].title.lower(), alerts(chat)[0][1].title
    kept = app.service.scheduled._check_histories[run_id].builder
    assert len(loaded.history.steps) > 2000
    assert len(kept.steps) <= TAIL_ROWS + 70 and len(kept.losses) <= TAIL_ROWS + 70


async def test_new_normal_adopts_a_deliberately_changed_pace_audited(
    app: App, reporter: Reporter, clock: FakeClock, chat: ConsoleChat
) -> None:
    """The sequence length doubles on purpose: the throughput alert fires, offers New
    normal; pressing it ends the alert saying who accepted it, the expected pace moves,
    and the slower pace raises nothing after (#22)."""
    run_id = await start_run(app, reporter, clock)
    for _ in range(4):  # 2 s a step from here on
        clock.advance(60)
        await reporter.steps(30, 2.0)
        await app.service.check(run_id)
    (fired,) = [c for a, c in alerts(chat) if a == "post"]
    assert fired.title.startswith("Throughput below expected")
    assert action_id("new-normal", run_id) in {b.action_id for b in fired.buttons}
    cost = fired.headline.splitlines()[1]
    assert cost.startswith("At the current pace the run finishes") and "instead of" in cost

    answer = await app.service.handle_action(action_id("new-normal", run_id), "alice")
    assert answer.kind == "new-normal" and "Accepted as the new pace by alice" in answer.headline
    assert "1 s → 2 s" in answer.headline
    action, ended = alerts(chat)[-1]
    assert action == "update" and ended.kind == "alert-ended"
    assert ended.headline.startswith("accepted as the new pace by alice")
    (decision,) = [d for d in app.store.decisions(run_id) if d["kind"] == "new-normal"]
    assert decision["by"] == "alice"
    assert '"new_step_s": 2.0' in decision["detail"] and '"old_step_s": 1.0' in decision["detail"]

    for _ in range(10):  # the new pace is normal now
        clock.advance(60)
        await reporter.steps(30, 2.0)
        await app.service.check(run_id)
    assert [a for a, _ in alerts(chat)].count("post") == 1


async def test_a_watched_reward_stuck_at_zero_is_a_broken_run_at_once(
    app: App, reporter: Reporter, clock: FakeClock, chat: ConsoleChat
) -> None:
    """#22: the user watches a reward (should rise); the loss moves, the reward is 0 in
    every report: the no-movement alert names the reward, within the first checks."""
    run_id = await reporter.register(watch_metric="reward", metric_goal="max")
    clock.advance(60)
    await reporter.post(
        [
            {"kind": "step", "t": clock.now - 60 + k, "step": k, "loss": 3.0 / k, "metric": 0.0}
            for k in range(1, 61)
        ]
    )
    await app.service.check(run_id)
    (fired,) = [c for a, c in alerts(chat) if a == "post"]
    assert fired.title.startswith("Metric not moving")
    assert fired.headline.startswith("reward is 0 in all 60 reports")


async def test_steps_per_epoch_from_the_registration_reach_the_triggers(
    app: App, reporter: Reporter, clock: FakeClock
) -> None:
    """#22: a callback that knows the epoch length sends it in the config family; the
    hung rule reads it from the run's history (the first epoch end gets time)."""
    from bot.service.history import load_run

    run_id = await reporter.register(config={"steps_per_epoch": 1200})
    run = app.store.get_run(run_id)
    assert run is not None
    loaded = load_run(app.store, run, post_interval_s=app.service.settings.post_interval_s)
    assert loaded.history.steps_per_epoch == 1200
