"""The HF Trainer and Lightning callbacks, trained for real on CPU against the real bot.

Each framework test trains a tiny regression model while the bot runs under uvicorn on
loopback, then asserts what the bot stored: steps, losses, eval and checkpoint phases
around the real work, the exit, and a typed ``/kill`` that stops training early. They
need the optional ``callbacks`` extra (torch, transformers, lightning) and skip without
it; the `ProbeDriver` tests need no framework.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.store import RunRecord
from bot.app import App, RunningServer, build, start_server
from bot.chat.console import ConsoleChat
from bot.service.records import registration_of
from reporter.callbacks import KILL_SYNC_EVERY_STEPS, Cadence, ProbeDriver
from reporter.probe import Probe
from reporter.wire import ConfigFamily
from tests.conftest import SECRET, make_settings

REPO = Path(__file__).resolve().parents[2]
EXTRA = "needs the optional callbacks extra: pip install 'probecast[callbacks]'"
Stored = list[tuple[str, float, dict[str, Any]]]


# --- harness ---------------------------------------------------------------------------


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[App, RunningServer]]:
    settings = make_settings(tmp_path, table_deadline_s=600, checkin_interval_s=3600)
    app = build(settings, chat=ConsoleChat(io.StringIO()))
    server = await start_server(app)
    try:
        yield app, server
    finally:
        await server.stop()
        app.store.close()


def probe_kwargs(server: RunningServer, tmp_path: Path, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "url": server.url,
        "ingest_secret": SECRET,
        "post_interval_s": 0.05,
        # PROBECAST_SPOOL_DIR keeps a durable spool, where the Probe has one, in tmp_path.
        "environ": {"PROBECAST_SPOOL_DIR": str(tmp_path / "spool")},
    }


async def wait_for(predicate: Callable[[], object], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def the_run(app: App, name: str) -> RunRecord:
    return next(run for run in app.store.list_runs() if run.name == name)


async def finished_run(app: App, name: str) -> tuple[RunRecord, Stored]:
    """The run once its exit is stored, and every event it reported, in seq order."""
    await wait_for(lambda: any(r.name == name and not r.active for r in app.store.list_runs()))
    run = the_run(app, name)
    return run, list(app.store.events(run.id, ["step", "phase", "log", "exit"]))


def steps_of(events: Stored) -> list[tuple[int, Any]]:
    """(step, loss as stored: a number, None, or "nan"/"inf" as on the wire)."""
    return [(int(body["step"]), body.get("loss")) for kind, _, body in events if kind == "step"]


def phases_of(events: Stored) -> list[tuple[str, int, float, float]]:
    """(phase, last step before it, start t, end t); each closes before the next step."""
    found: list[tuple[str, int, float, float]] = []
    last_step = 0
    current: tuple[str, float] | None = None
    for kind, t, body in events:
        if kind == "step":
            assert current is None, f"step {body['step']} inside an open {current} phase"
            last_step = int(body["step"])
        elif kind == "phase" and body["edge"] == "start":
            assert current is None, f"{body['phase']} started inside {current}"
            current = (body["phase"], t)
        elif kind == "phase":
            assert current is not None and current[0] == body["phase"], body
            found.append((current[0], last_step, current[1], t))
            current = None
    assert current is None, f"{current} never ended"
    return found


def logs_of(events: Stored) -> list[dict[str, Any]]:
    return [body for kind, _, body in events if kind == "log"]


def exit_code(events: Stored) -> int:
    codes = [int(body["return_code"]) for kind, _, body in events if kind == "exit"]
    assert len(codes) == 1
    return codes[0]


def assert_within(
    moments: list[float], phases: list[tuple[str, int, float, float]], slack_s: float = 0.0
) -> None:
    for moment in moments:
        assert any(start - slack_s <= moment <= end + slack_s for *_, start, end in phases), moment


def written_at(files: list[Path]) -> list[float]:
    return [f.stat().st_mtime for f in files]


# File times come from the kernel's coarse clock, up to a tick (4-10 ms) behind time.time().
MTIME_SLACK_S = 0.011


async def kill_when_registered(app: App, probe_of: Callable[[], Probe | None], name: str) -> None:
    """Type the two-step kill into the bot once the callback's probe has registered."""

    def registered() -> bool:
        probe = probe_of()
        return probe is not None and probe.run_id is not None

    await wait_for(registered)
    await wait_for(lambda: the_run(app, name).active)
    await app.service.handle_command(f"/kill {name}", "console")
    await app.service.handle_command(f"/kill {name} confirm", "console")


