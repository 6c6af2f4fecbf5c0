"""The full option table: predicted rows, fit and risks, keep / switch / kill decisions."""

from __future__ import annotations

import pytest

from bot.core.band import BandTable
from bot.core.estimate import (
    CalibrationSettings,
    Estimate,
    RunInputs,
    StepPoint,
    calibrate_throughput,
    estimate_run,
)
from bot.core.fmt import fmt_duration
from bot.core.gpus import GpuSpec
from bot.core.options import (
    Candidate,
    Decision,
    Hardware,
    OptionRow,
    RunFacts,
    SwitchSettings,
    build_option_table,
    predicted_row,
    scaling_factor,
    worth_showing,
)
from bot.core.predict import RatePrediction
from bot.core.render import RunView, fmt_usd, option_table_csv, render_option_table


def spec(name: str, vram_gib: float = 24, tflops: float = 100, bw: float = 1000) -> GpuSpec:
    return GpuSpec(name, vram_gib, tflops, tflops, tflops / 2, bw, "test")


PLAIN = BandTable((0.09, 0.225, 0.45), (2.0,) * 4, (9,) * 4, 0.9, 0.1)
HERE = spec("RTX 4090", 24, 165, 1008)
FAST = spec("H100 SXM", 80, 989, 3350)
SMALL = spec("RTX 3070", 8, 40, 448)
# The table's arithmetic without a new instance's boot (tested on its own below).
NO_BOOT = SwitchSettings(new_instance_s=0.0)


def steady(step_per_s: float = 2.0, steps: int = 100, target: int = 10_000) -> Estimate:
    """A run that has done ``steps`` at a steady rate on a $1/h machine, no setup."""
    points = [StepPoint(i, i / step_per_s) for i in range(1, steps + 1)]
    cal = calibrate_throughput(points, settings=CalibrationSettings())
    # No pace correction (#21): these tests check the table's arithmetic.
    est = estimate_run(cal, RunInputs(target, usd_per_hour=1.0), origin_s=points[0].t_s, band=PLAIN)
    assert est is not None
    return est


def fixed(ratio: float, **by_gpu: float):  # type: ignore[no-untyped-def]
    """A predictor: the target GPU runs ``ratio`` × as fast (or its own), with no band."""

    def predict(from_spec, rate, to_spec, **_):  # type: ignore[no-untyped-def]
        r = by_gpu.get(to_spec.name.replace(" ", "_"), ratio)
        return RatePrediction(rate * r, rate * r, rate * r)

    return predict


def table(
    candidates: list[Candidate],
    facts: RunFacts | None = None,
    ratio: float = 2.0,
    by_gpu: dict[str, float] | None = None,
):  # type: ignore[no-untyped-def]
    return build_option_table(
        steady(),
        Hardware(gpu_name="NVIDIA GeForce RTX 4090", gpu_count=1, vram_gib=24),
        probe_steps_seen=100,
        probe_steps=20,
        usd_per_hour=1.0,
        candidates=candidates,
        facts=facts or RunFacts(spec=HERE, peak_vram_mib=10 * 1024),
        predict=fixed(ratio, **(by_gpu or {})),
        settings=NO_BOOT,
    )


def by_name(rows: tuple[OptionRow, ...]) -> dict[str, OptionRow]:
    return {r.gpu_option: r for r in rows}


def test_scaling_keeps_90_percent_per_doubling() -> None:
    assert scaling_factor(1, 0.9) == 1
    assert scaling_factor(2, 0.9) == pytest.approx(1.8)
    assert scaling_factor(8, 0.9) == pytest.approx(8 * 0.729)
    assert scaling_factor(0.5, 0.9) == pytest.approx(0.5 / 0.9)


