"""The kill state machine: one kill, from the first press to "billing has stopped".

    requested ──confirm──▶ confirmed ──delivered──▶ stopping-process
        │                     │                          │ outcome, or the reporter is silent
        └──────cancel─────────┘                          ▼
              ▼                                  stopping-instance ──▶ done
          cancelled                                      └───────────▶ failed (step, why)

Every transition is a pure function of a `Kill` and the time; the service stores the
result with a compare-and-set on the old state, so two confirmations that race, a
replayed button or a restarted bot lead to one execution. Cancel is possible until the
reporter has the command (the process stop has started). A kill that never needs the
instance step (``PROBECAST_ON_KILL=none``, no instance id, no key anywhere) ends in done
with ``instance_result`` saying what still bills.

Exceptions: `KillConflict` (the transition does not apply; its message is the answer
to show the person who asked).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

KillState = Literal[
    "requested", "confirmed", "stopping-process", "stopping-instance", "done", "failed",
    "cancelled",
]  # fmt: skip
OnKill = Literal["stop", "destroy", "none"]
# Who stops the instance: the bot with VAST_API_KEY, the reporter with the instance-scoped
# CONTAINER_API_KEY Vast gives every container, or nobody (the final card says so).
InstanceVia = Literal["bot", "reporter", "none"]

TERMINAL: frozenset[KillState] = frozenset({"done", "failed", "cancelled"})
CANCELLABLE: frozenset[KillState] = frozenset({"requested", "confirmed"})
# A confirmation card left unanswered this long no longer confirms anything: the numbers
# it showed are stale, and the reporter should stop polling fast.
CONFIRM_WINDOW_S = 600.0
# While a kill is requested or under way, the reporter asks for commands this often.
KILL_POLL_S = 2.0
# Instance stop retries (429, 5xx, timeouts): Vast's 429 has no Retry-After, so back off.
INSTANCE_RETRY_DELAYS_S: tuple[float, ...] = (15.0, 30.0, 60.0, 120.0)


class KillConflict(Exception):
    """The transition does not apply to the kill as it stands; say why to the person."""


@dataclass(frozen=True)
class Kill:
    id: str
    run_id: str
    state: KillState
    requested_by: str
    requested_at: float
    on_kill: OnKill
    via: InstanceVia
    via_reason: str = ""  # why ``via`` is what it is, in words for the final card
    confirmed_by: str | None = None
    confirmed_at: float | None = None
    deadline_at: float | None = None  # the reporter must have answered by then
    process_started_at: float | None = None
    process_result: str | None = None
    instance_attempts: int = 0
    instance_next_at: float | None = None
    instance_accepted: bool = False  # Vast took the stop/destroy call: never send it again
    instance_result: str | None = None
    failed_step: str | None = None
    failure: str | None = None
    finished_at: float | None = None
    cancelled_by: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def expired(self, now_s: float) -> bool:
        """An unanswered confirmation card no longer counts."""
        return self.state == "requested" and now_s - self.requested_at > CONFIRM_WINDOW_S

    @property
    def pending(self) -> bool:
        """Under way: the reporter should poll fast, and a new kill is refused."""
        return self.state in ("confirmed", "stopping-process", "stopping-instance")


def plan_instance(
    on_kill: OnKill, instance_id: str | None, bot_has_key: bool, reporter_has_key: bool
) -> tuple[InstanceVia, str]:
    """Who will stop the instance, and why that one; the bot's own key comes first."""
    if on_kill == "none":
        return (
            "none",
            "left running (this bot is set to leave instances alone after a kill): "
            "it keeps billing",
        )
    if instance_id is None:
        return "none", (
            "the machine was not stopped (the reporter sent no Vast instance id): "
            "stop the machine by hand"
        )
    if bot_has_key:
        return "bot", f"the bot will {on_kill} instance {instance_id} with its Vast API key"
    if reporter_has_key:
        return (
            "reporter",
            f"the reporter will {on_kill} its own instance with the instance's own Vast key",
        )
    return "none", (
        f"not {_past(on_kill)}: neither the bot nor the instance has a Vast API key; "
        f"{on_kill} instance {instance_id} on Vast.ai → Instances"
    )


def request(
    kill_id: str,
    run_id: str,
    by: str,
    now_s: float,
    on_kill: OnKill,
    via: InstanceVia,
    via_reason: str,
) -> Kill:
    return Kill(
        id=kill_id,
        run_id=run_id,
        state="requested",
        requested_by=by,
        requested_at=now_s,
        on_kill=on_kill,
        via=via,
        via_reason=via_reason,
    )


