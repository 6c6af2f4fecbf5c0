"""The kill state machine on its own: every transition, and the ones that must refuse."""

from __future__ import annotations

import pytest

from bot.core import kill as k

T0 = 1_700_000_000.0


def requested(via: k.InstanceVia = "bot", on_kill: k.OnKill = "stop") -> k.Kill:
    return k.request("k1", "r1", "alice", T0, on_kill, via, "why")


def test_the_happy_path_runs_through_every_state_once() -> None:
    kill = k.confirm(requested(), "bob", T0 + 5, deadline_at=T0 + 185)
    assert (kill.state, kill.confirmed_by, kill.deadline_at) == ("confirmed", "bob", T0 + 185)
    kill = k.delivered(kill, T0 + 7)
    assert kill.state == "stopping-process" and kill.process_started_at == T0 + 7
    assert k.delivered(kill, T0 + 9) is kill  # sent again before the outcome: no change
    kill = k.process_stopped(kill, "done: exit 143", T0 + 20)
    assert kill.state == "stopping-instance" and kill.instance_next_at == T0 + 20
    kill = k.instance_accepted(kill)
    assert kill.instance_accepted and kill.state == "stopping-instance"
    kill = k.instance_done(kill, "instance 7 stopped", T0 + 22)
    assert kill.state == "done" and kill.terminal and kill.finished_at == T0 + 22
    assert "instance 7 stopped" in k.describe(kill)


def test_a_second_confirmation_a_late_cancel_and_a_repeat_are_refused() -> None:
    kill = k.confirm(requested(), "bob", T0 + 5, deadline_at=T0 + 100)
    with pytest.raises(k.KillConflict, match="already confirmed by bob"):
        k.confirm(kill, "carol", T0 + 6, deadline_at=T0 + 100)
    delivered = k.delivered(kill, T0 + 7)
    with pytest.raises(k.KillConflict, match="too late"):
        k.cancel(delivered, "carol", T0 + 8)
    done = k.instance_done(k.process_stopped(delivered, "ok", T0 + 9), "gone", T0 + 10)
    for step in (
        lambda: k.process_stopped(done, "again", T0 + 11),
        lambda: k.instance_done(done, "again", T0 + 11),
        lambda: k.delivered(done, T0 + 11),
    ):
        with pytest.raises(k.KillConflict, match="already done"):
            step()


def test_cancel_works_until_the_reporter_has_the_command() -> None:
    assert k.cancel(requested(), "alice", T0 + 1).state == "cancelled"
    confirmed = k.confirm(requested(), "bob", T0 + 5, deadline_at=T0 + 100)
    cancelled = k.cancel(confirmed, "bob", T0 + 6)
    assert (cancelled.state, cancelled.cancelled_by) == ("cancelled", "bob")
    with pytest.raises(k.KillConflict, match="already cancelled by bob"):
        k.cancel(cancelled, "carol", T0 + 7)
    with pytest.raises(k.KillConflict, match="cancelled by bob"):
        k.confirm(cancelled, "carol", T0 + 7, deadline_at=T0 + 100)


def test_an_unanswered_confirmation_expires() -> None:
    kill = requested()
    assert not kill.expired(T0 + k.CONFIRM_WINDOW_S)
    assert kill.expired(T0 + k.CONFIRM_WINDOW_S + 1)
    with pytest.raises(k.KillConflict, match="expired"):
        k.confirm(kill, "bob", T0 + k.CONFIRM_WINDOW_S + 1, deadline_at=T0 + 2000)


def test_instance_retries_back_off_then_fail_with_what_to_do_by_hand() -> None:
    kill = k.process_stopped(
        k.delivered(k.confirm(requested(), "bob", T0, T0 + 100), T0), "ok", T0 + 10
    )
    now = T0 + 10
    for attempt, delay_s in enumerate(k.INSTANCE_RETRY_DELAYS_S, start=1):
        kill = k.instance_failed(kill, "HTTP 429", now, retryable=True)
        assert (kill.state, kill.instance_attempts) == ("stopping-instance", attempt)
        assert kill.instance_next_at == now + delay_s
        now += delay_s
    kill = k.instance_failed(kill, "HTTP 429", now, retryable=True)
    assert kill.state == "failed" and kill.failed_step == "instance"
    assert kill.failure is not None and "Instances → stop" in kill.failure


def test_an_error_no_retry_can_fix_fails_at_once() -> None:
    kill = k.process_stopped(
        k.delivered(k.confirm(requested(on_kill="destroy"), "bob", T0, T0 + 1), T0), "ok", T0
    )
    failed = k.instance_failed(kill, "Vast refused VAST_API_KEY", T0 + 1, retryable=False)
    assert failed.state == "failed" and failed.instance_attempts == 1
    assert failed.failure is not None and "destroy the instance by hand" in failed.failure


def test_without_an_instance_step_the_kill_is_done_with_the_process() -> None:
    kill = k.confirm(requested(via="none"), "bob", T0, T0 + 100)
    done = k.process_stopped(kill, "the reporter did not answer", T0 + 200)
    assert done.state == "done" and done.instance_result == "why"


@pytest.mark.parametrize(
    ("on_kill", "instance", "bot_key", "reporter_key", "via", "words"),
    [
        ("none", "7", True, True, "none", "keeps billing"),
        ("stop", None, True, True, "none", "no Vast instance id"),
        ("stop", "7", True, True, "bot", "with its Vast API key"),
        ("destroy", "7", False, True, "reporter", "the instance's own Vast key"),
        ("stop", "7", False, False, "none", "stop instance 7 on Vast.ai"),
    ],
)
def test_the_plan_says_who_stops_the_instance(
    on_kill: k.OnKill,
    instance: str | None,
    bot_key: bool,
    reporter_key: bool,
    via: str,
    words: str,
) -> None:
    got_via, why = k.plan_instance(on_kill, instance, bot_key, reporter_key)
    assert got_via == via and words in why


@pytest.mark.parametrize(
    ("via", "on_kill", "storage", "words"),
    [
        ("bot", "stop", 0.012, "Vast instance 7 is stopped: its disk keeps billing $0.012/h"),
        ("bot", "stop", None, "its disk keeps billing (Vast.ai → Instances shows its $/h)"),
        ("reporter", "destroy", 0.012, "Vast instance 7 is destroyed: billing ends"),
        ("none", "stop", 0.012, "Vast instance 7 keeps running and billing $1.20/h"),
        ("bot", "none", 0.012, "keeps running and billing $1.20/h until you stop it"),
    ],
)
def test_a_kill_says_what_keeps_billing_after_it_with_its_price(
    via: str, on_kill: str, storage: float | None, words: str
) -> None:
    from bot.core.render import after_kill_billing, how_kill_stops

    assert words in after_kill_billing(via, on_kill, "7", 1.2, storage)
    assert "SIGTERM" in how_kill_stops("signal", 60) and "60 s" in how_kill_stops("signal", 60)
    assert "SIGTERM" not in how_kill_stops("flag", 60) + how_kill_stops(None, 60)
