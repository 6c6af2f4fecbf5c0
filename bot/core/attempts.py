"""Attempts of one job, compared: what the relaunch changed, whether exactly one thing
changed, and what it bought (pace, time, cost, alerts), with what to try next.

The method's loop is measure → diagnose → change one variable → relaunch. Pure: the
service gathers each attempt's `AttemptSummary` and launch record; this decides and words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.core.card import Card, CardField
from bot.core.fmt import fmt_duration

# The method's optimization order, for a run that holds no alert to say what comes next.
METHOD_ORDER = (
    "batch size and gradient accumulation",
    "the data pipeline (workers, prefetch, pinned memory)",
    "logging, eval and checkpoint overhead",
    "precision and activation checkpointing",
    "torch.compile or more GPUs, once the baseline is stable",
)


@dataclass(frozen=True)
class Launch:
    """What one attempt ran, as its reporter recorded it (secrets already left out)."""

    command: tuple[str, ...] = ()
    framework_args: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    packages: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One variable that differs between two attempts."""

    what: str  # "--batch-size", "GPU", "env CUDA_VISIBLE_DEVICES", "package torch", …
    before: str | None  # None: not set before
    after: str | None  # None: not set now

    def text(self) -> str:
        if self.before is None:
            return f"{self.what} {self.after} (new)"
        if self.after is None:
            return f"{self.what} {self.before} (dropped)"
        return f"{self.what} {self.before} → {self.after}"


def command_options(command: Sequence[str]) -> dict[str, str]:
    """A command line as named values: ``--flag value``, ``--flag=value``, a bare
    ``--switch`` (``on``), ``key=value`` overrides (Hydra), and the rest in order."""
    options: dict[str, str] = {}
    positional: list[str] = []
    args = list(command)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and len(arg) > 1 and not _is_number(arg):
            name, eq, value = arg.partition("=")
            if eq:
                options[name] = value
            elif i + 1 < len(args) and not (
                args[i + 1].startswith("-") and not _is_number(args[i + 1])
            ):
                options[name] = args[i + 1]
                i += 1
            else:
                options[name] = "on"
        elif "=" in arg and not arg.startswith(("/", ".")):
            name, _, value = arg.partition("=")
            options[name] = value
        else:
            positional.append(arg)
        i += 1
    if positional:
        options["command"] = " ".join(positional)
    return options


def launch_changes(
    before: Launch | None,
    after: Launch | None,
    *,
    gpu_before: str,
    gpu_after: str,
) -> list[Change]:
    """Every variable that differs, command-line flags first (what people change most)."""
    changes: list[Change] = []
    if before is not None and after is not None:
        changes += _dict_changes(
            command_options(before.command), command_options(after.command), ""
        )
        changes += _dict_changes(before.framework_args, after.framework_args, "trainer ")
        changes += _dict_changes(before.env, after.env, "env ")
        if before.git_commit != after.git_commit:
            changes.append(
                Change("git commit", _short(before.git_commit), _short(after.git_commit))
            )
        if before.git_dirty != after.git_dirty and after.git_dirty is not None:
            changes.append(
                Change("uncommitted changes", _yes(before.git_dirty), _yes(after.git_dirty))
            )
        changes += _dict_changes(before.packages, after.packages, "package ")
    if gpu_before != gpu_after:
        changes.append(Change("GPU", gpu_before, gpu_after))
    return changes


@dataclass(frozen=True)
class AttemptSummary:
    """What one attempt measured and projected, as far as it got."""

    name: str
    attempt: int
    step_per_s: float | None
    work_per_s: float | None = None  # samples or tokens per second, when reported
    work_unit: str | None = None  # "samples" or "tokens"
    total_s: float | None = None  # projected wall time, base scenario
    cost_usd: float | None = None  # projected cost, base scenario
    alerts: tuple[str, ...] = ()  # labels of the alerts it raised
    change_next: str | None = None  # the holding diagnosis's "change first", if any


@dataclass(frozen=True)
class Comparison:
    before: AttemptSummary
    after: AttemptSummary
    changes: tuple[Change, ...]
    speedup: float | None  # after's pace over before's (work/s where both report it)
    pace_unit: str  # "step/s", "samples/s" or "tokens/s"
    alerts_gone: tuple[str, ...]
    alerts_new: tuple[str, ...]
    next_try: str

    @property
    def one_variable(self) -> bool:
        return len(self.changes) == 1


