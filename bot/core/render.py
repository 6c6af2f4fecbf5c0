"""Cards for every message probecast sends, built from plain data and a ``now``.

Phones read these: the headline carries the ETA with its band, the spend so far and the
projected cost; details follow in fields, most important first.
"""

from __future__ import annotations

import csv
import io
import math
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.core.card import Button, Card, CardField, Table, action_id
from bot.core.estimate import Estimate
from bot.core.fmt import fmt_duration
from bot.core.options import OptionRow, OptionTable
from bot.core.projection import project_finish
from bot.core.schedule import TableRevision
from bot.core.triggers import Finding

OPTION_COLUMNS = (
    "GPU option",
    "$/h",
    "VRAM",
    "CPU RAM",
    "TFLOPS",
    "HBM BW",
    "step/s",
    "time (opt/base/pess)",
    "cost (opt/base/pess)",
    "setup/debug tax %",
    "major risks",
    "decision",
)


@dataclass(frozen=True)
class RunView:
    """What a message needs to know about a run besides its estimate."""

    run_id: str
    name: str
    state: str
    target_steps: int
    gpu_label: str
    usd_per_hour: float | None
    last_event_age_s: float | None = None
    kept_until_s: float | None = None
    kill_state: str | None = None
    return_code: int | None = None
    spent_usd: float | None = None
    alerts: tuple[str, ...] = ()  # triggers that hold now
    clearing: tuple[str, ...] = ()  # triggers that stopped holding, alert not yet resolved
    instance_id: str | None = None  # the Vast container id, when the reporter knows it
    instance_state: str | None = None  # the instance as Vast last said, when it was read
    attempt: int = 1  # which attempt of its job (name) this run is
    pace_note: str | None = None
    """Whether the ETA follows an earlier attempt's pace profile, and if not, why not."""
    kill_confirm: str | None = None  # what a Kill button's confirm dialog says
    as_of_s: float | None = None  # when this view was read (Unix seconds)
    last_event_at_s: float | None = None


def fmt_exit_code(code: int) -> str:
    """``1``; a negative code is the signal that ended the process: ``-9 (SIGKILL)``."""
    if code >= 0:
        return str(code)
    try:
        return f"{code} ({signal.Signals(-code).name})"
    except ValueError:
        return str(code)


def fmt_usd(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) < 1:
        return f"${value:.3f}"  # a probe's first minutes cost cents; show them
    return f"${value:,.2f}" if value < 1000 else f"${value:,.0f}"


def fmt_num(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.{digits}f}{unit}"


def fmt_rate(step_per_s: float | None) -> str:
    if step_per_s is None:
        return "—"
    return f"{step_per_s:.3g}"


def _band(values: Sequence[str]) -> str:
    return " / ".join(values)


def decision_words(row: OptionRow, current: OptionRow, best_switch: OptionRow | None) -> str:
    """Unambiguous words for a row's decision: "stay", "switch to <GPU>" or "kill" for the
    run itself; an alternative not worth taking says so instead of "keep"."""
    if row.decision == "kill":
        return "kill"
    if row is current:
        return f"switch to {best_switch.gpu_option}" if best_switch is not None else "stay"
    if row.decision == "switch":
        return f"switch to {row.gpu_option}"
    return "not worth switching"


def _best_switch(table: OptionTable) -> OptionRow | None:
    switching = [r for r in table.rows[1:] if r.decision == "switch"]
    if not switching or table.rows[0].decision == "kill":
        return None
    return min(switching, key=lambda r: r.finish_cost_usd or math.inf)


