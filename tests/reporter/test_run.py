"""``probecast run -- CMD``: real child processes, reported to the real bot over HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.app import App, RunningServer, build, start_server
from bot.chat.console import ConsoleChat
from bot.service.records import registration_of
from reporter.run import LineSplitter, LogClock, _shape, default_run_name, exit_code_of
from tests.conftest import SECRET, make_settings

REPO = Path(__file__).resolve().parents[2]
ALL_KINDS = ("step", "phase", "sample", "transfer", "log", "exit")

MNG_CHILD = """
import sys, time
total = int(sys.argv[1])
print(f"step:0/{total} val_loss:10.9000 train_time:0ms step_avg:nanms")
t_ms = 0
for s in range(1, total + 1):
    time.sleep(0.01)
    t_ms += 10
    print(f"step:{s}/{total} train_loss:{3.0 / s:.4f} train_time:{t_ms}ms step_avg:10.00ms")
    if s % 10 == 0:
        time.sleep(0.05)
        print(f"step:{s}/{total} val_loss:{2.0 / s:.4f} train_time:{t_ms}ms step_avg:10.00ms")
print("done", file=sys.stderr)
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""

# Prints a step line forever; with "ignore" it shrugs off SIGTERM like a wedged job.
STUBBORN_CHILD = """
import signal, sys, time
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    def bye(signum, frame):
        print(f"child got signal {signum}", flush=True)
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
s = 0
while True:
    s += 1
    print(f"step:{s}/100000 train_loss:1.0000 train_time:{s * 20}ms step_avg:20.00ms")
    time.sleep(0.02)
"""


# A plain tqdm loop: 150 steps of 20 ms, the bar's clock in whole seconds.
TQDM_CHILD = """
import sys, time
from tqdm import tqdm
steps = int(sys.argv[1])
print("isatty", sys.stdout.isatty(), sys.stderr.isatty(), flush=True)
for i in tqdm(range(steps), desc="train"):
    time.sleep(0.02)
"""


@dataclass
class Bot:
    app: App
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url

    def run(self) -> Any:
        runs = self.app.store.list_runs()
        assert len(runs) == 1, runs
        return runs[0]

    def events(self, kind: str) -> list[dict[str, Any]]:
        run = self.run()
        return [{**body, "t": t} for _, t, body in self.app.store.events(run.id, [kind])]


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    settings = make_settings(
        tmp_path, table_deadline_s=600, checkin_interval_s=3600, kill_grace_s=1.0
    )
    app = build(settings, chat=ConsoleChat(io.StringIO()))
    server = await start_server(app)
    yield Bot(app, server)
    await server.stop()
    app.store.close()


def reporter_env(bot_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PROBECAST_", "CONTAINER_", "VAST_"))
    }
    env.update(
        PROBECAST_URL=bot_url,
        PROBECAST_INGEST_SECRET=SECRET,
        PROBECAST_SPOOL_DIR=str(tmp_path / "spool"),
        PROBECAST_POST_INTERVAL_S="0.05",
    )
    env.update(extra)
    return env


# MMDetection 2.x's console: stamped ``Epoch [e][i/N]`` rows, and after each epoch an
# evaluation (here 1 s) that prints only its heading and its ``Epoch(val)`` result.
MMDET_EVAL_CHILD = """
import datetime, time
def log(message):
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    print(f"{now} - mmdet - INFO - {message}", flush=True)
for epoch in (1, 2):
    for i in range(10, 110, 10):
        time.sleep(0.05)
        log(f"Epoch [{epoch}][{i}/100]\\tlr: 1.000e-02, time: 0.050, loss: {1.5 - i / 1000:.4f}")
    log("Evaluating bbox...")
    time.sleep(1.0)
    log(f"Epoch(val) [{epoch}][100]\\tbbox_mAP: 0.0750, bbox_mAP_50: 0.2270")
"""


# A training bar with a Trainer-style evaluation bar inside it (no description, drawn
# below the training bar while it stands): 1 s of eval after step 10.
NESTED_EVAL_CHILD = """
import time
from tqdm import tqdm
bar = tqdm(total=30)
for step in range(1, 31):
    time.sleep(0.03)
    bar.update(1)
    if step == 10:
        for _ in tqdm(range(20), leave=False):
            time.sleep(0.05)
bar.close()
"""