def compare_attempts(
    before: AttemptSummary, after: AttemptSummary, changes: Sequence[Change]
) -> Comparison:
    """What the relaunch bought. Where the step's size changed (a bigger batch), steps are
    not comparable: samples or tokens per second are, when both attempts report them."""
    same_work = before.work_unit is not None and before.work_unit == after.work_unit
    if same_work and before.work_per_s and after.work_per_s:
        speedup, unit = after.work_per_s / before.work_per_s, f"{after.work_unit}/s"
    elif before.step_per_s and after.step_per_s:
        speedup, unit = after.step_per_s / before.step_per_s, "step/s"
    else:
        speedup, unit = None, "step/s"
    gone = tuple(a for a in before.alerts if a not in after.alerts)
    new = tuple(a for a in after.alerts if a not in before.alerts)
    if after.change_next:
        next_try = after.change_next
    else:
        tried = " ".join(c.what for c in changes).lower()
        untried = [step for step in METHOD_ORDER if step.split()[0] not in tried]
        next_try = (
            f"nothing holds now; if it should go faster, next in the method's order: "
            f"{(untried or METHOD_ORDER)[0]}"
        )
    return Comparison(before, after, tuple(changes), speedup, unit, gone, new, next_try)


def render_comparison(comparison: Comparison, run_id: str, pace_note: str | None = None) -> Card:
    """The card a relaunch gets once its probe completes: what changed and what it bought,
    and (``pace_note``) whether its ETA follows the earlier attempt's pace profile."""
    c = comparison
    before, after = c.before, c.after
    changed = "; ".join(x.text() for x in c.changes[:6]) or "nothing recorded changed"
    if len(c.changes) > 6:
        changed += f"; and {len(c.changes) - 6} more"
    if c.speedup is None:
        verdict = "pace not comparable yet"
    elif c.speedup >= 1:
        verdict = f"{c.speedup:.2f}× faster"
    else:
        verdict = f"{1 / c.speedup:.2f}× slower"
    headline = (
        f"{verdict}: {_time_cost(after)} instead of {_time_cost(before)}"
        if after.total_s is not None and before.total_s is not None
        else verdict
    )
    fields = [
        CardField("Changed", changed),
        CardField("Pace", f"{_pace(before, c.pace_unit)} → {_pace(after, c.pace_unit)}"),
        CardField("Alerts", _alerts(c)),
        CardField("Next", c.next_try),
    ]
    if pace_note is not None:
        fields.append(CardField("ETA", pace_note))
    notes: tuple[str, ...] = ()
    if len(c.changes) > 1:
        notes = (
            f"⚠ {len(c.changes)} things changed at once: the difference cannot be "
            "attributed to any one of them. Change one variable per relaunch.",
        )
    return Card(
        title=f"Attempt {after.attempt} vs {before.attempt} · {after.name}",
        headline=headline,
        fields=tuple(fields),
        notes=notes,
        kind="comparison",
    )


def _dict_changes(before: Mapping[str, str], after: Mapping[str, str], prefix: str) -> list[Change]:
    keys = list(dict.fromkeys([*before, *after]))
    return [
        Change(f"{prefix}{key}", before.get(key), after.get(key))
        for key in keys
        if before.get(key) != after.get(key)
    ]


def _time_cost(summary: AttemptSummary) -> str:
    cost = "" if summary.cost_usd is None else f" for ${summary.cost_usd:,.2f}"
    return f"{fmt_duration(summary.total_s)}{cost}"


def _pace(summary: AttemptSummary, unit: str) -> str:
    value = summary.work_per_s if unit != "step/s" else summary.step_per_s
    return "—" if value is None else f"{value:,.3g} {unit}"


def _alerts(c: Comparison) -> str:
    parts = []
    if c.alerts_gone:
        parts.append("gone: " + ", ".join(c.alerts_gone))
    if c.alerts_new:
        parts.append("new: " + ", ".join(c.alerts_new))
    if not parts:
        held = ", ".join(c.after.alerts)
        return f"unchanged ({held})" if held else "none before or now"
    return "; ".join(parts)


def _short(commit: str | None) -> str | None:
    return None if commit is None else commit[:10]


def _yes(flag: bool | None) -> str | None:
    return None if flag is None else ("yes" if flag else "no")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


__all__ = [
    "METHOD_ORDER",
    "AttemptSummary",
    "Change",
    "Comparison",
    "Launch",
    "command_options",
    "compare_attempts",
    "launch_changes",
    "render_comparison",
]