def _row_cells(row: OptionRow, words: str) -> tuple[str, ...]:
    time_cell = "—"
    cost_cell = "—"
    if row.time_h is not None:
        time_cell = _band(
            [fmt_duration(h * 3600) for h in (row.time_h.opt, row.time_h.base, row.time_h.pess)]
        )
    if row.cost_usd is not None:
        cost_cell = _band(
            [fmt_usd(c) for c in (row.cost_usd.opt, row.cost_usd.base, row.cost_usd.pess)]
        )
    rate = fmt_rate(row.step_per_s)
    return (
        row.gpu_option,
        fmt_usd(row.usd_per_hour),
        fmt_num(row.vram_gib, " GiB", 0),
        fmt_num(row.cpu_ram_gib, " GiB", 0),
        fmt_num(row.tflops, "", 0),
        fmt_num(row.hbm_bw_gbs, " GB/s", 0),
        f"{rate} ({'observed' if row.observed else 'predicted'})" if rate != "—" else rate,
        time_cell,
        cost_cell,
        fmt_num(None if row.setup_debug_tax is None else row.setup_debug_tax * 100, "%", 1),
        "; ".join(row.risks) or "none seen",
        words,
    )


def render_option_table(
    table: OptionTable, run: RunView, revised: TableRevision | None = None
) -> Card:
    """Three short lines a phone can read (this run, the two best alternatives); the
    whole table rides along in ``Card.table`` for the PNG and CSV attachments. A table
    rebuilt because the pace moved says so first."""
    current = table.rows[0]
    best_switch = _best_switch(table)

    def words(row: OptionRow) -> str:
        return decision_words(row, current, best_switch)

    if current.time_h is not None:
        # The whole run, from its start: the status message counts the time left. A switch
        # headline gives the switch's figures and labels this run's, so "SWITCH TO X ·
        # whole run 3h for $1.35" never reads as what X would cost.
        stay = (
            f"{fmt_duration(current.time_h.base * 3600)}"
            f" for {fmt_usd(current.cost_usd.base if current.cost_usd else None)}"
            f" at {fmt_rate(current.step_per_s)} step/s"
        )
        headline = f"{words(current).upper()} · whole run {stay}"
        if best_switch is not None and best_switch.time_h is not None:
            cost = best_switch.cost_usd.base if best_switch.cost_usd else None
            headline = (
                f"{words(current).upper()} · whole run "
                f"{fmt_duration(best_switch.time_h.base * 3600)} for {fmt_usd(cost)}"
                f" (staying: {stay})"
            )
    else:
        headline = "no throughput measured yet"
    best = sorted(table.rows[1:], key=lambda r: (r.decision != "switch", r.finish_cost_usd or 0))
    fields = tuple(_short_line(r, words(r)) for r in (current, *best[:2]))
    notes = tuple(f"Missing: {why}" for why in table.missing)
    if revised is not None:
        pace = (fmt_rate(revised.from_step_per_s), fmt_rate(revised.to_step_per_s))
        changed = [f"pace {pace[0]} → {pace[1]} step/s"] if pace[0] != pace[1] else []
        if revised.from_target_steps and revised.to_target_steps:
            total = f"total {revised.from_target_steps:,} → {revised.to_target_steps:,} steps"
            changed.insert(0, total)
        notes = (f"Revised at step {revised.at_step} ({'; '.join(changed)}).", *notes)
    if len(table.rows) > 1:
        notes += (
            f"{len(table.rows) - 1} alternatives, predicted from this run's probe; "
            "the full table is attached (PNG, CSV).",
        )
    if table.left_out:
        notes += (f"Left out: {'; '.join(table.left_out[:3])}",)
    notes += table.notes
    notes += (
        "Scenarios are the method's: step/s ×1.2 (opt), ×1.0 (base), ×0.6 (pess).",
        "A stopped Vast instance still bills its disk; destroy it to stop paying.",
    )
    return Card(
        title=f"Option table · {run.name}",
        headline=headline,
        fields=fields,
        table=Table(OPTION_COLUMNS, tuple(_row_cells(r, words(r)) for r in table.rows)),
        notes=notes,
        buttons=_run_buttons(run),
        kind="table",
    )