def confirm(kill: Kill, by: str, now_s: float, deadline_at: float) -> Kill:
    if kill.state != "requested":
        raise KillConflict(_already(kill))
    if kill.expired(now_s):
        raise KillConflict("that confirmation has expired; ask for the kill again")
    return replace(
        kill, state="confirmed", confirmed_by=by, confirmed_at=now_s, deadline_at=deadline_at
    )


def cancel(kill: Kill, by: str, now_s: float) -> Kill:
    if kill.state not in CANCELLABLE:
        if kill.state == "cancelled":
            raise KillConflict(f"already cancelled by {kill.cancelled_by}")
        if kill.terminal:
            raise KillConflict(_already(kill))
        raise KillConflict("too late: the reporter already has the kill")
    return replace(kill, state="cancelled", cancelled_by=by, finished_at=now_s)


def delivered(kill: Kill, now_s: float) -> Kill:
    """The command went out in a response to the reporter: the process stop has started."""
    if kill.state == "stopping-process":
        return kill  # delivered again before its outcome came back
    if kill.state != "confirmed":
        raise KillConflict(_already(kill))
    return replace(kill, state="stopping-process", process_started_at=now_s)


def process_stopped(kill: Kill, result: str, now_s: float) -> Kill:
    """The reporter's outcome, or its silence past the deadline (``result`` says which)."""
    if kill.state not in ("confirmed", "stopping-process"):
        raise KillConflict(_already(kill))
    after = replace(kill, process_result=result)
    if kill.via == "none":
        return replace(after, state="done", instance_result=kill.via_reason, finished_at=now_s)
    return replace(after, state="stopping-instance", instance_next_at=now_s)


def instance_accepted(kill: Kill) -> Kill:
    """Vast took the stop or destroy call; what remains is to read back the state."""
    _expect(kill, "stopping-instance")
    return replace(kill, instance_accepted=True)


def instance_done(kill: Kill, result: str, now_s: float) -> Kill:
    _expect(kill, "stopping-instance")
    return replace(
        kill, state="done", instance_result=result, instance_next_at=None, finished_at=now_s
    )


def instance_failed(kill: Kill, why: str, now_s: float, *, retryable: bool) -> Kill:
    """A failed attempt: try again later while retries last, else fail with what to do."""
    _expect(kill, "stopping-instance")
    attempts = kill.instance_attempts + 1
    if retryable and attempts <= len(INSTANCE_RETRY_DELAYS_S):
        delay_s = INSTANCE_RETRY_DELAYS_S[attempts - 1]
        return replace(kill, instance_attempts=attempts, instance_next_at=now_s + delay_s)
    verb = kill.on_kill if kill.on_kill != "none" else "stop"
    return replace(
        kill,
        state="failed",
        instance_attempts=attempts,
        instance_next_at=None,
        failed_step="instance",
        failure=f"{why}; {verb} the instance by hand on Vast.ai: Instances → {verb}",
        finished_at=now_s,
    )


def describe(kill: Kill) -> str:
    """One line for the status card and the audit."""
    if kill.state == "requested":
        return f"asked by {kill.requested_by}, waiting for confirmation"
    if kill.state == "confirmed":
        return f"confirmed by {kill.confirmed_by}; waiting for the reporter"
    if kill.state == "stopping-process":
        return f"confirmed by {kill.confirmed_by}; stopping the training process"
    if kill.state == "stopping-instance":
        retry = f" (attempt {kill.instance_attempts + 1})" if kill.instance_attempts else ""
        return f"confirmed by {kill.confirmed_by}; stopping the instance{retry}"
    if kill.state == "done":
        # "done … not stopped" read as a contradiction: say what was done, then the machine.
        return f"done: training stopped (kill by {kill.confirmed_by}); {kill.instance_result}"
    if kill.state == "failed":
        return f"failed at the {kill.failed_step} step: {kill.failure}"
    return f"cancelled by {kill.cancelled_by}"


def _already(kill: Kill) -> str:
    if kill.state == "requested":
        return f"waiting for confirmation (asked by {kill.requested_by})"
    if kill.state == "cancelled":
        return f"cancelled by {kill.cancelled_by}"
    return f"already {describe(kill)}; nothing more to do"


def _expect(kill: Kill, state: KillState) -> None:
    if kill.state != state:
        raise KillConflict(_already(kill))


def _past(on_kill: OnKill) -> str:
    return "destroyed" if on_kill == "destroy" else "stopped"


__all__ = [
    "CONFIRM_WINDOW_S",
    "INSTANCE_RETRY_DELAYS_S",
    "KILL_POLL_S",
    "InstanceVia",
    "Kill",
    "KillConflict",
    "KillState",
    "OnKill",
    "cancel",
    "confirm",
    "delivered",
    "describe",
    "instance_accepted",
    "instance_done",
    "instance_failed",
    "plan_instance",
    "process_stopped",
    "request",
]