def test_a_predicted_row_finishes_the_rest_at_the_predicted_rate() -> None:
    est = steady(step_per_s=2.0, steps=100, target=10_000)
    row = predicted_row(
        Candidate(FAST, 1, 3.0, "ref"),
        est,
        RunFacts(spec=HERE, peak_vram_mib=10 * 1024, checkpoint_gb=None),
        NO_BOOT,
        RatePrediction(4.0, 4.0, 4.0),
    )
    assert isinstance(row, OptionRow)
    steps_left = 10_000 - est.current_step
    assert row.finish_s == pytest.approx(steps_left / 4.0)  # no setup, no evals here
    assert row.finish_cost_usd == pytest.approx(steps_left / 4.0 / 3600 * 3.0)
    assert row.step_per_s == 4.0 and not row.observed
    assert row.time_h is not None and row.time_h.opt < row.time_h.base < row.time_h.pess
    assert "predicted, not observed" in row.risks
    assert any("checkpoint move not priced" in r for r in row.risks)


@pytest.mark.parametrize(("target", "decision"), [(1_000, "keep"), (100_000, "switch")])
def test_a_move_pays_for_a_new_instance_to_boot_so_a_short_run_stays(
    target: int, decision: str
) -> None:
    """Twice as fast at $1.50/h: 25% cheaper once running, but a new instance first boots
    and pulls its image (5 minutes by default), which this run never showed: worth it for
    a 14-hour run, not for the 8 minutes a short one has left."""
    made = build_option_table(
        steady(target=target),
        Hardware(gpu_name="NVIDIA GeForce RTX 4090", gpu_count=1, vram_gib=24),
        probe_steps_seen=100,
        probe_steps=20,
        usd_per_hour=1.0,
        candidates=[Candidate(FAST, 1, 1.5, "Vast offer 1")],
        facts=RunFacts(spec=HERE, peak_vram_mib=10 * 1024),
        predict=fixed(2.0),
    )
    (row,) = made.rows[1:]
    steps_left = target - 100
    assert row.finish_s == pytest.approx(300 + steps_left / 4.0)
    assert row.decision == decision


def test_an_option_without_room_for_the_peak_vram_is_left_out() -> None:
    made = table([Candidate(SMALL, 1, 0.1, "ref")])
    assert len(made.rows) == 1
    assert made.left_out == ("1× RTX 3070: needs 10 GiB VRAM per GPU, has 8",)


def test_risks_say_what_could_go_wrong_in_plain_words() -> None:
    tight = spec("A10", 10.8, 125, 600)
    made = table(
        [
            Candidate(
                tight, 1, 0.5, "Vast offer 1", reliability=0.95, verified=False, inet_down_mbps=80
            ),
            Candidate(FAST, 1, 3.0, "Vast offer 2", interruptible=True),
            Candidate(HERE, 2, 2.0, "Vast offer 3"),
        ]
    )
    rows = by_name(made.rows)
    assert "VRAM headroom under 10%: may run out" in rows["1× A10"].risks
    assert "slow network (80 Mb/s) for data and checkpoints" in rows["1× A10"].risks
    assert "host reliability 95.0%" in rows["1× A10"].risks
    assert "unverified host" in rows["1× A10"].risks
    assert "interruptible: can be outbid and stopped" in rows["1× H100 SXM"].risks
    assert "assumes 90% scaling per doubling of GPUs" in rows["2× RTX 4090"].risks


def test_switch_only_when_materially_cheaper_and_not_slower() -> None:
    # Twice as fast at $1.50/h: 25% cheaper and sooner. 1.2× as fast at $1.05/h: 12.5%
    # cheaper and 17% sooner, neither enough to be worth a move.
    made = table(
        [Candidate(FAST, 1, 1.5, "Vast offer 1"), Candidate(spec("L40S", 48), 1, 1.05, "ref")],
        by_gpu={"L40S": 1.2},
    )
    rows = by_name(made.rows)
    assert rows["1× H100 SXM"].decision == "switch"
    assert rows["1× H100 SXM"].reason == "finishes cheaper: 25% cheaper, 50% sooner"
    assert rows["1× L40S"].decision == "keep"
    assert rows["1× L40S"].reason.startswith("not worth a move")
    assert (
        made.rows[0].decision == "keep" and "H100 SXM would finish cheaper" in made.rows[0].reason
    )