def _short_line(row: OptionRow, words: str) -> CardField:
    """``1× H100 SXM · switch to 1× H100 SXM`` → ``whole run 1h 10m · $3.20 · 2.1 step/s
    predicted — why``."""
    base_time = fmt_duration(row.time_h.base * 3600) if row.time_h else "—"
    base_cost = fmt_usd(row.cost_usd.base if row.cost_usd else None)
    kind = "observed" if row.observed else "predicted"
    value = f"whole run {base_time} · {base_cost} · {fmt_rate(row.step_per_s)} step/s {kind}"
    if row.reason:
        value += f" — {row.reason}"
    label = words if words == f"switch to {row.gpu_option}" else f"{row.gpu_option} · {words}"
    return CardField(label, value)


CSV_COLUMNS = (
    "gpu_option",
    "usd_per_hour",
    "vram_gib",
    "cpu_ram_gib",
    "tflops",
    "hbm_bw_gbs",
    "step_per_s",
    "step_per_s_source",
    "time_optimistic_h",
    "time_base_h",
    "time_pessimistic_h",
    "cost_optimistic_usd",
    "cost_base_usd",
    "cost_pessimistic_usd",
    "setup_debug_tax_pct",
    "major_risks",
    "decision",
)


def _csv_num(value: float | None, digits: int) -> str:
    # Plain numbers (no "$", no "h 10m"): a spreadsheet sorts them; empty where unknown.
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def option_table_csv(table: OptionTable) -> str:
    """The full table as CSV for a spreadsheet: one number per cell, units in the column
    names, each scenario in a column of its own so every one sorts."""
    current = table.rows[0] if table.rows else None
    best_switch = _best_switch(table) if table.rows else None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in table.rows:
        assert current is not None
        times = (row.time_h.opt, row.time_h.base, row.time_h.pess) if row.time_h else (None,) * 3
        costs = (
            (row.cost_usd.opt, row.cost_usd.base, row.cost_usd.pess)
            if row.cost_usd
            else (None,) * 3
        )
        tax = None if row.setup_debug_tax is None else row.setup_debug_tax * 100
        writer.writerow(
            (
                row.gpu_option,
                _csv_num(row.usd_per_hour, 3),
                _csv_num(row.vram_gib, 0),
                _csv_num(row.cpu_ram_gib, 0),
                _csv_num(row.tflops, 0),
                _csv_num(row.hbm_bw_gbs, 0),
                _csv_num(row.step_per_s, 4),
                "" if row.step_per_s is None else ("observed" if row.observed else "predicted"),
                *(_csv_num(h, 3) for h in times),
                *(_csv_num(c, 2) for c in costs),
                _csv_num(tax, 1),
                "; ".join(row.risks),
                decision_words(row, current, best_switch),
            )
        )
    return out.getvalue()


def _run_buttons(run: RunView) -> tuple[Button, ...]:
    # Kill first and Keep plain: one careless tap must not silence alerts unawares.
    return (
        Button("Kill…", action_id("kill", run.run_id), "danger", run.kill_confirm),
        Button("Keep (silence alerts 2h)", action_id("keep", run.run_id)),
    )


TRIGGER_LABELS = {
    "throughput": "Throughput below expected",
    "gpu_util": "GPU underused",
    "near_oom": "Near out of memory",
    "oom": "Out of memory",
    "no_progress": "Metric not moving",
    "nonfinite_loss": "Loss is NaN/inf",
    "hung": "No progress: job looks hung",
    "silent": "Reporter silent",
    "contract_end": "Contract ends before the run",
    "outbid": "Paused by Vast (outbid)",
    "host_down": "Instance down",
}
BOTTLENECK_LABELS = {
    "input": "input pipeline",
    "compute": "compute",
    "memory": "memory",
    "logging": "logging / eval / checkpoint overhead",
    "infra": "infrastructure",
    "unknown": "not clear yet",
}


