"""Real frameworks, live: short real trainings reported to a real bot (``make frameworks``).

Each run is a real child (torch CPU) under ``probecast run`` with no code change, or with
probecast's callback, reporting over HTTP to the bot app served in this process (console
channel, SQLite in a temporary folder, default reporter settings). The training scripts
record each real optimizer step and its time (``truth.py``); the check compares what the
bot stored and showed:

- rate: the bot shows a calibrated step rate (the status card's ETA) within probe + 5 s,
  the probe being the moment the run really completed ``probe_steps`` steps;
- steps: stored steps are real optimizer steps, strictly rising (no duplicate, nothing
  backward), none reported before it happened, the last one the run's last;
- total: the run's total steps were found with no ``--target-steps``;
- eta: the ETA the bot gave once 25% of the run was stored is within 10% of the real
  finish (the end of training, evals included), as a share of the time then left.

Five runs evaluate for a real share of their time (the Probe API with ``probe.eval()``,
the Trainer with ``eval_steps`` and Lightning's per-epoch validation, each through its
callback and under ``probecast run``): their ETA must count the evals still ahead.

Needs the frameworks environment: ``make frameworks`` builds it (.venv-frameworks). Not
part of ``make test``: it installs torch and runs for a few minutes.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import sys
import tempfile
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

from bot.app import App, build, start_server
from bot.chat.console import ConsoleChat, render_console
from bot.settings import Settings

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SECRET = "frameworks-check-secret"
RATE_SLACK_S = 5.0
ETA_TOLERANCE = 0.10


@dataclass(frozen=True)
class Scenario:
    name: str
    script: str
    args: tuple[str, ...]
    zero_code: bool
    loss_every: int | None = None  # the Trainer's logging_steps: its losses land on these


SCENARIOS = (
    Scenario("tqdm-loop", "train_tqdm.py", ("--steps", "3000", "--step-ms", "20"), True),
    Scenario(
        "hf-trainer",
        "train_hf.py",
        ("--max-steps", "400", "--step-ms", "100", "--accum", "2"),
        True,
        loss_every=10,
    ),
    Scenario(
        "hf-callback",
        "train_hf.py",
        ("--max-steps", "400", "--step-ms", "100", "--accum", "2", "--callback"),
        False,
        loss_every=10,
    ),
    Scenario(
        "lightning-rich",
        "train_lightning.py",
        ("--epochs", "3", "--batches", "300", "--step-ms", "40", "--accum", "1"),
        True,
    ),
    Scenario(
        "lightning-callback",
        "train_lightning.py",
        ("--epochs", "3", "--batches", "300", "--step-ms", "40", "--accum", "2", "--callback"),
        False,
    ),
    # Evals a real share of the run (#21): the ETA at 25% must count the ones still ahead.
    Scenario(
        "probe-api-evals",
        "train_probe.py",
        ("--steps", "1200", "--step-ms", "20", "--eval-every", "200", "--eval-ms", "1500"),
        False,
    ),
    Scenario(
        "hf-callback-evals",
        "train_hf.py",
        (
            *("--max-steps", "400", "--step-ms", "100", "--accum", "2", "--callback"),
            *("--eval-steps", "100", "--eval-batches", "20", "--eval-batch-ms", "100"),
        ),
        False,
        loss_every=10,
    ),
    Scenario(
        "hf-trainer-evals",
        "train_hf.py",
        (
            *("--max-steps", "400", "--step-ms", "100", "--accum", "2"),
            *("--eval-steps", "100", "--eval-batches", "20", "--eval-batch-ms", "100"),
        ),
        True,
        loss_every=10,
    ),
    Scenario(
        "lightning-rich-val",
        "train_lightning.py",
        (
            *("--epochs", "3", "--batches", "300", "--step-ms", "40", "--accum", "1"),
            *("--val-batches", "50", "--val-batch-ms", "40"),
        ),
        True,
    ),
    Scenario(
        "lightning-callback-val",
        "train_lightning.py",
        (
            *("--epochs", "3", "--batches", "300", "--step-ms", "40", "--accum", "2"),
            *("--val-batches", "50", "--val-batch-ms", "40", "--callback"),
        ),
        False,
    ),
)


@dataclass
class Watch:
    """What the bot showed while the run went on."""

    rate_at: float | None = None  # when the status first had a step rate and an ETA
    eta_step: int | None = None  # the step stored when 25% was first reached
    eta_from: float | None = None  # that step's time
    predicted_finish: float | None = None
    card: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    scenario: Scenario
    ok: bool
    lines: list[str]


def truth_of(path: Path) -> tuple[list[tuple[int, float]], float | None]:
    """The real steps and their times, and when training ended (final evals included)."""
    if not path.exists():
        return [], None
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    ends = [float(t) for key, t in rows if key == "end"]
    steps = [(int(step), float(t)) for step, t in rows if step != "end"]
    return steps, (ends[-1] if ends else None)


async def watch_run(app: App, name: str, process: asyncio.subprocess.Process) -> Watch:
    seen = Watch()
    while process.returncode is None:
        await asyncio.sleep(0.1)
        runs = [r for r in app.store.list_runs() if r.name == name]
        if not runs:
            continue
        run = runs[0]
        snapshot = app.service.snapshot(run)
        estimate = snapshot.estimate
        if estimate is None or estimate.calibration.step_per_s is None:
            continue
        now = time.time()
        if seen.rate_at is None:
            seen.rate_at = now
        last = estimate.calibration.last_step
        quarter = last is not None and last.step >= 0.25 * (run.target_steps or math.inf)
        if seen.eta_step is None and last is not None and quarter:
            seen.eta_step, seen.eta_from = last.step, last.t_s
            seen.predicted_finish = last.t_s + estimate.eta.base.remaining_s
            card = await app.service.handle_command(f"/probecast status {name}", "console")
            seen.card = render_console(card)
    return seen


async def run_one(app: App, url: str, scenario: Scenario, work: Path) -> Outcome:
    name = scenario.name
    truth_path = work / f"{name}.truth"
    log_path = work / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBECAST_")}
    env.update(
        PROBECAST_URL=url,
        PROBECAST_INGEST_SECRET=SECRET,
        PROBECAST_SPOOL_DIR=str(work / "spool"),
        PROBECAST_RUN=name,
        PROBECAST_FW_TRUTH=str(truth_path),
        PYTHONPATH=os.pathsep.join([str(HERE), str(REPO)]),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
    )
    train = [sys.executable, str(HERE / scenario.script), *scenario.args]
    zero_code = [sys.executable, "-m", "bot.cli", "run", "--", *train]
    argv = zero_code if scenario.zero_code else train
    started = time.time()
    with log_path.open("wb") as log:
        # stdout and stderr to one file, as `nohup … > train.log 2>&1`: one pty.
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=str(work), env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
        watcher = asyncio.create_task(watch_run(app, name, process))
        code = await process.wait()
        seen = await watcher
    wall_s = time.time() - started
    await asyncio.sleep(0.5)
    truth, ended = truth_of(truth_path)
    return judge(app, scenario, code, wall_s, seen, truth, ended, log_path)


def judge(
    app: App,
    scenario: Scenario,
    code: int,
    wall_s: float,
    seen: Watch,
    truth: list[tuple[int, float]],
    ended: float | None,
    log_path: Path,
) -> Outcome:
    lines: list[str] = []
    ok = True

    def check(passed: bool, what: str) -> None:
        nonlocal ok
        ok = ok and passed
        lines.append(f"  [{'ok' if passed else 'FAIL'}] {what}")

    runs = [r for r in app.store.list_runs() if r.name == scenario.name]
    if code != 0 or not runs or not truth:
        tail = log_path.read_bytes()[-1500:].decode("utf-8", "replace")
        return Outcome(scenario, False, [f"  [FAIL] exit {code}, runs {len(runs)}", tail])
    run = runs[0]
    stored = [(body["step"], t) for _, t, body in app.store.events(run.id, ["step"])]
    steps = [s for s, _ in stored]
    truth_steps = [s for s, _ in truth]
    truth_times = [t for _, t in truth]
    real_last, last_step_at = truth[-1]
    real_finish = ended if ended is not None else last_step_at
    probe_steps = app.service.settings.probe_steps
    lines.append(
        f"  {len(truth_steps)} real optimizer steps in {wall_s:.1f} s (process);"
        f" {len(steps)} stored"
    )

    # rate within probe + 5 s
    probe_at = next((t for s, t in truth if s >= probe_steps), None)
    if seen.rate_at is None or probe_at is None:
        check(False, "calibrated step rate: never shown")
    else:
        first = truth_times[0]
        check(
            seen.rate_at <= probe_at + RATE_SLACK_S,
            f"calibrated step rate shown {seen.rate_at - first:.1f} s after the first step;"
            f" probe ({probe_steps} steps) done at {probe_at - first:.1f} s,"
            f" limit {probe_at - first + RATE_SLACK_S:.1f} s",
        )

    # stored steps: real, rising, never early, ending at the last
    real = set(truth_steps) | {0}
    rising = all(b > a for a, b in zip(steps, steps[1:], strict=False))
    unreal = [s for s in steps if s not in real]
    early = [
        (s, t)
        for s, t in stored
        if s > 0 and truth_steps[max(0, bisect_right(truth_times, t + 0.05) - 1)] < s
    ]
    dups = len(steps) - len(set(steps))
    check(
        rising and not unreal and not early and steps and steps[-1] == real_last,
        f"stored steps: strictly rising {rising}, duplicates {dups},"
        f" not real {unreal[:5]}, before they happened {len(early)},"
        f" last {steps[-1] if steps else None} (real {real_last})",
    )

    if scenario.loss_every:
        with_loss = [
            body["step"]
            for _, _, body in app.store.events(run.id, ["step"])
            if body.get("loss") is not None
        ]
        logged = list(range(scenario.loss_every, real_last + 1, scenario.loss_every))
        check(
            with_loss == logged,
            f"losses on the steps the Trainer logged them: {len(with_loss)} of {len(logged)},"
            f" off-step {[s for s in with_loss if s not in logged][:5]}",
        )

    # total without --target-steps
    check(
        run.target_steps == real_last,
        f"total found without --target-steps: {run.target_steps} (real {real_last})",
    )

    # ETA at 25%
    if seen.predicted_finish is None or seen.eta_from is None:
        check(False, "ETA at 25%: never shown")
    else:
        left_s = real_finish - seen.eta_from
        error_s = seen.predicted_finish - real_finish
        share = abs(error_s) / left_s if left_s > 0 else float("inf")
        check(
            share <= ETA_TOLERANCE,
            f"ETA at step {seen.eta_step} ({100 * (seen.eta_step or 0) / real_last:.0f}%):"
            f" finish predicted {error_s:+.2f} s off, {100 * share:.1f}% of the"
            f" {left_s:.1f} s then left (limit {100 * ETA_TOLERANCE:.0f}%)",
        )
    if seen.card:
        lines += ["  status card at 25%:", seen.card]
    return Outcome(scenario, ok, lines)


async def main() -> int:
    only = set(sys.argv[1:])
    chosen = [s for s in SCENARIOS if not only or s.name in only]
    with tempfile.TemporaryDirectory(prefix="probecast-frameworks-") as tmp:
        work = Path(tmp)
        settings = Settings(
            _env_file=None,
            db=work / "probecast.db",
            ingest_secret=SECRET,
            table_deadline_s=600,
            checkin_interval_s=3600,
        )
        app = build(settings, chat=ConsoleChat(io.StringIO()))
        server = await start_server(app)
        try:
            outcomes = []
            for scenario in chosen:
                mode = "zero-code (probecast run)" if scenario.zero_code else "callback"
                print(f"{scenario.name}: {mode}, {scenario.script} {' '.join(scenario.args)}")
                outcome = await run_one(app, server.url, scenario, work)
                print("\n".join(outcome.lines), flush=True)
                outcomes.append(outcome)
        finally:
            await server.stop()
            app.store.close()
    failed = [o.scenario.name for o in outcomes if not o.ok]
    print(f"frameworks: {len(outcomes) - len(failed)} passed, {len(failed)} failed", end="")
    print(f" ({', '.join(failed)})" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