def script(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def probecast(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", *args]


async def run_to_end(
    argv: list[str], env: dict[str, str], timeout_s: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return await asyncio.to_thread(
        subprocess.run, argv, cwd=REPO, env=env, capture_output=True, timeout=timeout_s
    )


async def wait_for(predicate: Callable[[], object], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


# --- pure pieces ----------------------------------------------------------------------


def test_log_clock_keeps_log_spacing_and_shows_pauses_the_log_left_out() -> None:
    clock = LogClock(slack_s=5.0)
    assert clock.place(0.0, arrived_at=1_000.0) == 1_000.0
    # a burst: lines arrive together, but the log's own clock spaces them
    assert clock.place(1.0, arrived_at=1_002.0) == 1_001.0
    assert clock.place(2.0, arrived_at=1_002.0) == 1_002.0
    # a line that came through quicker than the first sets a smaller lag from then on
    assert clock.place(3.0, arrived_at=1_002.5) == 1_002.5
    assert clock.place(4.0, arrived_at=1_004.0) == 1_003.5
    # a 60 s eval the training clock does not count: placed at arrival, not hidden
    assert clock.place(5.0, arrived_at=1_065.0) == 1_065.0
    assert clock.place(6.0, arrived_at=1_066.0) == 1_066.0
    # lines without a clock are placed at arrival
    assert clock.place(None, arrived_at=1_066.5) == 1_066.5


def test_eager_line_splitter_gives_a_redrawn_bar_as_soon_as_it_is_drawn() -> None:
    splitter = LineSplitter(eager=True)
    assert splitter.feed(b"loading\n\r 10%|#| 1/10") == ["loading", " 10%|#| 1/10"]
    assert splitter.redraws == [False, True]  # which lines began after a CR
    assert splitter.feed(b"\r 20%|##| 2/10") == [" 20%|##| 2/10"]  # not the 10% again
    assert splitter.feed(b"\n") == []  # the bar's last redraw was given already
    assert splitter.feed(b"half a li") == []  # a line not redrawn waits for its end
    assert splitter.feed(b"ne\n") == ["half a line"]


def test_line_splitter_handles_cr_bars_partial_lines_and_huge_lines() -> None:
    splitter = LineSplitter(max_bytes=16)
    assert splitter.feed(b"step 1\nstep") == ["step 1"]
    assert splitter.feed(b" 2\r 50%|###\r 60%|####\n") == ["step 2", " 50%|###", " 60%|####"]
    assert splitter.feed(b"x" * 40 + b"\nafter\n") == ["x" * 16, "after"]
    assert splitter.feed(b"\xff\xfe bad utf8\n") == ["\ufffd\ufffd bad utf8"]
    assert splitter.feed(b"tail") == [] and splitter.flush() == ["tail"]


def test_default_run_name_and_exit_codes() -> None:
    assert default_run_name(["python", "train.py", "--lr", "3"], {}) == "train"
    assert default_run_name(["torchrun", "--nproc", "8", "my model.py"], {}) == "my-model"
    assert default_run_name(["./run.sh"], {}) == "run"
    assert default_run_name(["python", "x.py"], {"PROBECAST_RUN": "mine"}) == "mine"
    assert exit_code_of(0) == 0 and exit_code_of(3) == 3
    assert exit_code_of(-signal.SIGTERM) == 143 and exit_code_of(-signal.SIGKILL) == 137


# --- real child processes -------------------------------------------------------------


async def test_run_reports_a_real_child_and_passes_its_output_through(
    bot: Bot, tmp_path: Path
) -> None:
    child = script(tmp_path, "train.py", MNG_CHILD)
    env = reporter_env(bot.url, tmp_path)
    argv = probecast("run", "--sample-every", "0.5", "--", sys.executable, str(child), "40", "3")
    result = await run_to_end(argv, env)

    # The child's exit code is ours, and its output came through byte for byte.
    assert result.returncode == 3, result.stderr.decode()[-2000:]
    direct = await run_to_end([sys.executable, str(child), "40", "3"], env)
    assert result.stdout == direct.stdout
    assert b"done\n" in result.stderr and b"Traceback" not in result.stderr

    run = bot.run()
    assert run.name == "train"
    assert run.target_steps == 40  # learnt from "step:X/40": no --target-steps given
    steps = bot.events("step")
    assert [e["step"] for e in steps] == list(range(1, 41))
    assert steps[4]["loss"] == pytest.approx(0.6)
    # the log's training clock spaces the steps: 10 ms apart, not arrival jitter
    gaps = [b["t"] - a["t"] for a, b in zip(steps[:20], steps[1:21], strict=True)]
    assert sorted(gaps)[10] == pytest.approx(0.010, abs=1e-6), gaps
    # A loaded machine delivers the first lines in a burst, before the clock offset
    # settles; after that the spacing is the log's own.
    assert sum(abs(gap - 0.010) < 0.005 for gap in gaps) >= 16, gaps
    phases = [(e["phase"], e["edge"]) for e in bot.events("phase")]
    assert phases.count(("eval", "start")) == 5 and phases.count(("eval", "end")) == 5
    assert bot.events("exit")[0]["return_code"] == 3
    samples = bot.events("sample")
    assert samples and samples[0]["host"]["ram_total_mib"] > 0
    assert samples[0]["gpus"] or samples[0]["no_gpu_reason"]


async def test_evaluations_in_a_stamped_log_reach_the_bot_as_timed_phases(
    bot: Bot, tmp_path: Path
) -> None:
    """No eval is declared and no callback runs: the ``Epoch(val)`` lines alone tell the
    bot when each evaluation ran, from the last step before it to its result."""
    child = script(tmp_path, "train.py", MMDET_EVAL_CHILD)
    env = reporter_env(bot.url, tmp_path)
    argv = probecast("run", "--target-steps", "200", "--", sys.executable, str(child))
    result = await run_to_end(argv, env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert [e["step"] for e in bot.events("step")] == list(range(10, 210, 10))
    phases = [e for e in bot.events("phase") if e["phase"] == "eval"]
    assert [e["edge"] for e in phases] == ["start", "end", "start", "end"]
    starts, ends = phases[::2], phases[1::2]
    lengths_s = [end["t"] - start["t"] for start, end in zip(starts, ends, strict=True)]
    assert all(0.9 <= length_s < 3.0 for length_s in lengths_s), lengths_s


async def test_an_eval_bar_tells_the_bot_when_the_eval_began(bot: Bot, tmp_path: Path) -> None:
    """The eval's start goes out when its bar is first drawn, not when it ends: a long
    first eval is an eval in progress to the bot, never a hang."""
    child = script(tmp_path, "train.py", NESTED_EVAL_CHILD)
    env = reporter_env(bot.url, tmp_path)
    result = await run_to_end(probecast("run", "--", sys.executable, str(child)), env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    phases = [e for e in bot.events("phase") if e["phase"] == "eval"]
    assert [e["edge"] for e in phases] == ["start", "end"]
    assert 0.7 <= phases[1]["t"] - phases[0]["t"] < 3.0


async def test_a_real_tqdm_loop_calibrates_from_arrival_times(bot: Bot, tmp_path: Path) -> None:
    child = script(tmp_path, "train.py", TQDM_CHILD)
    env = reporter_env(bot.url, tmp_path)
    result = await run_to_end(probecast("run", "--", sys.executable, str(child), "150"), env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    # The child writes to a terminal: tqdm draws, and the redraws pass through as drawn.
    assert result.stdout.startswith(b"isatty True True\n")
    assert b"\rtrain: 100%|" in result.stderr and b"150/150" in result.stderr
    run = bot.run()
    assert run.target_steps == 150  # the bar's total: no --target-steps given
    steps = [e["step"] for e in bot.events("step")]
    assert steps[0] == 0 and steps[-1] == 150
    assert steps == sorted(set(steps)), steps  # no step twice, none going back
    assert len(steps) >= 20  # tqdm redraws about every 0.1 s
    # Most steps share a second on the bar's clock; arrival times tell them apart, so
    # the bot has a step rate and an ETA.
    snapshot = bot.app.service.snapshot(run)
    assert snapshot.estimate is not None
    assert snapshot.estimate.calibration.step_per_s is not None
    assert snapshot.estimate.calibration.step_per_s > 0


MMDET_CHILD = """
import sys, time
print("workflow: [('train', 1)], max: 2 epochs", flush=True)
for epoch in (1, 2):
    for i in range(5, 31, 5):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S,000")
        print(f"{stamp} - mmdet - INFO - Epoch [{epoch}][{i}/30]\\tlr: 2.000e-02, "
              f"time: 0.010, loss: {1.0 - 0.01 * i:.4f}", flush=True)
        time.sleep(0.01)
"""


LIGHTNING_CHILD = """
import sys, time
def bar(desc, n, total, post=""):
    fill = "#" * (10 * n // total)
    pct = 100 * n // total
    # redrawn in place after an erase-line code, as Rich and tqdm in a terminal do
    # the elapsed time grows with the batch: a bar at n/n after 00:00 is a bar done in
    # no time (setup), whose row waits for the next bar to say what it was
    sys.stdout.write(f"\\x1b[2K{desc}: {pct:3d}%|{fill:<10}| {n}/{total} "
                     f"[00:{n:02d}<00:30, 2.00it/s{post}]\\r")
    sys.stdout.flush()
print("max_epochs=3", flush=True)
bar("Sanity Checking DataLoader 0", 1, 2)
bar("Sanity Checking DataLoader 0", 2, 2)
for epoch in range(3):
    for n in range(0, 21, 2):
        bar(f"Epoch {epoch}", n, 20, f", v_num=0, train_loss={1.0 - 0.01 * n:.3f}")
        time.sleep(0.01)
    bar("Validation DataLoader 0", 0, 5)
    time.sleep(0.2)
    bar("Validation DataLoader 0", 5, 5)
"""


async def test_a_lightning_sanity_check_registers_validation_every_epoch(
    bot: Bot, tmp_path: Path
) -> None:
    """Lightning's sanity check shows a validation loop whose cadence the output never
    states: by default, every epoch (20 steps here), sent with the registration, so the
    ETA counts the validations before the first is seen."""
    child = script(tmp_path, "train.py", LIGHTNING_CHILD)
    env = reporter_env(bot.url, tmp_path)
    result = await run_to_end(probecast("run", "--", sys.executable, str(child)), env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    run = bot.run()
    assert run.target_steps == 60
    assert registration_of(run).config.eval_every_expected == 20
    snapshot = bot.app.service.snapshot(run)
    assert snapshot.estimate is not None and snapshot.estimate.eval_every == 20


EPOCH_BARS_CHILD = """
import sys, time
PRINT_ARGS = {print_args}
def bar(n, total):
    fill = "#" * (10 * n // total)
    sys.stdout.write(f"{{100 * n // total:3d}}%|{{fill:<10}}| {{n}}/{{total}} "
                     f"[00:{{n:02d}}<00:30, 2.00it/s, loss={{1.0 - 0.01 * n:.3f}}]\\r")
    sys.stdout.flush()
if PRINT_ARGS:
    print("Namespace(batch_size=32, epochs=3, lr=0.001)", flush=True)
for epoch in range(3):  # for epoch in range(args.epochs): for batch in tqdm(loader)
    for n in range(0, 21, 2):
        bar(n, 20)
        time.sleep(0.01)
    sys.stdout.write("\\n")
"""


async def test_a_bar_per_epoch_revises_the_total_to_the_printed_epochs(
    bot: Bot, tmp_path: Path
) -> None:
    """A bare tqdm bar per epoch registers with its own total (it might be the whole
    run); when it starts over and the arguments said 3 epochs, the bot gets 3 x 20."""
    child = script(tmp_path, "train.py", EPOCH_BARS_CHILD.format(print_args=True))
    env = reporter_env(bot.url, tmp_path)
    result = await run_to_end(probecast("run", "--", sys.executable, str(child)), env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    run = bot.run()
    assert registration_of(run).target_steps == 20
    assert [e["target_steps"] for e in bot.events("target")] == [60]
    assert run.target_steps == 60
    assert b"past the" not in result.stderr


async def test_a_bar_per_epoch_without_printed_epochs_says_to_pass_the_target(
    bot: Bot, tmp_path: Path
) -> None:
    child = script(tmp_path, "train.py", EPOCH_BARS_CHILD.format(print_args=False))
    env = reporter_env(bot.url, tmp_path)
    result = await run_to_end(probecast("run", "--", sys.executable, str(child)), env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert bot.run().target_steps == 20 and bot.events("target") == []
    err = result.stderr.decode()
    assert err.count("past the 20 steps the log stated") == 1
    assert "pass --target-steps" in err


async def test_an_epoch_relative_log_registers_its_steps_per_epoch(
    bot: Bot, tmp_path: Path
) -> None:
    """``Epoch [e][i/30]``: 30 steps per epoch reach the bot with the registration (the
    hung alert gives the first epoch's end time), and 2 × 30 is the total."""
    child = script(tmp_path, "train.py", MMDET_CHILD)
    env = reporter_env(bot.url, tmp_path)
    result = await run_to_end(probecast("run", "--", sys.executable, str(child)), env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    run = bot.run()
    assert run.target_steps == 60
    assert registration_of(run).config.steps_per_epoch == 30
    assert [e["step"] for e in bot.events("step")][-3:] == [50, 55, 60]


SB3_CHILD = """
import time
start = time.monotonic()
print("Using cpu device", flush=True)
for it in range(1, 7):
    time.sleep(0.05)
    elapsed = int(time.monotonic() - start)
    rows = [("time/", ""), ("    fps", "900"), ("    iterations", it),
            ("    time_elapsed", elapsed), ("    total_timesteps", 2048 * it),
            ("train/", ""), ("    loss", round(0.5 - 0.05 * it, 3))]
    print("-" * 41)
    for key, value in rows:
        print(f"| {key:<23} | {value!s:<11} |")
    print("-" * 41, flush=True)
"""


async def test_a_stable_baselines3_run_reports_its_timesteps(bot: Bot, tmp_path: Path) -> None:
    """SB3 prints no total: the user gives it in timesteps, the unit its tables count."""
    child = script(tmp_path, "train_ppo.py", SB3_CHILD)
    env = reporter_env(bot.url, tmp_path)
    argv = probecast("run", "--target-steps", "12288", "--", sys.executable, str(child))
    result = await run_to_end(argv, env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    run = bot.run()
    assert run.target_steps == 12288
    steps = [e["step"] for e in bot.events("step")]
    assert steps[-1] == 12288 and steps == sorted(steps)
    assert all(step % 2048 == 0 for step in steps)
    assert bot.events("step")[-1]["loss"] == pytest.approx(0.2)


async def test_without_a_pty_the_child_writes_to_pipes(bot: Bot, tmp_path: Path) -> None:
    child = script(tmp_path, "train.py", TQDM_CHILD)
    env = reporter_env(bot.url, tmp_path)
    argv = probecast("run", "--no-pty", "--", sys.executable, str(child), "30")
    result = await run_to_end(argv, env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.startswith(b"isatty False False\n")
    assert [e["step"] for e in bot.events("step")][-1] == 30


async def test_one_terminal_for_both_streams_when_they_go_to_one_place(
    bot: Bot, tmp_path: Path
) -> None:
    child = script(
        tmp_path,
        "both.py",
        """
        import os, sys
        print("out 1", flush=True)
        print("err 1", file=sys.stderr, flush=True)
        print("out 2", os.get_terminal_size().columns > 0, flush=True)
        print("step:1/1 train_loss:1.0000 train_time:5ms step_avg:5ms", flush=True)
        """,
    )
    log = tmp_path / "train.log"
    with log.open("wb") as sink:
        argv = probecast("run", "--", sys.executable, str(child))
        code = await asyncio.to_thread(
            subprocess.call,
            argv,
            cwd=REPO,
            env=reporter_env(bot.url, tmp_path),
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
    assert code == 0
    # One pty keeps the order in which the child wrote; LF stays LF.
    assert log.read_bytes().startswith(b"out 1\nerr 1\nout 2 True\nstep:1/1")
    assert [e["step"] for e in bot.events("step")] == [1]


async def test_warnings_in_the_output_are_reported(bot: Bot, tmp_path: Path) -> None:
    child = script(
        tmp_path,
        "oom.py",
        """
        import sys
        print("step:1/10 train_loss:nan train_time:10ms step_avg:10.00ms")
        print("Traceback (most recent call last):", file=sys.stderr)
        print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
              file=sys.stderr)
        sys.exit(1)
        """,
    )
    result = await run_to_end(
        probecast("run", "--", sys.executable, str(child)), reporter_env(bot.url, tmp_path)
    )
    assert result.returncode == 1
    codes = {e["code"] for e in bot.events("log")}
    assert {"oom", "traceback", "nonfinite_loss"} <= codes
    assert bot.events("step")[0]["loss"] == "nan"


async def test_a_signal_to_run_reaches_the_child(bot: Bot, tmp_path: Path) -> None:
    child = script(tmp_path, "stubborn.py", STUBBORN_CHILD)
    argv = probecast("run", "--target-steps", "100000", "--", sys.executable, str(child), "x")
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        env=reporter_env(bot.url, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_for(lambda: bot.app.store.list_runs() and len(bot.events("step")) >= 5)
        process.send_signal(signal.SIGINT)  # Ctrl-C at the terminal
        out, err = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        process.kill()
    assert b"child got signal 2" in out, err.decode()[-2000:]
    assert process.returncode == 130
    await wait_for(lambda: bot.events("exit"))
    assert bot.events("exit")[0]["return_code"] == 130


async def test_a_kill_from_chat_stops_a_child_that_ignores_sigterm(
    bot: Bot, tmp_path: Path
) -> None:
    child = script(tmp_path, "stubborn.py", STUBBORN_CHILD)
    argv = probecast(
        "run", "--name", "wedged", "--target-steps", "100000", "--",
        sys.executable, str(child), "ignore",
    )  # fmt: skip
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        env=reporter_env(bot.url, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_for(lambda: bot.app.store.list_runs() and len(bot.events("step")) >= 5)
        asked = await bot.app.service.handle_command("/kill wedged", "console")
        assert "confirm" in json.dumps(asked.__dict__, default=str).lower()
        await bot.app.service.handle_command("/kill wedged confirm", "console")
        _, err = await asyncio.to_thread(process.communicate, timeout=60)
    finally:
        process.kill()
    assert process.returncode == 137, err.decode()[-2000:]  # SIGKILL after the grace
    assert b"kill requested from chat" in err
    run = bot.run()
    await wait_for(lambda: bot.app.store.commands(run.id, ["done", "failed"]))
    (command,) = bot.app.store.commands(run.id, ["done", "failed"])
    assert command.state == "done" and "SIGKILL" in (command.detail or "")


async def test_garbage_output_passes_through_and_does_not_break_parsing(
    bot: Bot, tmp_path: Path
) -> None:
    child = script(
        tmp_path,
        "noisy.py",
        """
        import os, sys
        out = sys.stdout.buffer
        out.write(bytes(range(256)) * 64 + b"\\n")
        out.write(b"x" * 5_000_000 + b"\\n")  # a 5 MB line
        out.write(b"\\x1b[31mstep:1/2 train_loss:2.0000 train_time:5ms step_avg:5ms\\x1b[0m\\n")
        out.write(b"step:2/2 train_loss:1.0000 train_time:10ms step_avg:5ms\\n")
        out.flush()
        """,
    )
    env = reporter_env(bot.url, tmp_path)
    result = await run_to_end(probecast("run", "--", sys.executable, str(child)), env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    direct = await run_to_end([sys.executable, str(child)], env)
    assert result.stdout == direct.stdout and len(result.stdout) > 5_000_000
    assert [e["step"] for e in bot.events("step")] == [1, 2]


async def test_an_unreachable_bot_never_stops_the_job(tmp_path: Path) -> None:
    child = script(tmp_path, "train.py", MNG_CHILD)
    env = reporter_env("http://127.0.0.1:9", tmp_path)  # the discard port: refused
    argv = probecast("run", "--flush-timeout", "1", "--", sys.executable, str(child), "20")
    result = await run_to_end(argv, env)
    assert result.returncode == 0
    direct = await run_to_end([sys.executable, str(child), "20"], env)
    assert result.stdout == direct.stdout
    err = result.stderr.decode()
    assert "bot unavailable" in err and "Traceback" not in err
    # what could not be sent waits in the spool for the next run of the same name
    assert list((tmp_path / "spool").glob("train-*.sqlite"))


async def test_vast_identity_is_registered_and_its_key_never_leaves(
    bot: Bot, tmp_path: Path
) -> None:
    child = script(tmp_path, "train.py", MNG_CHILD)
    key = "vast-container-key-do-not-leak"
    env = reporter_env(
        bot.url,
        tmp_path,
        CONTAINER_ID="4242",
        VAST_CONTAINERLABEL="C.4242",
        GPU_COUNT="2",
        CONTAINER_API_KEY=key,
    )
    result = await run_to_end(probecast("run", "--", sys.executable, str(child), "10"), env)
    assert result.returncode == 0
    run = bot.run()
    registration = json.loads(run.registration)
    assert registration["vast"] == {
        "container_id": "4242",
        "label": "C.4242",
        "gpu_count": 2,
        "can_stop_self": True,  # that it holds the key is said, never the key itself
    }
    assert key not in run.registration and key.encode() not in result.stderr
    everything = json.dumps([body for _, _, body in bot.app.store.events(run.id, ALL_KINDS)])
    assert key not in everything


async def test_transfer_speed_is_timed_and_reported(bot: Bot, tmp_path: Path) -> None:
    received: list[int] = []

    async def download(request: web.Request) -> web.Response:
        return web.Response(body=b"\0" * 3_000_000)

    async def upload(request: web.Request) -> web.Response:
        received.append(len(await request.read()))
        return web.Response(status=201)

    files = web.Application(client_max_size=32 * 1024 * 1024)
    files.router.add_get("/data.bin", download)
    files.router.add_put("/scratch", upload)
    runner = web.AppRunner(files)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        child = script(tmp_path, "train.py", MNG_CHILD)
        argv = probecast(
            "run",
            "--artifact-url", f"http://127.0.0.1:{port}/data.bin?X-Signature=secret",
            "--upload-url", f"http://127.0.0.1:{port}/scratch",
            "--transfer-mb", "2",
            "--", sys.executable, str(child), "30",
        )  # fmt: skip
        result = await run_to_end(argv, reporter_env(bot.url, tmp_path))
    finally:
        await runner.cleanup()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    transfers = {e["direction"]: e for e in bot.events("transfer")}
    assert "up" in transfers, result.stderr.decode()[-1500:]
    assert transfers["down"]["bytes"] == 2_000_000
    assert transfers["down"]["endpoint"] == f"http://127.0.0.1:{port}/data.bin"
    assert transfers["up"]["bytes"] == 2_000_000 and received == [2_000_000]
    assert b"MB/s" in result.stderr and b"secret" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "no command given"),
        (["run", "--", "definitely-not-a-command-xyz"], "command not found"),
        (["run", "--step-pattern", "(unclosed", "--", "true"], "not a valid regex"),
        (["run", "--bot", "ftp://x", "--", "true"], "PROBECAST_URL"),
    ],
)
def test_run_refuses_bad_input_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    env = reporter_env("http://127.0.0.1:9", tmp_path)
    result = subprocess.run(probecast(*args), cwd=REPO, env=env, capture_output=True, timeout=30)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_run_without_a_bot_configured_does_not_start_the_child(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBECAST_")}
    argv = probecast("run", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, timeout=30)
    assert result.returncode == 2
    assert b"PROBECAST_URL is not set" in result.stderr or b"is not set" in result.stderr
    assert not marker.exists()


async def test_the_vast_on_start_snippet_runs_the_command_under_the_reporter(
    bot: Bot, tmp_path: Path
) -> None:
    # The snippet installs the reporter into PROBECAST_VENV unless it is there already;
    # here it is: a launcher for this checkout, so the test needs no network.
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    launcher = venv_bin / "probecast"
    launcher.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m bot.cli "$@"\n')
    launcher.chmod(0o755)
    work = tmp_path / "workspace"
    work.mkdir()
    child = script(work, "train.py", MNG_CHILD)
    env = reporter_env(
        bot.url,
        tmp_path,
        PROBECAST_VENV=str(tmp_path / "venv"),
        PROBECAST_WORKDIR=str(work),
        PROBECAST_TRAIN_CMD=f"{sys.executable} {child.name} 20",
        CONTAINER_ID="777",
        VAST_CONTAINERLABEL="C.777",
    )
    del env["PROBECAST_SPOOL_DIR"]  # the snippet's default: on the work directory's disk
    result = await run_to_end(["bash", str(REPO / "deploy" / "vast-onstart.sh")], env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    run = bot.run()
    assert run.name == "C.777"  # the run is named after the instance's label
    assert [e["step"] for e in bot.events("step")] == list(range(1, 21))
    assert b"step:20/20" in (work / "train.log").read_bytes()
    assert (work / ".probecast").is_dir()


def test_a_redraws_shape_leaves_out_terminal_codes() -> None:
    # Rich starts every redraw with ESC[2K: its digit once gave every bar one shape, so
    # the thinning of redraws dropped a sanity check's bar between two others.
    sanity = "\x1b[2KSanity Checking \x1b[35m━━━━\x1b[0m 1/2 \x1b[2m0:00:00 • -:--:--\x1b[0m"
    epoch = "\x1b[2KEpoch 0/1  \x1b[90m━━━━\x1b[0m 0/100 \x1b[2m0:00:00 • -:--:--\x1b[0m"
    assert _shape(sanity) == "Sanity Checking ━━━━ "
    assert _shape(sanity) != _shape(epoch)