def render_audit(run: RunView, decisions: Sequence[Mapping[str, Any]]) -> Card:
    """Every decision on a run, oldest first: who, when, until, and the numbers then."""
    fields = []
    for d in decisions[-40:]:
        when = datetime.fromtimestamp(float(d["at"]), UTC).strftime("%m-%d %H:%M UTC")
        detail = d.get("detail") or {}
        parts = [f"by {d['by']}"]
        if d.get("until"):
            until = datetime.fromtimestamp(float(d["until"]), UTC).strftime("%m-%d %H:%M")
            parts.append(f"until {until}")
        if detail.get("step") is not None:
            parts.append(f"step {detail['step']:,}")
        if detail.get("spent_usd") is not None:
            parts.append(f"spent {fmt_usd(detail['spent_usd'])}")
        if detail.get("projected_cost_usd") is not None:
            parts.append(f"projected {fmt_usd(detail['projected_cost_usd'])}")
        fields.append(CardField(f"{when} · {d['kind']}", " · ".join(parts)))
    notes = () if len(decisions) <= 40 else (f"{len(decisions) - 40} older decisions not shown",)
    return Card(
        title=f"Audit · {run.name}",
        headline=f"{len(decisions)} decision(s) recorded" if decisions else "no decisions yet",
        fields=tuple(fields),
        notes=notes,
        kind="audit",
    )


def how_kill_stops(kill_by: str | None, grace_s: float) -> str:
    """How the training stops: a child gets signals; an in-process run reads a flag."""
    if kill_by == "signal":
        return f"the training process gets SIGTERM, {grace_s:.0f} s to save, then SIGKILL"
    if kill_by == "flag":
        return "the training stops itself at its next step (it reads a stop flag)"
    return "its reporter stops the training"


def after_kill_billing(
    via: str,
    on_kill: str,
    instance_id: str | None,
    usd_per_hour: float | None,
    storage_usd_per_hour: float | None,
) -> str:
    """What keeps billing once the kill is done, with its $/h."""
    instance = f"Vast instance {instance_id}" if instance_id else "the machine"
    if via == "none" or on_kill == "none":
        return f"{instance} keeps running and billing {fmt_usd(usd_per_hour)}/h until you stop it"
    if on_kill == "destroy":
        return f"{instance} is destroyed: billing ends"
    disk = (
        f"{fmt_usd(storage_usd_per_hour)}/h"
        if storage_usd_per_hour is not None
        else "(Vast.ai → Instances shows its $/h)"
    )
    return f"{instance} is stopped: its disk keeps billing {disk} until you destroy it"


def kill_confirm_text(
    run: RunView,
    *,
    projected_usd: float | None,
    how: str,
    after: str,
) -> str:
    """What a kill does and costs, in the words a confirm dialog shows (≤ 300 characters):
    the run, the spend so far, the cost if kept, and what keeps billing afterwards."""
    # The moment is said: a message edited rarely (the option table) keeps its dialog,
    # and "$0.007 so far" read 40 minutes later disagreed with the status beside it.
    spent = "Spent" if run.as_of_s is None else f"As of {_clock(run.as_of_s)}: spent"
    return (
        f"Kill {run.name}? {spent} {_spent(None, run)} so far; {fmt_usd(projected_usd)} if "
        f"kept to the end. {how[0].upper()}{how[1:]}; then {after}."
    )[:300]


@dataclass(frozen=True)
class TroubleCost:
    """What an alert's trouble costs: the finish and bill at the current pace against
    the expected one, and what the episode has cost so far. Times are Unix seconds."""

    finish_at_s: float | None  # None: at the current pace it never finishes (a hang)
    cost_usd: float | None
    expected_finish_at_s: float
    expected_cost_usd: float | None
    lost_usd: float | None  # this episode so far: pay for nothing (hang) or the slow share


