"""``probecast triggers``: replay a step log through the trigger engine and the alert
lifecycle, and print the alerts a live run would have raised."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.adapters.steplog import StepLog, StepLogError, load_steps_csv
from bot.cli.errors import CliError
from bot.core.alerts import AlertPolicy, AlertState, plan_alerts
from bot.core.estimate import Pause, StepPoint, eval_cadence
from bot.core.fmt import fmt_duration
from bot.core.run_history import LossPoint, RunHistory, TriggerName
from bot.core.triggers import CheckMemory, TriggerSettings, evaluate_triggers
from bot.core.trim import trim_history
from reporter.argtypes import positive_float, positive_int

_DESCRIPTION = """\
Replay a step log on its own clock through the trigger engine, with a check every S
seconds of log time, and print the alerts a live run would have raised: when each fired,
repeated or resolved, with the likely bottleneck and the one thing to change first.

The CSV needs columns step,elapsed_s and may have loss and is_eval (1 on a row logged
when an eval ended). At each check the engine sees the rows up to that moment. The
reporter is taken to be alive throughout (a step log has no telemetry), so a gap in the
log reads as a hung job, never as a silent reporter; GPU and memory triggers need
telemetry and stay quiet here.
"""

_EPILOG = """\
example:
  probecast triggers --steps-csv run.csv --target-steps 111000 --json
"""

DEFAULT_CHECK_INTERVAL_S = 60.0
REPLAY_POST_INTERVAL_S = 5.0


@dataclass(frozen=True)
class ReplayAlert:
    """One alert action, stamped with the log time of the check that raised it."""

    t: float
    step: int | None
    action: str
    trigger: TriggerName
    bottleneck: str
    detail: str
    evidence: tuple[str, ...]
    change_first: str

    ending: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 3),
            "step": self.step,
            "action": self.action,
            "trigger": self.trigger,
            "bottleneck": self.bottleneck,
            "detail": self.detail,
            "evidence": list(self.evidence),
            "change_first": self.change_first,
            "ending": self.ending,
        }


@dataclass(frozen=True)
class Replay:
    alerts: tuple[ReplayAlert, ...]
    checks: int
    log_end_s: float


def replay_log(
    log: StepLog,
    *,
    target_steps: int,
    check_interval_s: float = DEFAULT_CHECK_INTERVAL_S,
    eval_every: int | None = None,
    steps_per_epoch: int | None = None,
    settings: TriggerSettings | None = None,
    on_check: Callable[[float, RunHistory, CheckMemory], None] | None = None,
    policy: AlertPolicy | None = None,
    trim: bool = True,
    origin_s: float | None = None,
) -> Replay:
    """Check every ``check_interval_s`` of log time until the last row; plan alerts.

    ``eval_every`` ``None``: inferred at each check from the eval rows seen so far.
    ``on_check`` sees each check's history and the memory it produced (for benches).
    ``trim``: between checks keep only what later checks read, as the service does;
    ``False`` hands ``on_check`` each check's whole history (the trim test compares).
    ``origin_s``: where the run began on the log's clock, if before its first row (a
    training clock at 0 when training started), as the service has the reporter's first
    event before any step.
    """
    settings = settings or TriggerSettings()
    policy = policy or AlertPolicy(first_reminder_s=settings.repeat_s)
    if check_interval_s <= 0:
        raise ValueError("check_interval_s must be > 0")
    rows = sorted(zip(log.points, log.losses, strict=True), key=lambda r: r[0].t_s)
    row_times = [p.t_s for p, _ in rows]
    evals = sorted(zip(log.pauses, log.eval_steps, strict=True), key=lambda e: e[0].end_s)
    eval_times = [p.end_s for p, _ in evals]
    starts = row_times[:1] + eval_times[:1]
    if not starts:
        return Replay((), 0, 0.0)
    first_s = min(starts) if origin_s is None else min(origin_s, *starts)
    end_s = max(row_times[-1:] + eval_times[-1:])
    memory = CheckMemory()
    active: dict[TriggerName, AlertState] = {}
    alerts: list[ReplayAlert] = []
    checks = math.ceil(end_s / check_interval_s) if end_s > 0 else 1
    # What later checks still read (`trim_history`, as the service keeps it): a check's
    # cost then does not grow with the log's length.
    points: list[StepPoint] = []
    losses: list[LossPoint] = []
    dropped = nonfinite_dropped = next_row = 0
    for k in range(1, checks + 1):
        now = k * check_interval_s
        upto = bisect_right(row_times, now)
        for point, loss in rows[next_row:upto]:
            points.append(point)
            if loss is not None:
                losses.append(LossPoint(point.step, point.t_s, loss))
        next_row = max(next_row, upto)
        n_evals = bisect_right(eval_times, now)
        pauses: list[Pause] = [p for p, _ in evals[:n_evals]]
        # An eval whose start the log shows (its bar drawn) is open until it ends, as the
        # service holds a start mark without its end.
        pauses += [
            Pause(p.kind, p.start_s, math.inf)
            for p, _ in evals[n_evals:]
            if p.start_s < p.end_s and p.start_s <= now
        ]
        history = RunHistory(
            steps=points,
            losses=losses,
            pauses=pauses,
            target_steps=target_steps,
            eval_every=eval_every or eval_cadence(s for _, s in evals[:n_evals]),
            steps_per_epoch=steps_per_epoch,
            first_event_at=first_s,
            last_event_at=now,  # the reporter's heartbeat: alive while the log runs
            exited=False,
            post_interval_s=REPLAY_POST_INTERVAL_S,
            losses_dropped=dropped,
            nonfinite_dropped=nonfinite_dropped,
        )
        findings, memory = evaluate_triggers(history, now, memory, settings)
        if on_check is not None:
            on_check(now, history, memory)
        if trim:
            kept = trim_history(history, now, memory, settings)
            points, losses = list(kept.steps), list(kept.losses)
            dropped, nonfinite_dropped = kept.losses_dropped, kept.nonfinite_dropped
        actions, active = plan_alerts(findings, active, now, silenced_until=None, policy=policy)
        if k == checks:  # the log ends: the run finished, whatever is open ends with it
            final, active = plan_alerts([], active, now, silenced_until=None, ended="finished")
            actions += final
        step = points[-1].step if points else None
        for action in actions:
            finding = action.finding
            alerts.append(
                ReplayAlert(
                    t=now,
                    step=step,
                    action=action.kind,
                    trigger=action.trigger,
                    bottleneck=finding.bottleneck if finding else "",
                    detail=finding.detail if finding else action.state.detail,
                    evidence=finding.evidence if finding else (),
                    change_first=finding.change_first if finding else "",
                    ending=action.ending,
                )
            )
    return Replay(tuple(alerts), checks, end_s)


# --- the command ------------------------------------------------------------------------


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "triggers",
        help="replay a step log (CSV) through the triggers and print the alerts",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--steps-csv",
        metavar="FILE",
        type=Path,
        required=True,
        help="step log: columns step,elapsed_s[,loss,is_eval]; other columns are ignored",
    )
    parser.add_argument(
        "--check-interval-s",
        metavar="S",
        type=positive_float,
        default=DEFAULT_CHECK_INTERVAL_S,
        help="seconds of log time between checks (default: %(default)g)",
    )
    parser.add_argument(
        "--target-steps",
        metavar="N",
        type=positive_int,
        help="the step the run ends at; sets the early checkpoint for loss movement "
        "(default: the log's last step)",
    )
    parser.add_argument(
        "--eval-every",
        metavar="E",
        type=positive_int,
        help="steps between evals (default: inferred from the eval rows seen so far)",
    )
    parser.add_argument(
        "--steps-per-epoch",
        metavar="N",
        type=positive_int,
        help="optimizer steps per epoch, where known: the first pause at an epoch's end "
        "gets the first-time allowance of the hung rule",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per alert action: {"t", "step", "action", "trigger", '
        '"bottleneck", "detail", "evidence", "change_first", "ending"}',
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Load, replay and print; user errors become ``CliError`` (exit 2)."""
    try:
        log = load_steps_csv(args.steps_csv)
    except StepLogError as exc:
        raise CliError(str(exc)) from None
    if not log.points:
        raise CliError(f"{args.steps_csv}: no training rows (rows with is_eval=0)")
    target = args.target_steps or max(p.step for p in log.points)
    replay = replay_log(
        log,
        target_steps=target,
        check_interval_s=args.check_interval_s,
        eval_every=args.eval_every,
        steps_per_epoch=args.steps_per_epoch,
    )
    if args.json:
        for alert in replay.alerts:
            print(json.dumps(alert.to_dict(), ensure_ascii=False, allow_nan=False))
    else:
        print(render_replay(replay, args.check_interval_s))
    return 0