STEP_PAUSE_S = 0.01  # kill tests: slow enough that a kill lands long before the end


async def launch_and_kill(app: App, name: str, command: list[str]) -> tuple[int, str, str]:
    """Run a multi-process launcher, type a kill once its run registers; (code, out, err)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launcher = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        await wait_for(lambda: any(r.name == name for r in app.store.list_runs()), 90)
        await app.service.handle_command(f"/kill {name}", "console")
        await app.service.handle_command(f"/kill {name} confirm", "console")
        out, err = await asyncio.wait_for(launcher.communicate(), 60)
    finally:
        if launcher.returncode is None:
            # The launcher passes SIGTERM on to its ranks (torchrun runs them in sessions
            # of their own, out of reach of a process-group kill).
            launcher.terminate()
            try:
                await asyncio.wait_for(launcher.wait(), 30)
            except TimeoutError:
                launcher.kill()
                await launcher.wait()
    assert launcher.returncode is not None
    return launcher.returncode, out.decode(), err.decode()


# --- ProbeDriver, no framework needed ----------------------------------------------------


def test_the_callbacks_package_imports_no_framework() -> None:
    code = (
        "import sys, reporter.callbacks\n"
        "heavy = ('torch', 'transformers', 'lightning', 'pytorch_lightning')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_driver_refuses_a_misspelt_keyword_or_a_probe_with_keywords(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        ProbeDriver(None, {"target_step": 10})
    environ = {"PROBECAST_SPOOL_DIR": str(tmp_path)}
    probe = Probe("x", 10, url="http://127.0.0.1:9", ingest_secret="s", environ=environ)
    try:
        with pytest.raises(TypeError):
            ProbeDriver(probe, {"name": "y"})
    finally:
        probe.close(timeout_s=0)


def test_driver_without_settings_reports_nothing_and_raises_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    driver = ProbeDriver(None, {"environ": {}})
    driver.start(target_steps=10, eval_every=None)
    assert not driver.active
    driver.step(1, loss=1.0)
    driver.open("eval")
    driver.close("eval")
    driver.losses_checked(1, "at step 1")
    driver.finish(0)
    with driver.shielded("on_step_end"):
        raise RuntimeError("boom")
    with driver.shielded("on_step_end"):
        raise RuntimeError("boom again")
    err = capsys.readouterr().err
    assert "not reporting this run: PROBECAST_RUN is not set" in err
    assert err.count("callback on_step_end failed") == 1


async def test_driver_keywords_win_over_the_trainer_and_it_closes_its_own_probe(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    app, server = served
    driver = ProbeDriver(None, {**probe_kwargs(server, tmp_path, "made"), "target_steps": 7})
    driver.start(target_steps=20, eval_every=5)
    driver.start(target_steps=99, eval_every=99)  # a retried train loop keeps its run
    driver.step(1, loss=0.5)
    await asyncio.to_thread(driver.finish, 0)
    run, events = await finished_run(app, "made")
    assert (run.target_steps, run.eval_every) == (7, 5)
    assert steps_of(events) == [(1, 0.5)]
    assert exit_code(events) == 0 and run.state == "finished"


async def test_driver_sends_the_cadence_and_the_eta_counts_evals_from_the_start(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    app, server = served
    family = ConfigFamily(batch_size=8, save_every=7)  # the user's own save_every wins
    driver = ProbeDriver(None, {**probe_kwargs(server, tmp_path, "cadence"), "family": family})
    driver.start(target_steps=1_000, eval_every=100, cadence=Cadence(100, True, 50, True))
    for step in range(1, 41):
        driver.step(step, loss=1.0)
    await asyncio.to_thread(driver.finish, 0)
    run, _ = await finished_run(app, "cadence")
    config = registration_of(run).config
    assert (config.batch_size, config.save_every) == (8, 7)
    assert (config.final_eval, config.final_save) == (True, True)
    estimate = app.service.snapshot(run).estimate
    assert estimate is not None and run.eval_every == 100
    # no eval measured yet: the ten evals are in the ETA at the stated prior
    assert estimate.eval_source == "prior"
    assert estimate.eval_s_each is not None and estimate.eval_s_each > 0


async def test_driver_pairs_edges_reports_a_nonfinite_stretch_once_and_leaves_a_given_probe(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    app, server = served
    probe = Probe(target_steps=10, **probe_kwargs(server, tmp_path, "given"))
    driver = ProbeDriver(probe, {})
    driver.start(target_steps=99, eval_every=None)
    driver.step(1)
    driver.open("eval")
    driver.open("eval")
    driver.close("eval")
    driver.close("eval")
    driver.open("checkpoint")
    for nonfinite in (0, 1, 1, 0, 2):
        driver.losses_checked(nonfinite, "somewhere")
    driver.finish(0)  # ends the open checkpoint, leaves the probe to its owner
    assert not driver.active
    probe.step(2)
    await asyncio.to_thread(probe.close, 0)
    run, events = await finished_run(app, "given")
    assert run.target_steps == 10
    assert [(p, after) for p, after, _, _ in phases_of(events)] == [
        ("eval", 1),
        ("checkpoint", 1),
    ]
    assert [log["code"] for log in logs_of(events)] == ["nonfinite_loss"] * 2
    assert steps_of(events) == [(1, None), (2, None)]


# --- Hugging Face Trainer ---------------------------------------------------------------


def hf_parts(nan_from: int | None = None) -> tuple[Any, Any, list[dict[str, Any]]]:
    """(transformers, a model that records its eval calls, a 64-row regression data set)."""
    torch = pytest.importorskip("torch", reason=EXTRA)
    transformers = pytest.importorskip("transformers", reason=EXTRA)
    pytest.importorskip("accelerate", reason=EXTRA)

    module: Any = torch.nn.Module

    class Regression(module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)
            self.eval_calls: list[float] = []
            self.train_calls = 0

        def forward(self, x: Any, labels: Any) -> dict[str, Any]:
            pred = self.linear(x).squeeze(-1)
            loss = torch.nn.functional.mse_loss(pred, labels)
            if self.training:
                self.train_calls += 1
                if nan_from is not None and self.train_calls >= nan_from:
                    loss = loss * math.nan
            else:
                self.eval_calls.append(time.time())
            return {"loss": loss, "logits": pred}

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    rows = [{"x": x[i], "labels": y[i]} for i in range(64)]
    return transformers, Regression(), rows


def hf_args(transformers: Any, tmp_path: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "output_dir": str(tmp_path / "hf"),
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "learning_rate": 0.05,
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
        "seed": 0,
    }
    values.update(overrides)
    return transformers.TrainingArguments(**values)


async def test_hf_trainer_reports_steps_losses_evals_and_checkpoints(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    transformers, model, rows = hf_parts()
    from reporter.callbacks.hf import ProbecastCallback

    app, server = served
    callback = ProbecastCallback(**probe_kwargs(server, tmp_path, "hf-run"))
    args = hf_args(
        transformers,
        tmp_path,
        max_steps=20,
        logging_steps=5,
        eval_strategy="steps",
        eval_steps=5,
        eval_on_start=True,  # announced by no control flag: the first batch opens it
        save_strategy="steps",
        save_steps=10,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=rows,
        eval_dataset=rows[:16],
        callbacks=[callback],
    )
    await asyncio.to_thread(trainer.train)

    run, events = await finished_run(app, "hf-run")
    assert (run.target_steps, run.eval_every) == (20, 5)
    assert run.state == "finished" and exit_code(events) == 0
    logged = {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e}
    assert sorted(logged) == [5, 10, 15, 20]
    steps = steps_of(events)
    assert [n for n, _ in steps] == list(range(1, 21))
    for n, loss in steps:  # the loss HF logged for a step, none in between
        assert loss == (pytest.approx(logged[n]) if n in logged else None), n
    samples = [body["samples"] for kind, _, body in events if kind == "step"]
    assert samples == [4 * n for n in range(1, 21)]

    phases = phases_of(events)
    assert [(p, after) for p, after, _, _ in phases] == [
        ("eval", 0),
        ("eval", 5),
        ("eval", 10),
        ("checkpoint", 10),
        ("eval", 15),
        ("eval", 20),
        ("checkpoint", 20),
    ]
    # The phases bracket the work itself: every eval forward pass, every saved file.
    assert len(model.eval_calls) == 5 * 2
    assert_within(model.eval_calls, [p for p in phases if p[0] == "eval"])
    saved = sorted((tmp_path / "hf").glob("checkpoint-*/*"))
    assert {f.parent.name for f in saved} == {"checkpoint-10", "checkpoint-20"}
    assert_within(written_at(saved), [p for p in phases if p[0] == "checkpoint"], MTIME_SLACK_S)
    assert logs_of(events) == []


async def test_hf_trainer_stops_on_a_kill_from_the_bot_and_saves(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    transformers, model, rows = hf_parts()
    from reporter.callbacks.hf import ProbecastCallback

    app, server = served
    callback = ProbecastCallback(**probe_kwargs(server, tmp_path, "hf-kill"))

    def probe_of() -> Probe | None:
        return callback.driver.probe

    base: Any = transformers.TrainerCallback

    class Slow(base):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            time.sleep(STEP_PAUSE_S)

    args = hf_args(transformers, tmp_path, max_steps=3_000, logging_steps=1, save_strategy="no")
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=rows, callbacks=[Slow(), callback]
    )
    killing = asyncio.create_task(kill_when_registered(app, probe_of, "hf-kill"))
    await asyncio.to_thread(trainer.train)
    await killing

    stopped = trainer.state.global_step
    assert 1 <= stopped < 3_000
    # Saved on the way out, although this run's save strategy is "no".
    assert [d.name for d in (tmp_path / "hf").glob("checkpoint-*")] == [f"checkpoint-{stopped}"]
    run, events = await finished_run(app, "hf-kill")
    assert run.state == "killed" and exit_code(events) == 0
    assert [n for n, _ in steps_of(events)] == list(range(1, stopped + 1))
    assert [(p, after) for p, after, _, _ in phases_of(events)] == [("checkpoint", stopped)]
    assert [c.state for c in app.store.commands(run.id, ["done", "failed"])] == ["done"]


async def test_hf_trainer_reports_a_nonfinite_loss_once(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    transformers, model, rows = hf_parts(nan_from=4)
    from reporter.callbacks.hf import ProbecastCallback

    app, server = served
    callback = ProbecastCallback(**probe_kwargs(server, tmp_path, "hf-nan"))
    # HF's default filter swaps non-finite losses for a running mean before logging them.
    args = hf_args(
        transformers, tmp_path, max_steps=8, logging_steps=1, logging_nan_inf_filter=False
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback])
    await asyncio.to_thread(trainer.train)

    run, events = await finished_run(app, "hf-nan")
    assert [log["code"] for log in logs_of(events)] == ["nonfinite_loss"]
    assert "at step 4" in logs_of(events)[0]["message"]
    losses = dict(steps_of(events))
    assert all(math.isfinite(losses[n]) for n in (1, 2, 3))
    assert [losses[n] for n in range(4, 9)] == ["nan"] * 5


HF_CRASH_SCRIPT = """
import sys