def trouble_cost(
    estimate: Estimate | None,
    *,
    now: float,
    expected_step_s: float | None,
    pace_ratio: float | None,
    spent_usd: float | None,
    held_s: float,
) -> TroubleCost | None:
    """``None`` until the run has an estimate and an expected pace. The current pace is
    the estimate's, the one the status message shows (`project_finish` for both); a hang
    (``pace_ratio`` 0) never finishes. Without a measured pace (GPU underused, loss not
    moving) the loss so far is the whole bill of the episode."""
    if estimate is None or not expected_step_s or expected_step_s <= 0:
        return None
    current = project_finish(estimate, now=now, spent_usd=spent_usd)
    expected = project_finish(
        estimate, now=now, spent_usd=spent_usd, step_per_s=1 / expected_step_s
    )
    usd_per_hour = estimate.inputs.usd_per_hour
    per_s = None if usd_per_hour is None else usd_per_hour / 3600
    ratio = 1.0 if pace_ratio is None else pace_ratio
    lost = None if per_s is None else held_s * per_s * (1 - min(1.0, max(0.0, ratio)))
    if pace_ratio is None and per_s is not None:
        lost = held_s * per_s
    hung = pace_ratio is not None and pace_ratio <= 0
    assert expected.finish_at_s is not None
    return TroubleCost(
        finish_at_s=None if hung else current.finish_at_s,
        cost_usd=None if hung else current.cost_usd,
        expected_finish_at_s=expected.finish_at_s,
        expected_cost_usd=expected.cost_usd,
        lost_usd=lost,
    )


def _clock(t: float, *, seconds: bool = False) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%a %H:%M:%S UTC" if seconds else "%a %H:%M UTC")


def cost_line(cost: TroubleCost) -> str:
    """At the current pace the run finishes at … for $…, instead of … for $… ."""
    expected = f"{_clock(cost.expected_finish_at_s)} for {fmt_usd(cost.expected_cost_usd)}"
    if cost.finish_at_s is None:
        return (
            f"At the current pace the run never finishes (it bills for nothing), instead "
            f"of finishing {expected}."
        )
    return (
        f"At the current pace the run finishes {_clock(cost.finish_at_s)} for "
        f"{fmt_usd(cost.cost_usd)}, instead of {expected}."
    )


def render_alert(
    finding: Finding,
    estimate: Estimate | None,
    run: RunView,
    repeat: bool,
    kill_confirm: str | None = None,
    *,
    cost: TroubleCost | None = None,
    held_s: float | None = None,
    reopened: bool = False,
    final_reminder: bool = False,
) -> Card:
    """An alert people should act on: what holds, what it costs, the likely cause, the
    one thing to try. A reminder (``repeat``) also says how long it has lasted and what
    it has cost so far; a throughput alert offers to accept the pace as the new normal."""
    label = TRIGGER_LABELS.get(finding.trigger, finding.trigger)
    fields = []
    # The impact goes right under what holds: the first three lines say what it costs.
    if cost is not None:
        impact = cost_line(cost)
    else:
        impact = (
            f"Spent {_spent(estimate, run)} so far at {fmt_usd(run.usd_per_hour)}/h; "
            "no expected pace yet to say what this costs."
        )
    if repeat and held_s is not None:
        so_far = "" if cost is None or cost.lost_usd is None else f"; ≈ {fmt_usd(cost.lost_usd)}"
        lost_what = " lost" if finding.pace_ratio is not None else " billed"
        fields.append(
            CardField(
                "Lasting",
                f"{fmt_duration(held_s)}{so_far}{lost_what if so_far else ''} so far"
                + (" (last reminder)" if final_reminder else ""),
            )
        )
    fields += [
        CardField("Likely bottleneck", BOTTLENECK_LABELS.get(finding.bottleneck, "?")),
        CardField("Change first", finding.change_first or "—"),
    ]
    if finding.at_step is not None:
        fields.append(CardField("At step", f"{finding.at_step:,}"))
    fields.append(CardField("Spent so far", _spent(estimate, run)))
    buttons = [Button("Kill…", action_id("kill", run.run_id), "danger", kill_confirm)]
    if finding.trigger == "throughput":
        buttons.append(
            Button(
                "New normal",
                action_id("new-normal", run.run_id),
                confirm="Adopts the current pace as expected: the ETA, the option table and "
                "this alert follow it (audited).",
            )
        )
    buttons += [
        Button("Keep (silence 2h)", action_id("keep", run.run_id), "primary"),
        Button("Snooze 1h", action_id("snooze", run.run_id)),
    ]
    prefix = "Still: " if repeat else ("Back: " if reopened else "")
    return Card(
        title=f"{prefix}{label} · {run.name}",
        headline=f"{finding.detail}\n{impact}",
        fields=tuple(fields),
        notes=tuple(finding.evidence[:5]),
        buttons=tuple(buttons),
        kind="alert",
    )


