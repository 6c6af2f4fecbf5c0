"""The alert lifecycle with an injected clock: fire, repeat limit, resolve, re-arm, silence."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import pytest

from bot.core.alerts import AlertAction, AlertPolicy, AlertState, plan_alerts
from bot.core.run_history import TriggerName
from bot.core.triggers import Finding
from tests.conftest import FakeClock

REPEAT_S = 1800.0


def hold(trigger: TriggerName = "hung", detail: str = "no step for 11m") -> Finding:
    return Finding(trigger, detail, "unknown", ("evidence",), "first look", 100)


class Lifecycle:
    """Checks every minute on a fake clock; remembers states as the service would."""

    def __init__(
        self,
        clock: FakeClock,
        silenced_until: float | None = None,
        policy: AlertPolicy | None = None,
    ) -> None:
        self.clock = clock
        # The basic lifecycle unless told otherwise: resolve at the first clear check.
        self.policy = policy or AlertPolicy.plain(REPEAT_S)
        self.active: dict[TriggerName, AlertState] = {}
        self.silenced_until = silenced_until
        self.log: list[tuple[float, str, str]] = []

    def check(self, findings: Sequence[Finding], minutes: float = 1.0) -> list[AlertAction]:
        now = self.clock.advance(60.0 * minutes)
        actions, self.active = plan_alerts(
            findings, self.active, now, silenced_until=self.silenced_until, policy=self.policy
        )
        # States go through JSON, as they do through SQLite.
        self.active = {k: AlertState.from_json(v.to_json()) for k, v in self.active.items()}
        self.log += [(now - self.clock_start, a.kind, a.trigger) for a in actions]
        return actions

    @property
    def clock_start(self) -> float:
        return 1_700_000_000.0


def kinds(actions: Sequence[AlertAction]) -> list[tuple[str, str]]:
    return [(a.kind, a.trigger) for a in actions]


def test_fires_once_then_repeats_at_most_every_30_minutes(clock: FakeClock) -> None:
    life = Lifecycle(clock)
    assert kinds(life.check([hold()])) == [("fire", "hung")]
    quiet = [life.check([hold(detail=f"no step for {11 + m}m")]) for m in range(1, 30)]
    assert all(a == [] for a in quiet)  # minutes 2..30: within the repeat limit
    assert life.active["hung"].detail == "no step for 40m"  # detail still tracked
    (repeat,) = life.check([hold()])  # minute 31: 30 min after the fire
    assert repeat.kind == "repeat" and repeat.finding is not None
    assert repeat.state.posts == 2 and repeat.state.first_at == clock.now - 1800.0


def test_resolves_when_it_clears_and_rearms(clock: FakeClock) -> None:
    life = Lifecycle(clock)
    life.check([hold()])
    life.check([hold()])
    (resolve,) = life.check([])
    assert resolve.kind == "resolve" and resolve.finding is None
    assert resolve.state.detail == "no step for 11m"  # what the message said
    assert life.active == {}
    assert life.check([]) == []  # nothing to resolve twice
    assert kinds(life.check([hold()])) == [("fire", "hung")]  # re-armed: a new episode
    assert life.active["hung"].posts == 1


def test_triggers_are_independent_and_ordered(clock: FakeClock) -> None:
    life = Lifecycle(clock)
    actions = life.check([hold("silent"), hold("throughput")])
    assert kinds(actions) == [("fire", "throughput"), ("fire", "silent")]
    assert kinds(life.check([hold("throughput")])) == [("resolve", "silent")]


@pytest.mark.parametrize(
    ("name", "silence_min", "hold_min", "expected"),
    [
        # Silenced for 10 min; the trigger holds at checks 1..20 (minutes): it fires at the
        # first check after the silence and resolves at the first check where it is gone.
        ("still holding when the silence ends", 10, 20, [(11.0, "fire"), (21.0, "resolve")]),
        # Began and ended inside the silence: never posted, so nothing to resolve.
        ("over before the silence ends", 10, 5, []),
    ],
)
def test_silence(
    clock: FakeClock, name: str, silence_min: int, hold_min: int, expected: list[tuple[float, str]]
) -> None:
    life = Lifecycle(clock, silenced_until=clock.now + 60.0 * silence_min + 1)
    for _ in range(hold_min):
        life.check([hold()])
    for _ in range(15):
        life.check([])
    assert [(t / 60, kind) for t, kind, _ in life.log] == expected, name


def test_resolve_is_still_emitted_while_silenced(clock: FakeClock) -> None:
    life = Lifecycle(clock)
    life.check([hold()])
    life.silenced_until = clock.now + 7200.0  # /keep for 2 h after the alert was posted
    assert life.check([hold()]) == []
    assert kinds(life.check([])) == [("resolve", "hung")]


def test_silence_holds_back_repeats_too(clock: FakeClock) -> None:
    life = Lifecycle(clock)
    life.check([hold()])
    life.silenced_until = clock.now + 3600.0
    assert all(life.check([hold()]) == [] for _ in range(59))
    (after,) = life.check([hold()], minutes=2)
    assert after.kind == "repeat"


def test_message_ref_survives_updates(clock: FakeClock) -> None:
    life = Lifecycle(clock)
    life.check([hold()])
    life.active["hung"] = replace(life.active["hung"], message_ref="C1/17")
    life.check([hold()])
    (resolve,) = life.check([])
    assert resolve.state.message_ref == "C1/17"


def test_alert_state_json() -> None:
    state = AlertState("oom", first_at=1.5, last_posted_at=None, detail="d", posts=0)
    assert AlertState.from_json(state.to_json()) == state
    assert AlertState.from_json(json.loads(state.to_json())) == state
    with pytest.raises(ValueError):
        AlertState.from_json({"trigger": "nope", "first_at": 0, "detail": ""})


# --- the full lifecycle (DESIGN §9): pending, keep firing, reopen, backoff ----------------


def test_pending_time_before_firing(clock: FakeClock) -> None:
    life = Lifecycle(clock, policy=AlertPolicy(pending_s={"gpu_util": 120.0}))
    assert life.check([hold("gpu_util")]) == []  # held 0 s
    assert life.check([hold("gpu_util")]) == []  # 60 s
    assert kinds(life.check([hold("gpu_util")])) == [("fire", "gpu_util")]  # 120 s
    # A blip shorter than the pending time is never posted, and leaves no word.
    life = Lifecycle(clock, policy=AlertPolicy(pending_s={"gpu_util": 120.0}))
    assert life.check([hold("gpu_util")]) == [] and life.check([]) == []
    assert life.active == {}


def test_keep_firing_after_it_seems_to_clear(clock: FakeClock) -> None:
    life = Lifecycle(clock, policy=AlertPolicy(keep_firing_s=600.0, reopen_s=0.0))
    life.check([hold()])
    # Clears for 5 minutes, comes back: the same episode, nothing posted or resolved.
    assert all(life.check([]) == [] for _ in range(5))
    assert life.check([hold()]) == []
    assert life.active["hung"].posts == 1 and life.active["hung"].cleared_at is None
    # Clears for good: resolved once the keep-firing time has passed since it cleared.
    for _ in range(10):  # cleared at the first of these; 9 minutes later still open
        assert life.check([]) == []
    (resolve,) = life.check([])
    assert resolve.kind == "resolve" and resolve.ending == "recovered"
    assert resolve.held_s(clock.now) == 7 * 60.0  # from the fire to the clearing


def test_a_trigger_that_returns_soon_reopens_its_alert(clock: FakeClock) -> None:
    life = Lifecycle(clock, policy=AlertPolicy(keep_firing_s=0.0, reopen_s=1800.0))
    (fire,) = life.check([hold()])
    life.active["hung"] = replace(life.active["hung"], message_ref="C1/17")
    assert kinds(life.check([])) == [("resolve", "hung")]
    (reopen,) = life.check([hold()], minutes=20)
    assert reopen.kind == "reopen" and reopen.state.message_ref == "C1/17"
    assert reopen.state.posts == 1 and reopen.state.reopens == 1
    assert reopen.state.first_at == fire.state.first_at  # the same episode, edited back
    # Gone for longer than the reopen window: a later return is a new alert.
    life.check([])
    life.check([], minutes=31)
    assert life.active == {}
    assert kinds(life.check([hold()])) == [("fire", "hung")]


def test_reminders_back_off_to_4_hours_and_stop_after_6(clock: FakeClock) -> None:
    life = Lifecycle(clock, policy=AlertPolicy())
    life.check([hold()])
    for _ in range(24 * 60):
        life.check([hold()])
    repeats = [t / 60 for t, kind, _ in life.log if kind == "repeat"]
    assert repeats == [31.0, 91.0, 211.0, 451.0, 691.0, 931.0]  # gaps 30m, 1h, 2h, 4h, 4h, 4h
    assert life.active["hung"].reminders == 6


def test_an_ended_run_resolves_open_alerts_with_its_ending(clock: FakeClock) -> None:
    life = Lifecycle(clock, policy=AlertPolicy())
    life.check([hold("throughput")])
    now = clock.advance(60.0)
    actions, states = plan_alerts(
        [hold("throughput")], life.active, now, silenced_until=None, ended="finished"
    )
    assert [(a.kind, a.ending) for a in actions] == [("resolve", "finished")]
    assert states == {}


def test_a_kill_ends_an_alert_as_killed_even_while_it_seemed_to_clear(clock: FakeClock) -> None:
    life = Lifecycle(clock, policy=AlertPolicy(keep_firing_s=600.0))
    life.check([hold()])
    life.check([])  # cleared a minute ago, still shown as firing (keep-firing)
    actions, states = plan_alerts([], life.active, clock.advance(60.0), silenced_until=None,
                                  ended="killed")  # fmt: skip
    assert [(a.kind, a.ending) for a in actions] == [("resolve", "killed")]
    assert states == {}


def test_a_note_is_posted_once_and_never_reminded(clock: FakeClock) -> None:
    # A metric flat within its noise is judged over hours: a reminder could only repeat
    # it. An alarm (here a constant loss, no note) is reminded as usual.
    life = Lifecycle(clock, policy=AlertPolicy())
    note = replace(hold("no_progress", "loss flat within its noise"), note=True)
    for _ in range(8 * 60):
        life.check([note])
    assert [kind for _, kind, _ in life.log] == ["fire"]
    life = Lifecycle(clock, policy=AlertPolicy())
    for _ in range(8 * 60):
        life.check([hold("no_progress", "loss is 0 in all 50 reports")])
    assert [kind for _, kind, _ in life.log].count("repeat") == 4