import torch
import transformers

from reporter.callbacks.hf import ProbecastCallback

url, secret, folder = sys.argv[1:4]


class Boom(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        self.calls = 0

    def forward(self, x, labels):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("boom in step 3")
        return {"loss": torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), labels)}


rows = [{"x": torch.randn(4), "labels": torch.randn(())} for _ in range(16)]
args = transformers.TrainingArguments(
    output_dir=folder, max_steps=10, per_device_train_batch_size=4, report_to="none",
    use_cpu=True, disable_tqdm=True, remove_unused_columns=False,
)
callback = ProbecastCallback(
    name="hf-crash", url=url, ingest_secret=secret, post_interval_s=0.05,
    environ={"PROBECAST_SPOOL_DIR": folder},
)
transformers.Trainer(model=Boom(), args=args, train_dataset=rows, callbacks=[callback]).train()
"""


async def test_hf_trainer_that_raises_reports_exit_code_1_at_interpreter_exit(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    hf_parts()  # skips without the extra
    app, server = served
    script = tmp_path / "crash.py"
    script.write_text(HF_CRASH_SCRIPT)
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(script), server.url, SECRET, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "boom in step 3" in result.stderr, result.stderr[-2000:]
    run, events = await finished_run(app, "hf-crash")
    assert run.state == "failed" and exit_code(events) == 1
    assert [n for n, _ in steps_of(events)] == [1, 2]


HF_DDP_SCRIPT = """
import sys
import time