ENDING_WORDS = {
    "throughput": "still slow",
    "gpu_util": "with the GPU still underused",
    "near_oom": "still near out of memory",
    "oom": "after running out of memory",
    "no_progress": "with the metric still not moving",
    "nonfinite_loss": "with the loss still NaN/inf",
    "hung": "still hung",
    "silent": "with the reporter still silent",
}


def render_alert_resolved(
    trigger: str, detail: str, run: RunView, held_s: float, ending: str | None = None
) -> Card:
    """What an alert's message becomes once it ends. "Resolved" only when the condition
    truly cleared (``ending`` ``None``); otherwise ``ending`` says how it ended, e.g.
    "accepted as the new pace by U1" or "the run finished still slow"."""
    label = TRIGGER_LABELS.get(trigger, trigger)
    if ending is None:
        return Card(
            title=f"Resolved: {label} · {run.name}",
            # How it ended on the bold first line; what it was below, in plain text.
            headline=f"cleared after {fmt_duration(held_s)}\nwas: {detail}",
            kind="alert-resolved",
        )
    return Card(
        title=f"Ended: {label} · {run.name}",
        headline=f"{ending}, after {fmt_duration(held_s)}\nwas: {detail}",
        kind="alert-ended",
    )


def render_alert_clearing(
    trigger: str, detail: str, run: RunView, cleared_at_s: float, keep_firing_s: float
) -> Card:
    """An alert whose cause cleared, while it waits out its keep-firing window: said at
    once, so its cost line ("finishes … for $3.36") does not stand beside a status
    message that already projects the recovered pace."""
    label = TRIGGER_LABELS.get(trigger, trigger)
    return Card(
        title=f"Clearing: {label} · {run.name}",
        headline=f"cleared at {_clock(cleared_at_s)}; resolves if it stays clear for "
        f"{fmt_duration(keep_firing_s)}\nwas: {detail}",
        kind="alert-clearing",
    )


def ending_text(trigger: str, how: str, *, by: str | None = None, kept: str | None = None) -> str:
    """How an alert ended, in words: ``how`` is finished, failed, killed or new-normal."""
    still = ENDING_WORDS.get(trigger, "with the alert still holding")
    text = {
        "finished": f"the run finished {still}",
        "failed": "the run failed while it held",
        "killed": f"the run was killed{f' by {by}' if by else ''} while it held",
        "new-normal": f"accepted as the new pace{f' by {by}' if by else ''}",
    }.get(how, how)
    return f"{text}; {kept}" if kept else text


def _spent(estimate: Estimate | None, run: RunView) -> str:
    if run.spent_usd is not None:
        return fmt_usd(run.spent_usd)
    return fmt_usd(estimate.spend_usd()) if estimate else "—"


def health_line(run: RunView) -> str:
    """Healthy, or the trouble that holds now (silenced troubles too: they still hold);
    a confirmed kill under way says so first."""
    if run.kill_state is not None and run.kill_state.startswith("confirmed by"):
        return "Being killed"
    if run.alerts:
        return "Trouble: " + ", ".join(TRIGGER_LABELS.get(a, a) for a in run.alerts)
    if run.clearing:
        # The cause cleared but its alert waits out the keep-firing window: "Trouble"
        # beside a recovered step/s read as a contradiction.
        labels = ", ".join(TRIGGER_LABELS.get(a, a) for a in run.clearing)
        return f"Recovering: {labels} cleared, watching before it resolves"
    return "Healthy"


BAND_SHOWN_UP_TO = 4.0
"""A calibrated band whose top is beyond this many times the ETA is not shown."""