def render_replay(replay: Replay, check_interval_s: float) -> str:
    lines = []
    for a in replay.alerts:
        when = f"[{fmt_duration(a.t)}] step {a.step if a.step is not None else '-'}"
        if a.action == "resolve":
            how = "resolved" if a.ending in (None, "recovered") else f"ended ({a.ending})"
            lines.append(f"{when}  {how} {a.trigger}: {a.detail}")
            continue
        lines.append(f"{when}  {a.action.upper()} {a.trigger} ({a.bottleneck}): {a.detail}")
        lines.extend(f"    · {e}" for e in a.evidence)
        lines.append(f"    change first: {a.change_first}")
    counts = {
        kind: sum(a.action == kind for a in replay.alerts)
        for kind in ("fire", "repeat", "reopen", "resolve")
    }
    reopened = f", {counts['reopen']} reopened" if counts["reopen"] else ""
    lines.append(
        f"{replay.checks} checks every {check_interval_s:g}s over "
        f"{fmt_duration(replay.log_end_s)} of log: {counts['fire']} fired, "
        f"{counts['repeat']} repeated{reopened}, {counts['resolve']} resolved"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command alone (as ``bot.cli`` would): for tests and ``python -m``."""
    parser = argparse.ArgumentParser(prog="probecast")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["triggers", *(sys.argv[1:] if argv is None else argv)])
    try:
        code: int = args.handler(args)
    except CliError as exc:
        print(f"probecast triggers: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