def test_switch_when_materially_sooner_at_a_similar_cost() -> None:
    made = table([Candidate(FAST, 1, 2.1, "ref")], ratio=2.0)  # half the time, +5% money
    (alt,) = made.rows[1:]
    assert alt.decision == "switch" and alt.reason.startswith("finishes sooner")


def test_a_fast_option_beyond_the_cheapest_six_is_shown() -> None:
    # Eight cards at half this one's speed for a bit more than half its price, and an H100
    # four times as fast at $6/h: the dearest to finish, so the cheapest six alone would
    # hide what more money buys.
    cheap = [Candidate(spec(f"Cheap {i}"), 1, 0.60 + i / 100, "ref") for i in range(8)]
    made = table([*cheap, Candidate(FAST, 1, 6.0, "ref")], by_gpu={"H100_SXM": 4.0}, ratio=0.5)
    shown = [r.gpu_option for r in made.rows[1:]]
    assert shown == [*(f"1× Cheap {i}" for i in range(5)), "1× H100 SXM"]
    fast = by_name(made.rows)["1× H100 SXM"]
    assert fast.decision == "keep" and fast.reason == "not worth a move: 50% dearer, 75% sooner"


def test_the_same_gpu_elsewhere_is_an_option_only_when_materially_cheaper() -> None:
    same = [Candidate(HERE, 1, 0.9, "Vast offer 1"), Candidate(HERE, 1, 0.4, "Vast offer 2")]
    made = table(same, ratio=1.0)
    (alt,) = made.rows[1:]  # $0.90/h against this run's $1/h is no reason to move
    assert alt.price_source == "Vast offer 2"
    assert alt.decision == "switch" and alt.reason == "finishes cheaper: 60% cheaper, same time"


def alt(name: str, decision: Decision, cost_usd: float, finish_s: float) -> OptionRow:
    """A predicted row with only what choosing rows to show looks at."""
    return OptionRow(
        name, 1.0, 24, None, 100, 1000, 1.0, False, None, None, 0.0, (), decision,
        finish_cost_usd=cost_usd, finish_s=finish_s,
    )  # fmt: skip


def test_a_switch_is_shown_even_when_it_is_neither_cheapest_nor_fastest() -> None:
    # Twelve dear, slow cards fill the cheapest places only if the switch is not kept.
    rows = [alt(f"1× Slow {i}", "keep", 1.0 + i / 10, 1000.0) for i in range(12)]
    switch = alt("1× Good", "switch", 5.0, 2000.0)
    shown = worth_showing([*rows, switch], 3)
    assert [r.gpu_option for r in shown] == ["1× Slow 0", "1× Slow 1", "1× Good"]


@pytest.mark.parametrize(
    ("gpu_util_pct", "mem_util_pct", "noted"),
    [(97.0, 91.0, True), (None, 91.0, True), (97.0, 50.0, False), (40.0, 91.0, False)],
)
def test_a_run_waiting_on_memory_is_told_which_rows_may_be_off(
    gpu_util_pct: float | None, mem_util_pct: float, noted: bool
) -> None:
    facts = RunFacts(spec=HERE, gpu_util_pct=gpu_util_pct, mem_util_pct=mem_util_pct)
    made = table([Candidate(FAST, 1, 1.5, "ref")], facts=facts)
    view = RunView("r1", "run", "running", 10_000, "1× RTX 4090", 1.0)
    notes = render_option_table(made, view).notes
    said = [n for n in notes if "memory controller" in n]
    assert bool(said) is noted, notes
    if noted:
        assert said[0].startswith("This run keeps the memory controller 91% busy")
    assert table([], facts=facts).notes == ()  # nothing predicted, nothing to weigh


def test_a_high_setup_tax_never_recommends_pricier_hardware() -> None:
    points = [StepPoint(i, 7_200 + i / 2.0) for i in range(1, 101)]  # 2 h of setup first
    cal = calibrate_throughput(points, settings=CalibrationSettings())
    est = estimate_run(
        cal, RunInputs(3_000, usd_per_hour=1.0, setup_s=7_200), origin_s=points[0].t_s
    )
    assert est is not None and est.live_tax("base") > 0.25
    made = build_option_table(
        est,
        Hardware(gpu_name="RTX 4090"),
        probe_steps_seen=100,
        probe_steps=20,
        usd_per_hour=1.0,
        candidates=[Candidate(FAST, 1, 1.2, "ref")],
        facts=RunFacts(spec=HERE),
        predict=fixed(10.0),
    )
    (alt,) = made.rows[1:]
    assert alt.decision == "keep" and "stabilise before paying for more" in alt.reason


