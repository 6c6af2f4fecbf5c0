"""The Vast instance's own life, as plain values: its status, the host's contract end,
outbid pauses, the price it really bills, and the disk a stopped instance keeps billing.

Pure: every function takes ``now``; the service reads Vast and keeps an `InstanceTrack`
between reads. A run is only half the story on a rented GPU: a paused, offline or
expiring instance must be said as such, not mistaken for a hung job or a silent reporter.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from bot.core.card import Button, Card, CardField, action_id
from bot.core.fmt import fmt_duration
from bot.core.run_history import TriggerName
from bot.core.triggers import Finding

InstanceStatus = Literal[
    "unknown",
    "starting",
    "running",
    "paused_outbid",
    "stopped",
    "offline",
    "exited",
    "error",
    "gone",
]
# The instance explains a run that went quiet: no "hung" or "reporter silent" on top.
QUIET_EXPLAINED: frozenset[InstanceStatus] = frozenset(
    {"paused_outbid", "stopped", "offline", "exited", "error", "gone"}
)
INSTANCE_TRIGGERS: tuple[TriggerName, ...] = ("contract_end", "outbid", "host_down")
PRICE_NOTE_RATIO = 0.05  # a billed price this far from the declared one is said, once
MAX_READ_BACKOFF_S = 3_600.0
DISK_FIRST_REMINDER_S = 24 * 3_600.0
DISK_REMINDER_EVERY_S = 7 * 24 * 3_600.0


@dataclass(frozen=True)
class InstanceFacts:
    """One read of the instance (Vast's ``show instance``), in our units."""

    read_at_s: float
    actual_status: str | None = None
    intended_status: str | None = None
    status_msg: str | None = None
    interruptible: bool = False
    end_date_s: float | None = None  # the host's contract end (on-demand instances)
    dph_total_usd: float | None = None  # billed $/h: GPU + storage
    min_bid_usd: float | None = None
    storage_usd_per_hour: float | None = None  # still billed while stopped
    gone: bool = False  # Vast says there is no such instance


def instance_status(facts: InstanceFacts) -> InstanceStatus:
    """What the instance is doing, in the words the channel uses."""
    if facts.gone:
        return "gone"
    actual = (facts.actual_status or "").lower()
    intended = (facts.intended_status or "").lower()
    message = (facts.status_msg or "").lower()
    if actual == "running":
        return "running"
    if actual == "offline":
        return "offline"
    if actual in ("error", "errored") or message.startswith("error"):
        return "error"
    if actual in ("stopped", "inactive", "paused", "exited") and facts.interruptible:
        # Vast stops an outbid interruptible instance while the user still wants it running.
        return "paused_outbid" if intended == "running" else "stopped"
    if actual == "exited":
        return "exited"
    if actual in ("stopped", "inactive"):
        return "stopped"
    if actual in ("", "loading", "creating", "scheduling", "created"):
        return "starting"
    return "unknown"


@dataclass(frozen=True)
class InstanceTrack:
    """What survives between reads: the last facts, pauses so far, and read pacing."""

    facts: InstanceFacts | None = None
    status: InstanceStatus = "unknown"
    status_since_s: float | None = None
    paused_s: float = 0.0  # outbid pauses that have ended
    paused_since_s: float | None = None  # the pause under way, if any
    pauses: int = 0
    failures: int = 0  # reads that failed in a row (429, 5xx, network)
    next_read_at_s: float = 0.0
    price_noted: bool = False

    def lost_s(self, now_s: float) -> float:
        """Time the run has lost to outbid pauses, the current one included."""
        current = 0.0 if self.paused_since_s is None else max(0.0, now_s - self.paused_since_s)
        return self.paused_s + current

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> InstanceTrack:
        data: dict[str, Any] = json.loads(text)
        facts = data.pop("facts", None)
        return cls(**data, facts=None if facts is None else InstanceFacts(**facts))


def read_due(track: InstanceTrack, now_s: float) -> bool:
    return now_s >= track.next_read_at_s


def track_read(
    track: InstanceTrack, facts: InstanceFacts, now_s: float, interval_s: float
) -> InstanceTrack:
    """A successful read: status changes dated, pauses counted, next read one interval on."""
    status = instance_status(facts)
    since = track.status_since_s if status == track.status else now_s
    paused_s, paused_since, pauses = track.paused_s, track.paused_since_s, track.pauses
    if status == "paused_outbid" and paused_since is None:
        paused_since, pauses = now_s, pauses + 1
    elif status != "paused_outbid" and paused_since is not None:
        paused_s, paused_since = paused_s + max(0.0, now_s - paused_since), None
    return replace(
        track,
        facts=facts,
        status=status,
        status_since_s=since,
        paused_s=paused_s,
        paused_since_s=paused_since,
        pauses=pauses,
        failures=0,
        next_read_at_s=now_s + interval_s,
    )


def track_failure(track: InstanceTrack, now_s: float, interval_s: float) -> InstanceTrack:
    """A read that failed (rate limit, Vast down): wait twice as long each time, to 1 h."""
    failures = track.failures + 1
    wait_s = min(interval_s * 2.0**failures, max(interval_s, MAX_READ_BACKOFF_S))
    return replace(track, failures=failures, next_read_at_s=now_s + wait_s)


def billed_usd_per_hour(
    declared_usd_per_hour: float | None, facts: InstanceFacts | None
) -> float | None:
    """The instance's billed price when Vast told us; the price the user gave otherwise."""
    if facts is not None and facts.dph_total_usd is not None and facts.dph_total_usd > 0:
        return facts.dph_total_usd
    return declared_usd_per_hour


def price_note(declared_usd_per_hour: float | None, facts: InstanceFacts | None) -> str | None:
    """A line for the channel when the billed price differs from the declared one by > 5%."""
    billed = billed_usd_per_hour(None, facts)
    if billed is None or declared_usd_per_hour is None or declared_usd_per_hour <= 0:
        return None
    if abs(billed - declared_usd_per_hour) <= PRICE_NOTE_RATIO * declared_usd_per_hour:
        return None
    return (
        f"Vast bills this instance ${billed:.3f}/h (GPU and storage), not the "
        f"${declared_usd_per_hour:.3f}/h given at launch: every cost now uses ${billed:.3f}/h."
    )


def storage_usd_per_day(facts: InstanceFacts | None) -> float | None:
    if facts is None or facts.storage_usd_per_hour is None:
        return None
    return facts.storage_usd_per_hour * 24


def disk_reminder_at_s(stopped_at_s: float, reminders_sent: int) -> float:
    """A day after the stop, then weekly: a stopped instance's disk bills until destroyed."""
    return stopped_at_s + DISK_FIRST_REMINDER_S + reminders_sent * DISK_REMINDER_EVERY_S


def instance_findings(
    track: InstanceTrack,
    now_s: float,
    *,
    finish_base_at_s: float | None,
    finish_pess_at_s: float | None,
) -> list[Finding]:
    """Alerts the instance itself raises: contract end, an outbid pause, a host in trouble."""
    facts = track.facts
    if facts is None:
        return []
    found: list[Finding] = []
    status = track.status
    if status == "paused_outbid":
        paused_since = track.paused_since_s or now_s
        bid = (
            ""
            if facts.min_bid_usd is None
            else f"; the minimum bid is now ${facts.min_bid_usd:.3f}/h"
        )
        found.append(
            Finding(
                trigger="outbid",
                detail=f"paused by Vast (outbid) for {fmt_duration(now_s - paused_since)}{bid}. "
                "Steps resume when it runs again; the GPU does not bill meanwhile.",
                bottleneck="infra",
                evidence=(
                    f"time lost to pauses so far: {fmt_duration(track.lost_s(now_s))} "
                    f"({track.pauses} pause{'s' if track.pauses != 1 else ''})",
                    f"Vast: {_said(facts)}",
                ),
                change_first="bid above the minimum to resume now, or move the run to an "
                "on-demand instance from its last checkpoint (see the option table)",
                at_step=None,
            )
        )
    elif status in ("offline", "exited", "error", "gone"):
        what = {
            "offline": "its host is offline",
            "exited": "its container exited",
            "error": "Vast reports an error",
            "gone": "Vast no longer knows it (destroyed?)",
        }[status]
        found.append(
            Finding(
                trigger="host_down",
                detail=f"the instance is {status}: {what}. The run is not hung: the machine is.",
                bottleneck="infra",
                evidence=(f"Vast: {_said(facts)}",),
                change_first="look at the instance on Vast.ai; if the host stays down, restart "
                "from the last checkpoint on another host (see the option table)",
                at_step=None,
            )
        )
    contract = contract_risk(facts, now_s, finish_base_at_s, finish_pess_at_s)
    if contract is not None and status in ("running", "starting", "paused_outbid"):
        found.append(
            Finding(
                trigger="contract_end",
                detail=contract,
                bottleneck="infra",
                evidence=(f"contract ends {_when(facts.end_date_s or now_s)}",),
                change_first="checkpoint at least hourly, and move before the contract ends to a "
                "host with a longer one (or finish sooner on a faster GPU)",
                at_step=None,
            )
        )
    return found


def contract_risk(
    facts: InstanceFacts | None,
    now_s: float,
    finish_base_at_s: float | None,
    finish_pess_at_s: float | None,
) -> str | None:
    """Says so when the host's contract ends before the run's pessimistic (or base) finish."""
    if facts is None or facts.end_date_s is None or facts.interruptible:
        return None
    end_s = facts.end_date_s
    left = fmt_duration(max(0.0, end_s - now_s))
    if finish_base_at_s is not None and finish_base_at_s > end_s:
        return (
            f"the host's contract ends in {left}, before the base finish "
            f"(in {fmt_duration(finish_base_at_s - now_s)}): the run will be cut off"
        )
    if finish_pess_at_s is not None and finish_pess_at_s > end_s:
        return (
            f"the host's contract ends in {left}, before the pessimistic finish "
            f"(in {fmt_duration(finish_pess_at_s - now_s)})"
        )
    return None


def describe_instance(track: InstanceTrack, now_s: float) -> str:
    """One phrase for the status message: what the instance is doing, and since when."""
    words = {
        "unknown": "status unknown",
        "starting": "starting",
        "running": "running",
        "paused_outbid": "paused by Vast (outbid)",
        "stopped": "stopped",
        "offline": "host offline",
        "exited": "container exited",
        "error": "error",
        "gone": "gone (destroyed?)",
    }[track.status]
    parts = [words]
    if track.status != "running" and track.status_since_s is not None:
        parts[0] += f" for {fmt_duration(now_s - track.status_since_s)}"
    lost_s = track.lost_s(now_s)
    if lost_s > 0:
        parts.append(f"{fmt_duration(lost_s)} lost to pauses")
    facts = track.facts
    if facts is not None and facts.end_date_s is not None and not facts.interruptible:
        parts.append(f"contract ends {_when(facts.end_date_s)}")
    if track.failures:
        parts.append(f"Vast unreadable {track.failures}× in a row")
    return " · ".join(parts)


def projected_finish_at_s(
    now_s: float,
    steps_done: int,
    target_steps: int,
    step_s: float | None,
    pessimistic_rate: float = 0.6,
) -> tuple[float | None, float | None]:
    """Base and pessimistic finish times from the expected step time (cheap: for checks)."""
    if step_s is None or step_s <= 0:
        return None, None
    left_s = max(0, target_steps - steps_done) * step_s
    return now_s + left_s, now_s + left_s / pessimistic_rate


def disk_line(usd_per_day: float | None) -> str:
    """What a stopped instance's disk costs, for the kill report and the reminders."""
    if usd_per_day is None:
        return "still billed while stopped (see Vast.ai → Instances)"
    return f"${usd_per_day:.2f}/day while stopped, until destroyed"


def render_disk_reminder(
    run_name: str,
    run_id: str,
    instance_id: str,
    usd_per_day: float | None,
    *,
    stopped_for_s: float,
    can_destroy: bool,
) -> Card:
    """A day after a stop, then weekly: the disk bills until the instance is destroyed."""
    return Card(
        title=f"Disk still billing · {run_name}",
        headline=f"instance {instance_id} has been stopped for {fmt_duration(stopped_for_s)}; "
        "its disk bills until it is destroyed.",
        fields=(CardField("Disk", disk_line(usd_per_day)),),
        notes=()
        if can_destroy
        else ("destroy it on Vast.ai → Instances when you no longer need the data",),
        buttons=(Button("Destroy instance…", action_id("destroy", run_id), "danger"),)
        if can_destroy
        else (),
        kind="disk-reminder",
    )


def without_quiet_alarms(findings: list[Finding], status: InstanceStatus) -> list[Finding]:
    """A paused, stopped or downed instance is why the run went quiet: say that alone."""
    if status not in QUIET_EXPLAINED:
        return findings
    return [f for f in findings if f.trigger not in ("hung", "silent")]


def _said(facts: InstanceFacts) -> str:
    status = facts.actual_status or "no status"
    message = (facts.status_msg or "").strip().splitlines()
    return f"{status}" + (f" ({message[0][:160]})" if message else "")


def _when(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%a %d %b %H:%M UTC")


__all__ = [
    "INSTANCE_TRIGGERS",
    "QUIET_EXPLAINED",
    "InstanceFacts",
    "InstanceStatus",
    "InstanceTrack",
    "billed_usd_per_hour",
    "contract_risk",
    "describe_instance",
    "disk_line",
    "disk_reminder_at_s",
    "instance_findings",
    "instance_status",
    "price_note",
    "projected_finish_at_s",
    "read_due",
    "render_disk_reminder",
    "storage_usd_per_day",
    "track_failure",
    "track_read",
    "without_quiet_alarms",
]
