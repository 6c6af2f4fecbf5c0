"""The instance's own life as pure values: status words, pauses, backoff, price, contract."""

from __future__ import annotations

import json

import pytest

from bot.core.instance import (
    InstanceFacts,
    InstanceTrack,
    billed_usd_per_hour,
    contract_risk,
    describe_instance,
    disk_reminder_at_s,
    instance_findings,
    instance_status,
    price_note,
    projected_finish_at_s,
    read_due,
    track_failure,
    track_read,
    without_quiet_alarms,
)
from bot.core.triggers import Finding
from tests.conftest import SHARED

T0 = 1_730_000_000.0
H = 3600.0


def facts(**kw: object) -> InstanceFacts:
    values: dict[str, object] = {"read_at_s": T0, "actual_status": "running"}
    values.update(kw)
    return InstanceFacts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "status"),
    [
        ({"actual_status": "running"}, "running"),
        ({"actual_status": "loading", "intended_status": "running"}, "starting"),
        ({"actual_status": None, "intended_status": "running"}, "starting"),
        ({"actual_status": "offline"}, "offline"),
        ({"actual_status": "exited"}, "exited"),
        ({"actual_status": "running", "status_msg": "Error: CUDA failed"}, "running"),
        ({"actual_status": "created", "status_msg": "Error response from daemon"}, "error"),
        ({"actual_status": "stopped", "intended_status": "stopped"}, "stopped"),
        (
            {"actual_status": "stopped", "intended_status": "running", "interruptible": True},
            "paused_outbid",
        ),
        (
            {"actual_status": "stopped", "intended_status": "stopped", "interruptible": True},
            "stopped",
        ),
        ({"gone": True}, "gone"),
        ({"actual_status": "frobnicating"}, "unknown"),
    ],
)
def test_instance_status(kw: dict[str, object], status: str) -> None:
    assert instance_status(facts(**kw)) == status


@pytest.mark.skipif(not (SHARED / "vast").is_dir(), reason="needs ../shared/vast")
@pytest.mark.parametrize(("name", "status"), [("running", "running"), ("loading", "starting")])
def test_real_instance_objects(name: str, status: str) -> None:
    raw = json.loads((SHARED / "vast" / f"instance_{name}_http_inferred.json").read_text())
    inst = raw["instances"]
    read = facts(
        actual_status=inst["actual_status"],
        intended_status=inst["intended_status"],
        interruptible=inst["is_bid"],
        end_date_s=inst["end_date"],
    )
    assert instance_status(read) == status


def test_pauses_are_dated_and_summed_across_reads() -> None:
    paused = facts(actual_status="stopped", intended_status="running", interruptible=True)
    track = track_read(InstanceTrack(), facts(interruptible=True), T0, 60)
    assert track.status == "running" and track.next_read_at_s == T0 + 60
    track = track_read(track, paused, T0 + 600, 60)
    assert track.paused_since_s == T0 + 600 and track.pauses == 1
    assert track_read(track, paused, T0 + 900, 60).status_since_s == T0 + 600
    assert track.lost_s(T0 + 900) == 300
    track = track_read(track, facts(interruptible=True), T0 + 1800, 60)
    assert track.paused_since_s is None and track.paused_s == 1200
    track = track_read(track, paused, T0 + 2000, 60)
    assert track.pauses == 2 and track.lost_s(T0 + 2100) == 1300
    assert InstanceTrack.from_json(track.to_json()) == track


def test_failed_reads_back_off_to_an_hour_and_a_success_resets() -> None:
    track = InstanceTrack()
    waits = []
    for _ in range(8):
        track = track_failure(track, T0, 60)
        waits.append(track.next_read_at_s - T0)
    assert waits == [120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert not read_due(track, T0 + 3599) and read_due(track, T0 + 3600)
    assert track_read(track, facts(), T0, 60).failures == 0


def test_the_billed_price_wins_and_a_difference_is_said() -> None:
    assert billed_usd_per_hour(2.0, facts(dph_total_usd=2.672)) == 2.672
    assert billed_usd_per_hour(2.0, facts()) == 2.0
    assert billed_usd_per_hour(2.0, None) == 2.0
    assert price_note(2.60, facts(dph_total_usd=2.672)) is None  # within 5%
    note = price_note(2.0, facts(dph_total_usd=2.672))
    assert note is not None and "$2.672/h" in note and "$2.000/h" in note
    assert price_note(None, facts(dph_total_usd=2.672)) is None


def test_a_contract_ending_before_the_finish() -> None:
    ends = facts(end_date_s=T0 + 5 * H)
    assert contract_risk(ends, T0, T0 + 2 * H, T0 + 4 * H) is None
    pess = contract_risk(ends, T0, T0 + 4 * H, T0 + 6 * H)
    assert pess is not None and "pessimistic" in pess and "5h" in pess
    base = contract_risk(ends, T0, T0 + 6 * H, T0 + 9 * H)
    assert base is not None and "base finish" in base and "cut off" in base
    bid = facts(end_date_s=T0 + H, interruptible=True)  # a bid has no contract to end
    assert contract_risk(bid, T0, T0 + 6 * H, T0 + 9 * H) is None
    assert projected_finish_at_s(T0, 100, 1100, 2.0) == (T0 + 2000, T0 + 2000 / 0.6)
    assert projected_finish_at_s(T0, 100, 1100, None) == (None, None)


def test_findings_name_the_instance_and_replace_quiet_alarms() -> None:
    paused = facts(
        actual_status="stopped", intended_status="running", interruptible=True, min_bid_usd=0.5
    )
    track = track_read(InstanceTrack(), paused, T0, 60)
    (found,) = instance_findings(track, T0 + 1800, finish_base_at_s=None, finish_pess_at_s=None)
    assert found.trigger == "outbid" and "30m" in found.detail and "$0.500/h" in found.detail
    assert "time lost to pauses so far: 30m" in found.evidence[0]
    silent = Finding("silent", "no report", "infra", (), "", None)
    hung = Finding("hung", "no step", "unknown", (), "", None)
    slow = Finding("throughput", "slow", "compute", (), "", None)
    assert without_quiet_alarms([silent, hung, slow], "paused_outbid") == [slow]
    assert without_quiet_alarms([silent, hung], "running") == [silent, hung]
    down = track_read(InstanceTrack(), facts(actual_status="offline", status_msg="lost"), T0, 60)
    (found,) = instance_findings(down, T0, finish_base_at_s=None, finish_pess_at_s=None)
    assert found.trigger == "host_down" and "offline (lost)" in found.evidence[0]
    ending = track_read(InstanceTrack(), facts(end_date_s=T0 + H), T0, 60)
    (found,) = instance_findings(ending, T0, finish_base_at_s=T0 + 2 * H, finish_pess_at_s=None)
    assert found.trigger == "contract_end" and "1h" in found.detail
    assert "contract ends" in describe_instance(ending, T0)


def test_disk_reminders_come_a_day_after_the_stop_then_weekly() -> None:
    assert disk_reminder_at_s(T0, 0) == T0 + 24 * H
    assert disk_reminder_at_s(T0, 1) == T0 + 24 * H + 7 * 24 * H
    assert disk_reminder_at_s(T0, 2) == T0 + 24 * H + 14 * 24 * H