def test_the_current_row_says_kill_while_a_trigger_holds_unsilenced() -> None:
    made = table([], facts=RunFacts(spec=HERE, trigger_holding="No progress: job looks hung"))
    assert made.rows[0].decision == "kill"
    assert made.rows[0].reason == "No progress: job looks hung holds and is not silenced"


def test_an_unknown_gpu_says_why_no_alternatives() -> None:
    made = build_option_table(
        steady(),
        Hardware(gpu_name="Mystery GPU"),
        probe_steps_seen=100,
        probe_steps=20,
        usd_per_hour=1.0,
        candidates=[Candidate(FAST, 1, 1.0, "ref")],
        facts=RunFacts(spec=None),
    )
    assert made.missing == ("other GPUs not predicted: Mystery GPU is not in the GPU catalog",)


def test_the_card_has_three_short_lines_and_the_table_goes_to_csv() -> None:
    from bot.core.render import RunView

    made = table(
        [
            Candidate(FAST, 1, 1.5, "Vast offer 1"),
            Candidate(spec("L40S", 48), 1, 1.7, "ref"),
            Candidate(spec("A6000", 48), 1, 0.8, "ref"),
        ]
    )
    view = RunView("r1", "run", "running", 10_000, "1× RTX 4090", 1.0)
    card = render_option_table(made, view)
    assert len(card.fields) == 3
    assert card.fields[0].label.endswith("(this run) · switch to 1× A6000")
    assert card.fields[1].label == "switch to 1× A6000"  # switches first, cheapest first
    assert all(len(f.label) + len(f.value) < 160 for f in card.fields)
    # The headline gives the switch's whole run and labels this run's: never this run's
    # figures under the switch's name.
    a6000 = next(r for r in made.rows if r.gpu_option == "1× A6000")
    here = made.rows[0]
    assert a6000.time_h is not None and a6000.cost_usd is not None and here.time_h is not None
    assert card.headline.startswith(
        f"SWITCH TO 1× A6000 · whole run {fmt_duration(a6000.time_h.base * 3600)}"
        f" for {fmt_usd(a6000.cost_usd.base)} (staying: "
        f"{fmt_duration(here.time_h.base * 3600)}"
    )
    assert card.table is not None
    lines = option_table_csv(made).splitlines()
    assert lines[0].startswith("gpu_option,usd_per_hour,vram_gib,cpu_ram_gib,tflops")
    assert len(lines) == 1 + len(made.rows)


def test_the_csv_has_one_sortable_number_per_cell_with_units_in_the_names() -> None:
    import csv

    made = table([Candidate(FAST, 1, 1.2, "ref")])
    rows = list(csv.DictReader(option_table_csv(made).splitlines()))
    assert "time (opt/base/pess)" not in rows[0]
    this = rows[0]
    here = made.rows[0]
    assert here.time_h is not None and here.cost_usd is not None
    for scenario, name in (("opt", "optimistic"), ("base", "base"), ("pess", "pessimistic")):
        assert float(this[f"time_{name}_h"]) == pytest.approx(getattr(here.time_h, scenario), 1e-3)
        cost = getattr(here.cost_usd, scenario)
        assert float(this[f"cost_{name}_usd"]) == pytest.approx(cost, abs=0.005)
    assert float(this["time_optimistic_h"]) < float(this["time_base_h"])
    assert float(this["time_base_h"]) < float(this["time_pessimistic_h"])
    assert this["step_per_s_source"] == "observed" and rows[1]["step_per_s_source"] == "predicted"
    for row in rows:  # plain numbers: no "$", no "h", no "/"
        for column in ("usd_per_hour", "time_base_h", "cost_base_usd", "step_per_s"):
            float(row[column])