def _hung_since_s(estimate: Estimate | None, run: RunView) -> float | None:
    """When the last step came, while the hung trigger holds on a live run: its ETA is
    paused then, since no pace can say when steps resume."""
    if "hung" not in run.alerts or run.state in ("finished", "failed", "killed"):
        return None
    last = None if estimate is None else estimate.calibration.last_step
    return None if last is None else last.t_s


def status_headline(estimate: Estimate | None, run: RunView) -> str:
    if run.state in ("finished", "failed", "killed"):
        return f"{run.state} · spent {_spent(estimate, run)}"
    if estimate is None:
        return f"{health_line(run)} · waiting for the first training steps"
    since = _hung_since_s(estimate, run)
    if since is not None:
        quiet = "" if run.as_of_s is None else f" for {fmt_duration(run.as_of_s - since)}"
        return (
            f"{health_line(run)}\nno step{quiet} · ETA paused until steps resume"
            f" · spent {_spent(estimate, run)}"
        )
    eta = estimate.eta
    remaining = fmt_duration(eta.base.remaining_s)
    band = f"{fmt_duration(eta.opt.remaining_s)}–{fmt_duration(eta.pess.remaining_s)}"
    projected = project_finish(estimate, now=run.as_of_s, spent_usd=run.spent_usd).cost_usd
    # Two lines: chats bold the first, and all of it in bold was a wall on a phone.
    return (
        f"{health_line(run)}\nETA {remaining} left ({band}) · spent {_spent(estimate, run)}"
        f" · projected {fmt_usd(projected)}"
    )


def render_status(estimate: Estimate | None, run: RunView) -> Card:
    fields: list[CardField] = []
    if estimate is not None:
        cal = estimate.calibration
        pct = 100 * estimate.current_step / run.target_steps
        fields += [
            CardField("Step", f"{estimate.current_step:,}/{run.target_steps:,} ({pct:.0f}%)"),
            CardField("step/s", f"{fmt_rate(cal.step_per_s)} (observed)"),
            # Anchored to a step, so it stays true while the message waits for an edit.
            CardField(
                "Elapsed",
                f"{fmt_duration(estimate.elapsed_s)} to step {estimate.current_step:,}",
            ),
            CardField(
                "Probe",
                f"{min(cal.clean_steps, cal.probe_steps)}/{cal.probe_steps}"
                f" clean steps{' ✓' if cal.complete else ''}",
            ),
        ]
        if estimate.eval_source == "measured" and estimate.eval_s_each is not None:
            fields.append(CardField("Eval", f"{fmt_duration(estimate.eval_s_each)} each"))
        elif estimate.eval_source == "prior" and estimate.eval_s_each is not None:
            fields.append(
                CardField("Eval", f"~{fmt_duration(estimate.eval_s_each)} each (prior, none yet)")
            )
        if run.pace_note is not None:
            fields.append(CardField("Pace profile", run.pace_note))
        interval = estimate.eta_interval
        eta = estimate.eta
        since = _hung_since_s(estimate, run)
        if since is not None:
            # A moment each chat keeps relative ("12 minutes ago"), not a frozen age.
            fields.append(
                CardField(
                    "Last step (ETA paused)",
                    f"step {estimate.current_step:,} at {_clock(since, seconds=True)}",
                    at_s=since,
                )
            )
        # An ended run has nothing left to estimate: no finish time, no "0s–0s left";
        # a hung one says when its last step came instead.
        elif run.state not in ("finished", "failed", "killed"):
            finish_at = project_finish(
                estimate, now=run.as_of_s, spent_usd=run.spent_usd
            ).finish_at_s
            if finish_at is not None:
                fields.append(CardField("Finishes", _clock(finish_at), at_s=finish_at))
            low_s = interval.low_s - estimate.elapsed_s
            high_s = interval.high_s - estimate.elapsed_s
            scenarios = (
                f"scenarios ×1.2/×0.6: "
                f"{fmt_duration(eta.opt.remaining_s)}–{fmt_duration(eta.pess.remaining_s)}"
            )
            if high_s > BAND_SHOWN_UP_TO * eta.base.remaining_s:
                # Mid-slowdown the calibrated band ran to "7m 20s–55d 9h": true to its
                # drift, useless to read. Say why there is none instead.
                band = f"too wide to say while the pace changes; {scenarios}"
            else:
                band = (
                    f"{fmt_duration(low_s)}–{fmt_duration(high_s)} left "
                    f"(calibrated {interval.coverage:.0%}); {scenarios}"
                )
            fields.append(CardField("ETA band", band))
    fields.append(CardField("GPU", f"{run.gpu_label} · {fmt_usd(run.usd_per_hour)}/h"))
    if run.instance_state is not None:
        fields.append(CardField("Instance", run.instance_state))
    if run.last_event_at_s is not None:
        # A moment, not an age: frozen text such as "1.4s ago" would lie an hour later.
        at = run.last_event_at_s
        fields.append(CardField("Last report", _clock(at, seconds=True), at_s=at))
    elif run.last_event_age_s is not None:
        fields.append(CardField("Last report", f"{fmt_duration(run.last_event_age_s)} ago"))
    if run.kept_until_s is not None:
        if run.as_of_s is not None:
            until = run.as_of_s + run.kept_until_s
            fields.append(CardField("Alerts silenced until", _clock(until), at_s=until))
        else:
            fields.append(
                CardField("Alerts silenced", f"for {fmt_duration(run.kept_until_s)} more")
            )
    if run.kill_state is not None:
        fields.append(CardField("Kill", run.kill_state))
    if run.return_code is not None:
        fields.append(CardField("Exit code", fmt_exit_code(run.return_code)))
    active = run.state not in ("finished", "failed", "killed")
    return Card(
        title=f"{run.name}",
        headline=status_headline(estimate, run),
        fields=tuple(fields),
        buttons=_run_buttons(run) if active else (),
        kind="status",
    )