import torch
import transformers

from reporter.callbacks.hf import ProbecastCallback

url, secret, folder = sys.argv[1:4]


class Regression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x, labels):
        return {"loss": torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), labels)}


class Slow(transformers.TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(0.01)


rows = [{"x": torch.randn(4), "labels": torch.randn(())} for _ in range(64)]
args = transformers.TrainingArguments(
    output_dir=folder, max_steps=3000, per_device_train_batch_size=4, report_to="none",
    use_cpu=True, disable_tqdm=True, remove_unused_columns=False, save_strategy="no",
)
callback = ProbecastCallback(
    name="hf-ddp", url=url, ingest_secret=secret, post_interval_s=0.05,
    environ={"PROBECAST_SPOOL_DIR": folder},
)
trainer = transformers.Trainer(
    model=Regression(), args=args, train_dataset=rows, callbacks=[Slow(), callback]
)
trainer.train()
print(f"rank {args.process_index} of {args.world_size} stopped at {trainer.state.global_step}")
"""


async def test_hf_ddp_ranks_stop_together_on_a_kill(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    """Two CPU processes (gloo): only rank 0 reports, and both stop at the same step."""
    hf_parts()  # skips without the extra
    app, server = served
    script = tmp_path / "ddp.py"
    script.write_text(HF_DDP_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(script), server.url, SECRET, str(tmp_path)]
    code, out, err = await launch_and_kill(app, "hf-ddp", command)

    assert code == 0, err[-3000:]
    stops = sorted(line for line in out.splitlines() if " stopped at " in line)
    assert len(stops) == 2, out
    stopped = int(stops[0].rsplit(" ", 1)[1])
    assert stops == [f"rank {r} of 2 stopped at {stopped}" for r in (0, 1)]
    assert 0 < stopped < 3_000 and stopped % KILL_SYNC_EVERY_STEPS == 0
    run, events = await finished_run(app, "hf-ddp")
    assert run.restarts == 0  # rank 1 registered nothing
    assert run.state == "killed" and exit_code(events) == 0
    assert [n for n, _ in steps_of(events)] == list(range(1, stopped + 1))


# --- Lightning --------------------------------------------------------------------------


def lightning_parts(package: str, nan_from: int | None = None) -> tuple[Any, Any, Any]:
    """(the Lightning package, a model that records its losses and evals, a dataloader)."""
    torch = pytest.importorskip("torch", reason=EXTRA)
    pl = pytest.importorskip(package, reason=EXTRA)

    module: Any = pl.LightningModule

    class LitRegression(module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)
            self.losses: dict[int, float] = {}
            self.eval_calls: list[float] = []

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y)
            step = self.global_step + 1
            if nan_from is not None and step >= nan_from:
                loss = loss * math.nan
            self.losses[step] = float(loss.item())
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.eval_calls.append(time.time())
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    data = torch.utils.data.TensorDataset(x, y)
    return pl, LitRegression(), torch.utils.data.DataLoader(data, batch_size=4)


def lightning_trainer(pl: Any, tmp_path: Path, callbacks: list[Any], **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "default_root_dir": str(tmp_path / "lightning"),
        "log_every_n_steps": 1,
        "callbacks": callbacks,
    }
    values.update(overrides)
    return pl.Trainer(**values)


@pytest.mark.parametrize("package", ["lightning.pytorch", "pytorch_lightning"])
async def test_lightning_reports_steps_losses_validation_and_checkpoints(
    served: tuple[App, RunningServer], tmp_path: Path, package: str
) -> None:
    pl, model, loader = lightning_parts(package)
    from reporter.callbacks.lightning import ProbecastCallback

    app, server = served
    callback = ProbecastCallback(**probe_kwargs(server, tmp_path, "lit-run"))
    checkpoints = pl.callbacks.ModelCheckpoint(
        dirpath=str(tmp_path / "ckpt"), every_n_train_steps=10, save_top_k=-1
    )
    trainer = lightning_trainer(
        pl,
        tmp_path,
        [checkpoints, callback],
        max_steps=20,
        val_check_interval=5,
        check_val_every_n_epoch=None,
        limit_val_batches=2,
        num_sanity_val_steps=2,  # runs, and is not reported as an eval
        enable_checkpointing=True,
    )
    await asyncio.to_thread(trainer.fit, model, loader, loader)

    run, events = await finished_run(app, "lit-run")
    assert (run.target_steps, run.eval_every) == (20, 5)
    assert run.state == "finished" and exit_code(events) == 0
    steps = steps_of(events)
    assert [n for n, _ in steps] == list(range(1, 21))
    for n, loss in steps:
        assert loss == pytest.approx(model.losses[n]), n
    samples = [body["samples"] for kind, _, body in events if kind == "step"]
    assert samples == [4 * n for n in range(1, 21)]

    phases = phases_of(events)
    assert sorted((p, after) for p, after, _, _ in phases) == [
        ("checkpoint", 10),
        ("checkpoint", 20),
        ("eval", 5),
        ("eval", 10),
        ("eval", 15),
        ("eval", 20),
    ]
    assert len(model.eval_calls) == 2 + 4 * 2  # sanity check, then four validations
    assert_within(model.eval_calls[2:], [p for p in phases if p[0] == "eval"])
    assert not any(
        start <= moment <= end for moment in model.eval_calls[:2] for _, _, start, end in phases
    )
    saved = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert len(saved) == 2
    assert_within(written_at(saved), [p for p in phases if p[0] == "checkpoint"], MTIME_SLACK_S)
    assert logs_of(events) == []


async def test_lightning_stops_on_a_kill_from_the_bot(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    pl, model, loader = lightning_parts("lightning.pytorch")
    from reporter.callbacks.lightning import ProbecastCallback

    app, server = served
    callback = ProbecastCallback(**probe_kwargs(server, tmp_path, "lit-kill"))

    def probe_of() -> Probe | None:
        return callback.driver.probe

    base: Any = pl.Callback

    class Slow(base):  # type: ignore[misc]
        def on_train_batch_end(self, *args: Any) -> None:
            time.sleep(STEP_PAUSE_S)

    trainer = lightning_trainer(pl, tmp_path, [Slow(), callback], max_steps=3_000)
    killing = asyncio.create_task(kill_when_registered(app, probe_of, "lit-kill"))
    await asyncio.to_thread(trainer.fit, model, loader)
    await killing

    stopped = trainer.global_step
    assert 1 <= stopped < 3_000
    run, events = await finished_run(app, "lit-kill")
    assert (run.target_steps, run.eval_every) == (3_000, None)
    assert run.state == "killed" and exit_code(events) == 0
    assert [n for n, _ in steps_of(events)] == list(range(1, stopped + 1))
    assert [c.state for c in app.store.commands(run.id, ["done", "failed"])] == ["done"]


async def test_lightning_reports_a_nonfinite_loss_once(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    pl, model, loader = lightning_parts("lightning.pytorch", nan_from=4)
    from reporter.callbacks.lightning import ProbecastCallback

    app, server = served
    callback = ProbecastCallback(**probe_kwargs(server, tmp_path, "lit-nan"))
    trainer = lightning_trainer(pl, tmp_path, [callback], max_steps=8)
    await asyncio.to_thread(trainer.fit, model, loader)

    run, events = await finished_run(app, "lit-nan")
    assert [log["code"] for log in logs_of(events)] == ["nonfinite_loss"]
    assert "at step 4" in logs_of(events)[0]["message"]
    assert run.state == "finished"


async def test_lightning_run_that_raises_reports_exit_code_1(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    pl, model, loader = lightning_parts("lightning.pytorch")
    from reporter.callbacks.lightning import ProbecastCallback

    app, server = served
    callback = ProbecastCallback(**probe_kwargs(server, tmp_path, "lit-crash"))

    class Boom(Exception):
        pass

    base: Any = pl.Callback

    class RaiseAtStep3(base):  # type: ignore[misc]
        def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == 2:
                raise Boom("boom in step 3")

    trainer = lightning_trainer(pl, tmp_path, [callback, RaiseAtStep3()], max_steps=10)
    with pytest.raises(Boom):
        await asyncio.to_thread(trainer.fit, model, loader)
    run, events = await finished_run(app, "lit-crash")
    assert run.state == "failed" and exit_code(events) == 1
    assert [n for n, _ in steps_of(events)] == [1, 2]


LIGHTNING_DDP_SCRIPT = """
import sys
import time

import lightning.pytorch as pl
import torch

from reporter.callbacks.lightning import ProbecastCallback

url, secret, folder = sys.argv[1:4]


class Regression(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Slow(pl.Callback):
    def on_train_batch_end(self, *args):
        time.sleep(0.01)


data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64))
callback = ProbecastCallback(
    name="lit-ddp", url=url, ingest_secret=secret, post_interval_s=0.05,
    environ={"PROBECAST_SPOOL_DIR": folder},
)
trainer = pl.Trainer(
    accelerator="cpu", devices=2, strategy="ddp", max_steps=3000, logger=False,
    enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    default_root_dir=folder, callbacks=[Slow(), callback],
)
trainer.fit(Regression(), torch.utils.data.DataLoader(data, batch_size=4))
print(f"rank {trainer.global_rank} of {trainer.world_size} stopped at {trainer.global_step}")
"""


async def test_lightning_ddp_ranks_stop_together_on_a_kill(
    served: tuple[App, RunningServer], tmp_path: Path
) -> None:
    """Two CPU processes (gloo): only rank 0 reports, and both stop at the same step."""
    lightning_parts("lightning.pytorch")  # skips without the extra
    app, server = served
    script = tmp_path / "ddp.py"
    script.write_text(LIGHTNING_DDP_SCRIPT)
    command = [sys.executable, str(script), server.url, SECRET, str(tmp_path)]
    code, out, err = await launch_and_kill(app, "lit-ddp", command)

    assert code == 0, err[-3000:]
    stops = sorted(line for line in out.splitlines() if " stopped at " in line)
    assert len(stops) == 2, out
    stopped = int(stops[0].rsplit(" ", 1)[1])
    assert stops == [f"rank {r} of 2 stopped at {stopped}" for r in (0, 1)]
    assert 0 < stopped < 3_000 and stopped % KILL_SYNC_EVERY_STEPS == 0
    run, events = await finished_run(app, "lit-ddp")
    assert run.restarts == 0  # rank 1 registered nothing
    assert run.state == "killed" and exit_code(events) == 0
    assert [n for n, _ in steps_of(events)] == list(range(1, stopped + 1))