def render_checkin(estimate: Estimate | None, run: RunView) -> Card:
    step = f"step {estimate.current_step:,}/{run.target_steps:,}" if estimate else "no steps"
    return Card(
        title=f"Check-in · {run.name}",
        headline=f"{step} · {status_headline(estimate, run)}",
        kind="checkin",
    )


def render_runs(runs: Sequence[tuple[RunView, Estimate | None]]) -> Card:
    if not runs:
        return Card(title="Runs", headline="no runs yet")
    jobs: dict[str, list[str]] = {}  # a job's attempts share its name: newest first
    for run, est in reversed(runs):
        headline = status_headline(est, run)
        line = headline if headline.startswith(run.state) else f"{run.state} · {headline}"
        several = run.attempt > 1 or run.name in jobs
        jobs.setdefault(run.name, []).append(f"attempt {run.attempt}: {line}" if several else line)
    fields = tuple(CardField(name, "\n".join(lines)) for name, lines in jobs.items())
    return Card(title="Runs", headline=f"{len(runs)} run(s) of {len(jobs)} job(s)", fields=fields)


def render_final(run: RunView) -> Card:
    """The card a run's end posts once: how it ended, its exit code, what it cost."""
    spent = f"spent {fmt_usd(run.spent_usd)}"
    if run.return_code is not None:
        spent = f"exit code {fmt_exit_code(run.return_code)} · {spent}"
    return Card(title=f"{run.name} {run.state}", headline=spent, kind="final")


def render_text(title: str, text: str, kind: str = "reply") -> Card:
    return Card(title=title, headline=text, kind=kind)


__all__ = [
    "CSV_COLUMNS",
    "OPTION_COLUMNS",
    "RunView",
    "TroubleCost",
    "cost_line",
    "ending_text",
    "render_alert",
    "render_alert_clearing",
    "render_alert_resolved",
    "trouble_cost",
    "fmt_duration",
    "fmt_usd",
    "health_line",
    "render_checkin",
    "render_final",
    "after_kill_billing",
    "how_kill_stops",
    "kill_confirm_text",
    "render_audit",
    "option_table_csv",
    "render_option_table",
    "render_runs",
    "render_status",
    "render_text",
    "status_headline",
]
