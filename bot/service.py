"""The service layer: every route, job and chat command makes one call here.

It gathers inputs from the store, asks the pure core what to do, and applies the answer
through the `Chat` and `Jobs` ports. The clock is injected; nothing here reads it itself.

Exceptions (for adapters to map): `ServiceError` → `Unauthorized`, `RunNotFound`,
`Conflict`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.chat.base import Chat, MessageRef
from bot.core import commands as cmd
from bot.core.alerts import AlertState, plan_alerts
from bot.core.card import Card, parse_action_id
from bot.core.chartdata import build_chart_data
from bot.core.estimate import (
    CalibrationSettings,
    Estimate,
    Pause,
    RunInputs,
    StepPoint,
    estimate_run,
)
from bot.core.gpus import Catalog, UnknownGpu, load_catalog
from bot.core.kill import describe as kill_describe
from bot.core.options import Hardware, OptionTable, RunFacts, SwitchSettings, build_option_table
from bot.core.render import (
    TRIGGER_LABELS,
    RunView,
    fmt_duration,
    fmt_exit_code,
    kill_confirm_text,
    option_table_csv,
    render_alert,
    render_alert_resolved,
    render_audit,
    render_checkin,
    render_option_table,
    render_runs,
    render_status,
    render_text,
)
from bot.core.schedule import check_phase_s, table_deadline_at, table_due
from bot.core.triggers import TRIGGER_NAMES, CheckMemory, TriggerName, evaluate_triggers
from bot.core.trim import trim_history
from bot.history import (
    CheckHistory,
    StepHistory,
    calibrated_steps,
    load_run,
    load_telemetry_series,
)
from bot.kill_flow import KillFlow
from bot.market import Market
from bot.settings import Settings
from bot.store import RunRecord, SqliteStore, StoredEvent
from bot.vast import Instance
from reporter.wire import (
    SCHEMA_VERSION,
    CommandOutcome,
    EventBatch,
    EventsAck,
    Registered,
    RunRegistration,
    RunSettings,
)

Clock = Callable[[], float]
# How often a post may ask whether the probe is complete (a calibration over every step).
TABLE_CHECK_EVERY_S = 5.0
# A reporter whose clock is behind ours by more than this is corrected (issue 5's hung
# rule measures time since the last step on our clock); less is latency and batching.
MAX_TRUSTED_LAG_S = 60.0


class ServiceError(Exception):
    code = "error"


class Unauthorized(ServiceError):
    code = "unauthorized"


class RunNotFound(ServiceError):
    code = "run_not_found"


class Conflict(ServiceError):
    code = "conflict"


class Instances(Protocol):
    """The cloud side of a kill (`bot.vast.VastMarket`)."""

    async def stop_instance(self, instance_id: int | str) -> None: ...

    async def destroy_instance(self, instance_id: int | str) -> None: ...

    async def show_instance(self, instance_id: int | str) -> Instance: ...


class Jobs(Protocol):
    """Timing, owned by the scheduler adapter: run ``job`` for ``run_id`` later."""

    def at(self, run_id: str, job: str, at_s: float | None) -> None: ...

    def every(
        self, run_id: str, job: str, interval_s: float, first_at_s: float | None = None
    ) -> None:
        """Every ``interval_s``, first at ``first_at_s`` (default: one interval from now)."""
        ...

    def cancel(self, run_id: str) -> None: ...


def hash_token(token: str) -> str:
    # Run tokens are 256-bit random, so a fast hash is enough to keep them out of the file.
    return hashlib.sha256(token.encode()).hexdigest()


def _tokens_match(presented: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_token(presented), expected_hash)


@dataclass(frozen=True)
class RunSnapshot:
    """One consistent read of a run: its record, estimate and the view cards need."""

    run: RunRecord
    estimate: Estimate | None
    view: RunView
    clean_steps: int


class Service:
    def __init__(
        self,
        store: SqliteStore,
        chat: Chat,
        settings: Settings,
        clock: Clock,
        jobs: Jobs | None = None,
        market: Market | None = None,
        catalog: Catalog | None = None,
        instances: Instances | None = None,
    ) -> None:
        self.store, self.chat, self.settings, self.clock = store, chat, settings, clock
        self.jobs = jobs
        self._behind_s: dict[str, float] = {}  # run id -> the offset of a clock far behind
        self.market = market
        self.instances = instances
        self.catalog = catalog or load_catalog()
        self._locks: dict[str, asyncio.Lock] = {}
        self._table_checked_at: dict[str, float] = {}  # run id -> when the probe was judged
        # run id -> what its trigger checks still read; rebuilt from the store when absent
        self._check_histories: dict[str, CheckHistory] = {}
        self.kills = KillFlow(self)

    # --- reporter side --------------------------------------------------------------

    def register(self, registration: RunRegistration, presented_secret: str) -> Registered:
        expected = self.settings.ingest_secret
        if expected is None or not hmac.compare_digest(
            presented_secret.encode(), expected.get_secret_value().encode()
        ):
            raise Unauthorized("the ingest secret does not match PROBECAST_INGEST_SECRET")
        now = self.clock()
        instance_id = (registration.vast.container_id if registration.vast else None) or ""
        token = secrets.token_urlsafe(32)
        existing = self.store.find_run(registration.name, instance_id)
        if existing is not None:
            # A restarted reporter continues the same run; the restart is setup/debug time.
            # A rerun after an exit makes the run active again, with what it now declares.
            self.store.update_run(
                existing.id,
                token_hash=hash_token(token),
                restarts=existing.restarts + 1,
                restart_at=now,
                state="registered",
                return_code=None,
                registration=registration.model_dump_json(),
                target_steps=registration.target_steps,
                eval_every=registration.eval_every,
                usd_per_hour=registration.usd_per_hour,
            )
            run_id, restarts, acked = existing.id, existing.restarts + 1, existing.acked_seq
            if self.jobs is not None and not existing.active:
                self._schedule_run(run_id)
        else:
            started = registration.instance_started_at
            run = RunRecord(
                id=uuid.uuid4().hex[:16],
                name=registration.name,
                instance_id=instance_id,
                token_hash=hash_token(token),
                registered_at=now,
                started_at=min(started, now) if started else now,
                registration=registration.model_dump_json(),
                target_steps=registration.target_steps,
                eval_every=registration.eval_every,
                usd_per_hour=registration.usd_per_hour,
            )
            self.store.create_run(run)
            run_id, restarts, acked = run.id, 0, 0
            if self.jobs is not None:
                self._schedule_run(run_id)
        return Registered(
            run_id=run_id,
            run_token=token,
            restarts=restarts,
            acked_seq=acked,
            settings=RunSettings(
                post_interval_s=self.settings.post_interval_s, schema_version=SCHEMA_VERSION
            ),
        )

    def authenticate(self, run_id: str, presented_token: str) -> RunRecord:
        run = self.store.get_run(run_id)
        if run is None or not _tokens_match(presented_token, run.token_hash):
            # The same answer for an unknown run and a wrong token reveals no run ids.
            raise Unauthorized("unknown run or wrong run token")
        return run

    def ingest(self, run_id: str, presented_token: str, batch: EventBatch) -> EventsAck:
        run = self.authenticate(run_id, presented_token)
        received_at = self.clock()
        # Events go onto our clock: the reporter stamped the batch when it sent it, so the
        # gap is its clock's offset (plus latency). Shifting the whole batch keeps step
        # spacing intact. A clock ahead would put events in the future; one far behind
        # would make a healthy run look hung. A small lag is latency, left alone.
        shift_s = self._clock_shift(run_id, batch.sent_at - received_at)
        known = self.store.known_seqs(run_id, batch.seq_from, batch.events[-1].seq)
        # Only events stored for the first time have effects: a resent batch repeats none.
        fresh = [e for e in batch.events if e.seq > run.acked_seq and e.seq not in known]
        stored = [
            StoredEvent(
                seq=e.seq,
                kind=e.kind,
                t=min(e.t - shift_s, received_at),
                received_at=received_at,
                body=e.model_dump_json(exclude={"kind", "seq", "t"}),
            )
            for e in fresh
        ]
        with self.store.transaction():  # one commit per post, not one per write
            self.store.add_events(run_id, stored)
            acked = self.store.contiguous_seq(run_id, run.acked_seq)
            changes: dict[str, Any] = {"acked_seq": acked, "last_event_at": received_at}
            if stored:
                changes.update(self._progress_changes(run, stored, received_at))
            self.store.update_run(run_id, **changes)
        if stored:
            self._schedule_after_ingest(run, changes)
        commands, poll_s = self.kills.deliver(run_id, received_at)
        return EventsAck(acked_seq=acked, commands=commands, poll_s=poll_s)

    def poll_commands(self, run_id: str, presented_token: str) -> EventsAck:
        """A reporter with nothing to post asks for commands (while a kill is pending)."""
        run = self.authenticate(run_id, presented_token)
        commands, poll_s = self.kills.deliver(run_id, self.clock())
        return EventsAck(acked_seq=run.acked_seq, commands=commands, poll_s=poll_s)

    def _clock_shift(self, run_id: str, gap_s: float) -> float:
        """How far to move a batch onto our clock, given sent_at minus our receive time.

        Ahead: always, or events would be in the future. Behind: by one offset per run,
        decided when the lag passes ``MAX_TRUSTED_LAG_S`` and kept while later batches
        agree within that much, so latency jitter cannot flip steps back and forth.
        """
        if gap_s > 0:
            return gap_s
        offset = self._behind_s.get(run_id)
        if offset is None or abs(gap_s - offset) > MAX_TRUSTED_LAG_S:
            offset = gap_s if gap_s < -MAX_TRUSTED_LAG_S else 0.0
            self._behind_s[run_id] = offset
        return offset

    def _progress_changes(
        self, run: RunRecord, events: list[StoredEvent], received_at: float
    ) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if run.first_event_at is None:
            # Our clock, not the reporter's: the table deadline is measured against it.
            changes["first_event_at"] = received_at
        steps = [e.t for e in events if e.kind == "step"]
        if steps and run.first_step_at is None:
            changes["first_step_at"] = min(steps)
            changes["setup_s"] = run.setup_s + max(0.0, min(steps) - run.started_at)
            changes["restart_at"] = None
        elif steps and run.restart_at is not None:
            # Inside the elapsed time already, so it is kept apart from pre-start setup.
            changes["restart_s"] = run.restart_s + max(0.0, min(steps) - run.restart_at)
            changes["restart_at"] = None
        if run.state == "registered":
            changes["state"] = "running"
        for event in events:
            if event.kind == "exit":
                code = json.loads(event.body)["return_code"]
                changes["return_code"] = code
                changes["state"] = (
                    "killed" if self._kill_sent(run) else ("finished" if code == 0 else "failed")
                )
        return changes

    def _schedule_run(self, run_id: str) -> None:
        assert self.jobs is not None
        self.jobs.every(run_id, "checkin", self.settings.checkin_interval_s)
        interval_s = self.settings.check_interval_s
        first_at_s = self.clock() + check_phase_s(run_id, interval_s)
        self.jobs.every(run_id, "check", interval_s, first_at_s)

    def _schedule_after_ingest(self, run: RunRecord, changes: dict[str, Any]) -> None:
        """``run`` as read before this post: only the table job sets ``table_posted_at``."""
        if self.jobs is None:
            return
        run_id = run.id
        if changes.get("state") in ("finished", "failed", "killed"):
            self.jobs.at(run_id, "final", None)
            return
        if run.table_posted_at is not None:
            return
        if "first_event_at" in changes:
            self.jobs.at(
                run_id,
                "table",
                table_deadline_at(changes["first_event_at"], self.settings.table_deadline_s),
            )
        # Whether the probe is complete takes a calibration over every step: under load,
        # once per post per run was the bot's largest cost. So it is not judged here but
        # in a job (jobs take turns with requests, see bot/sched.py), at most once per
        # TABLE_CHECK_EVERY_S and never while one is queued: a few seconds late is fine
        # against a 15-minute promise. Too few steps need no calibration at all. The job
        # has its own id: the deadline job ("table") must survive a probe found short.
        now = self.clock()
        if now - self._table_checked_at.get(run_id, -math.inf) < TABLE_CHECK_EVERY_S:
            return
        if self.store.count_events(run_id, "step") < self.settings.probe_steps:
            return
        self._table_checked_at[run_id] = math.inf  # queued
        self.jobs.at(run_id, "table-check", None)

    async def command_outcome(
        self, run_id: str, presented_token: str, command_id: str, outcome: CommandOutcome
    ) -> None:
        self.authenticate(run_id, presented_token)
        record = self.store.get_command(command_id)
        if record is None or record.run_id != run_id:
            raise RunNotFound(f"no command {command_id} for this run")
        await self.kills.outcome(record, outcome.step, outcome.state, outcome.detail)

    async def kill_deadline(self, run_id: str) -> None:
        await self.kills.deadline(run_id)

    def _kill_sent(self, run: RunRecord) -> bool:
        kill = self.kills.latest(run)
        return kill is not None and kill.process_started_at is not None

    # --- reading a run --------------------------------------------------------------

    async def read_snapshot(self, run: RunRecord) -> RunSnapshot:
        """``snapshot`` with the run's steps read by ``read_steps``."""
        return self.snapshot(run, await self.read_steps(run))

    async def read_steps(self, run: RunRecord) -> StepHistory:
        """The run's steps, calibrated. A long run's are read and calibrated on a worker
        thread with a connection of its own: a day at 5 step/s (432,000 steps) is about
        2 s of CPU, and on the event loop no post was answered and no Slack action acked
        while it ran. Beside the thread the loop's longest stall was about 0.12 s."""
        if run.acked_seq < self.settings.history_off_loop_events or not self.store.on_disk:
            return self._steps(self.store, run.id)
        return await asyncio.to_thread(self._steps_apart, run.id)

    def _steps(self, store: SqliteStore, run_id: str) -> StepHistory:
        return calibrated_steps(
            store, run_id, CalibrationSettings(probe_steps=self.settings.probe_steps)
        )

    def _steps_apart(self, run_id: str) -> StepHistory:
        """On a worker thread: its own read-only connection, opened and closed here."""
        reader = SqliteStore.reader(self.store.path)
        try:
            return self._steps(reader, run_id)
        finally:
            reader.close()

    def snapshot(self, run: RunRecord, steps: StepHistory | None = None) -> RunSnapshot:
        """The run as the cards show it. ``steps``: from ``read_steps`` when the caller
        has read them already; otherwise they are read here, on the caller's thread."""
        now = self.clock()
        calibration = (steps or self._steps(self.store, run.id)).calibration
        estimate = estimate_run(
            calibration,
            RunInputs(
                run.target_steps, run.eval_every, run.usd_per_hour, run.setup_s, run.restart_s
            ),
            origin_s=run.first_step_at,
        )
        kill = self.kills.latest(run)
        reg_vast = _registration(run).vast
        spent = (
            None
            if run.usd_per_hour is None
            # an active run bills until now, even while its reporter is silent
            else max(0.0, (now if run.active else run.last_event_at or now) - run.started_at)
            / 3600
            * run.usd_per_hour
        )
        view = RunView(
            run_id=run.id,
            name=run.name,
            state=run.state,
            target_steps=run.target_steps,
            gpu_label=_gpu_label(run),
            usd_per_hour=run.usd_per_hour,
            last_event_age_s=None if run.last_event_at is None else now - run.last_event_at,
            kept_until_s=None
            if run.kept_until is None or run.kept_until <= now
            else run.kept_until - now,
            kill_state=None
            if kill is None or kill.state == "cancelled" or kill.expired(now)
            else kill_describe(kill),
            return_code=run.return_code,
            spent_usd=spent,
            alerts=tuple(_alert_states(run)),
            instance_id=None if reg_vast is None else reg_vast.container_id,
        )
        return RunSnapshot(run, estimate, view, calibration.clean_steps)

    async def option_table(self, snap: RunSnapshot) -> OptionTable:
        """This run's row and every alternative the market offers, decided."""
        facts, missing = self._run_facts(snap.run)
        candidates = (
            []
            if self.market is None
            else await self.market.candidates(facts.num_gpus, self.settings.offer_disk_gb)
        )
        table = build_option_table(
            snap.estimate,
            _hardware(snap.run),
            probe_steps_seen=snap.clean_steps,
            probe_steps=self.settings.probe_steps,
            usd_per_hour=snap.run.usd_per_hour,
            candidates=candidates,
            facts=facts,
            settings=SwitchSettings(saving=self.settings.switch_saving),
        )
        return replace(table, missing=(*table.missing, *missing))

    def _run_facts(self, run: RunRecord) -> tuple[RunFacts, list[str]]:
        """What the probe and telemetry say about the run, for predicting other GPUs."""
        reg = _registration(run)
        gpu = reg.gpus[0] if reg.gpus else None
        missing: list[str] = []
        spec = None
        if gpu is not None:
            try:
                spec = self.catalog.resolve(gpu.name, gpu.vram_mib / 1024 if gpu.vram_mib else None)
            except UnknownGpu as exc:
                missing.append(str(exc))
        loaded = load_run(self.store, run, post_interval_s=self.settings.post_interval_s)
        history = loaded.history
        utils = [u for _, u in loaded.gpu_util]
        mems = [g.mem_util_pct for g in history.gpus if g.mem_util_pct is not None]
        rams = [h.ram_used_mib for h in history.hosts if h.ram_used_mib is not None]
        downloads = [x.mb_per_s for x in history.transfers if x.direction == "down"]
        silenced = run.kept_until is not None and run.kept_until > self.clock()
        holding = [] if silenced else list(_alert_states(run))
        num_gpus = gpu.count if gpu else 1
        batch = reg.config.batch_size
        precision = (reg.config.precision or "bf16").lower()
        facts = RunFacts(
            spec=spec,
            num_gpus=num_gpus,
            precision="fp32"
            if precision in ("fp32", "fp64", "float32")
            else ("fp16" if precision in ("fp16", "float16", "half") else "bf16"),
            gpu_util_pct=sum(utils) / len(utils) if utils else None,
            mem_util_pct=sum(mems) / len(mems) if mems else None,
            batch_per_gpu=None if batch is None else max(1, batch // num_gpus),
            peak_vram_mib=loaded.peak_vram_mib,
            peak_host_ram_gib=max(rams) / 1024 if rams else None,
            transfer_mb_per_s=max(downloads) if downloads else None,
            trigger_holding=TRIGGER_LABELS.get(holding[0], holding[0]) if holding else None,
        )
        return facts, missing

    async def _post_option_table(self, snap: RunSnapshot, status: MessageRef) -> None:
        """Into the status message's thread: three short lines, then the whole table as
        PNG and CSV."""
        table = await self.option_table(snap)
        card = render_option_table(table, snap.view)
        ref = await self.chat.reply(status, card)
        if card.table is None or not self.chat.keeps_attachments:
            return
        from bot.table_png import render_table_png  # Pillow loads only when needed

        png = await asyncio.to_thread(render_table_png, card.title, card.table)
        await self.chat.attach(ref, "options.png", png, f"{card.title} (all options)")
        csv_text = option_table_csv(card.table)
        await self.chat.attach(ref, "options.csv", csv_text.encode(), f"{card.title} (CSV)")

    def _table_due(self, snap: RunSnapshot) -> bool:
        return table_due(
            posted=snap.run.table_posted_at is not None,
            probe_complete=snap.clean_steps >= self.settings.probe_steps,
            first_event_at_s=snap.run.first_event_at,
            deadline_s=self.settings.table_deadline_s,
            now_s=self.clock(),
        )

    # --- jobs -----------------------------------------------------------------------

    async def run_job(self, run_id: str, job: str) -> None:
        handlers = {
            "table": self.post_table,
            "table-check": self.post_table,
            "checkin": self.checkin,
            "check": self.check,
            "kill-deadline": self.kills.deadline,
            "instance-stop": self.kills.instance_step,
            "final": self.finish,
        }
        await handlers[job](run_id)

    def _posting(self, run_id: str) -> asyncio.Lock:
        """One run's posts never race (its status message is made once, its table posted
        once); runs never wait for each other, so one slow table holds up no one else."""
        return self._locks.setdefault(run_id, asyncio.Lock())

    async def post_table(self, run_id: str) -> bool:
        """Post the option table once; returns whether this call posted it."""
        posted = False
        try:
            posted = await self._post_table(run_id)
        finally:
            if not posted:  # the next post after TABLE_CHECK_EVERY_S queues a check again
                self._table_checked_at[run_id] = self.clock()
        return posted

    async def _post_table(self, run_id: str) -> bool:
        async with self._posting(run_id):
            run = self.store.get_run(run_id)
            if run is None:
                return False
            snap = await self.read_snapshot(run)
            if not self._table_due(snap):
                return False
            status = await self._ensure_status(snap)
            await self._post_option_table(snap, status)
            self.store.update_run(run_id, table_posted_at=self.clock())
            return True

    async def checkin(self, run_id: str) -> None:
        async with self._posting(run_id):
            await self._checkin(run_id)

    async def _checkin(self, run_id: str) -> None:
        run = self.store.get_run(run_id)
        if run is None:
            return
        if not run.active:
            if self.jobs is not None:
                self.jobs.cancel(run_id)
            return
        if run.first_event_at is None:
            return  # nothing to say before the run reports anything
        # Read once for the estimate and the chart: a ten-hour run has 36,000 rows.
        steps = await self.read_steps(run)
        snap = self.snapshot(run, steps)
        ref = await self._ensure_status(snap, update=True)
        reply = await self.chat.reply(ref, render_checkin(snap.estimate, snap.view))
        self.store.update_run(run_id, last_checkin_at=self.clock())
        if not self.chat.keeps_attachments:
            return
        # telemetry is read here, on the event loop
        inputs = self._chart_inputs(run, steps.points, steps.pauses)
        if inputs is not None:
            # Computing and drawing take about a second on a long run: off the event
            # loop, on data already read (the SQLite connection stays on this thread).
            png = await asyncio.to_thread(_render_chart, inputs)
            await self.chat.attach(reply, "chart.png", png, f"{run.name}: speed and ETA")

    def _chart_inputs(
        self, run: RunRecord, steps: list[StepPoint], pauses: list[Pause]
    ) -> dict[str, Any] | None:
        """Everything the check-in chart needs, or None before the first step."""
        if not steps:
            return None
        gpu_util, vram_pct = load_telemetry_series(self.store, run.id)
        memory = CheckMemory.from_json(run.trigger_memory) if run.trigger_memory else None
        expected_s = _registration(run).expected_step_s or (memory and memory.expected_step_s)
        return dict(
            title=f"{run.name} · {_gpu_label(run)}",
            steps=steps,
            pauses=pauses,
            target_steps=run.target_steps,
            eval_every=run.eval_every,
            usd_per_hour=run.usd_per_hour,
            gpu_util=gpu_util,
            vram_pct=vram_pct,
            expected_step_per_s=1 / expected_s if expected_s else None,
            now=self.clock(),
            calibration_settings=CalibrationSettings(probe_steps=self.settings.probe_steps),
            slow_fraction=self.settings.trigger_throughput_ratio,
        )

    # --- triggers -------------------------------------------------------------------

    async def check(self, run_id: str) -> None:
        """Evaluate the run's triggers and post, repeat or resolve its alerts."""
        async with self._posting(run_id):
            await self._check(run_id)

    async def _check(self, run_id: str) -> None:
        run = self.store.get_run(run_id)
        if run is None or run.first_event_at is None:
            return
        now = self.clock()
        kept = self._check_histories.get(run_id)
        if kept is None or (kept.checked_at is not None and now < kept.checked_at):
            kept = self._check_histories[run_id] = CheckHistory()  # a clock back: read afresh
        history = kept.read(self.store, run, post_interval_s=self.settings.post_interval_s)
        memory = CheckMemory.from_json(run.trigger_memory) if run.trigger_memory else CheckMemory()
        trigger_settings = self.settings.trigger_settings()
        findings, memory = evaluate_triggers(history, now, memory, trigger_settings)
        if not run.active:
            findings = []  # an ended run resolves whatever it held, and raises nothing new
        active = _alert_states(run)
        actions, states = plan_alerts(
            findings,
            active,
            now,
            silenced_until=run.kept_until,
            repeat_s=self.settings.alert_repeat_s,
        )
        snap = await self.read_snapshot(run) if actions else None
        for action in actions:
            assert snap is not None
            if action.kind == "resolve":
                if action.state.message_ref is not None:
                    card = render_alert_resolved(
                        action.trigger, action.state.detail, snap.view, now - action.state.first_at
                    )
                    await self.chat.update(MessageRef.loads(action.state.message_ref), card)
                continue
            assert action.finding is not None
            card = render_alert(
                action.finding,
                snap.estimate,
                snap.view,
                repeat=action.kind == "repeat",
                kill_confirm=kill_confirm_text(
                    snap.view, self.settings.kill_grace_s, self.settings.on_kill
                ),
            )
            ref = await self.chat.post(card)
            states[action.trigger] = replace(action.state, message_ref=ref.dumps())
            # Stored at once, with its decision: a bot killed after this alert went out
            # must not send it again when it restarts.
            with self.store.transaction():
                self.store.add_decision(
                    run_id, f"alert-{action.kind}", "probecast", now, None, action.finding.to_dict()
                )
                self.store.update_run(run_id, alert_states=_dump_states(states))
        self.store.update_run(
            run_id,
            trigger_memory=memory.to_json(),
            alert_states=_dump_states(states),
        )
        # Trimmed only once the memory it assumes is stored: a check that failed before
        # this point leaves the whole history for the next one.
        if run.active:
            kept.keep_only(trim_history(history, now, memory, trigger_settings), now)
        else:
            self._check_histories.pop(run_id, None)

    async def finish(self, run_id: str) -> None:
        # Under the run's posting lock: the table, check-ins and the final card never race
        # to create the status message or post the table twice.
        async with self._posting(run_id):
            await self._finish(run_id)

    async def _finish(self, run_id: str) -> None:
        run = self.store.get_run(run_id)
        if run is None:
            return
        if self.jobs is not None:
            self.jobs.cancel(run_id)
        # The exit can beat a kill's own jobs, which the cancel just removed: put them back.
        kill = self.store.latest_kill(run_id)
        if kill is not None and kill.pending:
            self.kills.schedule(kill)
        if run.alert_states:
            await self._check(run_id)  # an ended run resolves its alerts, buttons and all
        if run.table_posted_at is None and run.first_event_at is not None:
            snap = await self.read_snapshot(run)
            status = await self._ensure_status(snap)
            await self._post_option_table(snap, status)
            self.store.update_run(run_id, table_posted_at=self.clock())
        snap = await self.read_snapshot(self.store.get_run(run_id) or run)
        ref = await self._ensure_status(snap, update=True)
        await self.chat.reply(
            ref,
            render_text(
                f"{run.name} {run.state}",
                f"exit code {fmt_exit_code(run.return_code)} · {snap.view.state}"
                if run.return_code is not None
                else snap.view.state,
                "final",
            ),
        )

    async def _ensure_status(self, snap: RunSnapshot, update: bool = False) -> MessageRef:
        card = render_status(snap.estimate, snap.view)
        if snap.run.status_ref is None:
            ref = await self.chat.post(card)
            self.store.update_run(snap.run.id, status_ref=ref.dumps())
            return ref
        ref = MessageRef.loads(snap.run.status_ref)
        if update:
            await self.chat.update(ref, card)
        return ref

    def resume(self) -> int:
        """Rebuild every active run's schedule from the database; returns how many."""
        if self.jobs is None:
            return 0
        active = [run for run in self.store.list_runs() if run.active]
        for run in active:
            self._schedule_run(run.id)
            if run.table_posted_at is None and run.first_event_at is not None:
                at = table_deadline_at(run.first_event_at, self.settings.table_deadline_s)
                due = self._table_due(self.snapshot(run))
                self.jobs.at(run.id, "table", None if due else at)
        for run in self.store.list_runs():
            if not run.active and run.table_posted_at is None and run.first_event_at:
                self.jobs.at(run.id, "final", None)
        self.kills.resume()
        return len(active)

    # --- chat commands --------------------------------------------------------------

    async def handle_command(self, text: str, user: str, *, can_kill: bool | None = None) -> Card:
        """Answer one typed command; a mistake is answered with the usage, not raised.

        ``can_kill`` is the platform's own verdict where it has one (a Discord role);
        ``None`` leaves it to ``PROBECAST_KILLERS``.
        """
        try:
            parsed = cmd.parse_command(text)
            return await self._dispatch(parsed, user, can_kill)
        except cmd.CommandError as exc:
            return render_text("probecast", str(exc), "usage")

    async def _dispatch(
        self, parsed: cmd.ParsedCommand, user: str, can_kill: bool | None = None
    ) -> Card:
        if parsed.verb == "help":
            return render_text("probecast commands", cmd.help_text(), "usage")
        if parsed.verb == "runs":
            return await self._runs_card(self.store.list_runs())
        if parsed.verb == "status" and parsed.run is None:
            active = [r for r in self.store.list_runs() if r.active]
            if len(active) != 1:
                return await self._runs_card(active)
            run = active[0]
        else:
            run = self._find(parsed.run or "")
        snap = await self.read_snapshot(run)
        if parsed.verb == "status":
            return render_status(snap.estimate, snap.view)
        if parsed.verb == "audit":
            return render_audit(snap.view, self._audit_rows(snap.run.id))
        if parsed.verb == "table":
            return render_option_table(await self.option_table(snap), snap.view)
        if parsed.verb == "keep":
            return self.keep(snap, user, parsed.duration_s or cmd.DEFAULT_KEEP_S)
        if parsed.verb == "kill":
            return self.request_kill(snap, user)
        if parsed.verb == "confirm-kill":
            return await self.confirm_kill(snap, user, can_kill)
        return self.cancel_kill(snap, user)

    async def handle_action(self, action: str, user: str, *, can_kill: bool | None = None) -> Card:
        """A button press (``probecast:<verb>:<run_id>``), from any chat platform."""
        parsed = parse_action_id(action)
        run = None if parsed is None else self.store.get_run(parsed[1])
        if parsed is None or run is None:
            return render_text(
                "probecast", "that button belongs to a run I no longer know", "usage"
            )
        try:
            return await self._act(parsed[0], run, user, can_kill)
        except cmd.CommandError as exc:  # e.g. Kill pressed on a run that has ended
            return render_text("probecast", str(exc), "usage")

    async def _act(
        self, verb: str, run: RunRecord, user: str, can_kill: bool | None = None
    ) -> Card:
        snap = await self.read_snapshot(run)
        if verb == "kill":
            return self.request_kill(snap, user)
        if verb == "confirm-kill":
            return await self.confirm_kill(snap, user, can_kill)
        if verb == "cancel-kill":
            return self.cancel_kill(snap, user)
        if verb == "keep":
            return self.keep(snap, user, self.settings.keep_default_s)
        if verb == "snooze":
            return self.keep(snap, user, self.settings.snooze_s, kind="snooze")
        if verb == "destroy":
            return self.kills.ask_destroy(snap)
        if verb == "confirm-destroy":
            return await self.kills.destroy(snap, user, can_kill)
        if verb == "cancel-destroy":
            return render_text(f"Destroy · {run.name}", "cancelled: nothing was destroyed", "kill")
        return render_text("probecast", f"unknown action {verb!r}", "usage")

    def _audit_rows(self, run_id: str) -> list[dict[str, Any]]:
        rows = []
        for row in self.store.decisions(run_id):
            try:
                detail = json.loads(row.get("detail") or "{}")
            except ValueError:
                detail = {}
            rows.append({**row, "detail": detail})
        return rows

    def _find(self, query: str) -> RunRecord:
        runs = self.store.list_runs()
        name = cmd.resolve_run(query, [r.name for r in runs])
        # Several instances may share a name; the latest registration is the one meant.
        return [r for r in runs if r.name == name][-1]

    def decision_detail(self, snap: RunSnapshot) -> dict[str, Any]:
        est = snap.estimate
        return {
            "step": est.current_step if est else None,
            "eta_remaining_s": est.eta.base.remaining_s if est else None,
            "projected_cost_usd": est.live_cost_usd("base") if est else None,
            "spent_usd": snap.view.spent_usd,
        }

    def keep(self, snap: RunSnapshot, user: str, duration_s: float, kind: str = "keep") -> Card:
        """Silence the run's alerts for ``duration_s`` (keep: "I want this run")."""
        now = self.clock()
        self.store.add_decision(
            snap.run.id, kind, user, now, now + duration_s, self.decision_detail(snap)
        )
        # A Snooze after a long Keep must not cut the silence short.
        silenced_until = max(now + duration_s, snap.run.kept_until or 0.0)
        self.store.update_run(snap.run.id, kept_until=silenced_until)
        what = "keeps" if kind == "keep" else "snoozes the alerts of"
        until = datetime.fromtimestamp(silenced_until, UTC).strftime("%a %H:%M UTC")
        return render_text(
            f"{'Kept' if kind == 'keep' else 'Snoozed'} · {snap.run.name}",
            f"{user} {what} {snap.run.name} for {fmt_duration(duration_s)}; "
            f"its alerts are silenced until {until}.",
            kind,
        )

    def request_kill(self, snap: RunSnapshot, user: str) -> Card:
        return self.kills.request(snap, user)

    def may_kill(self, user: str, can_kill: bool | None = None) -> bool:
        return self.kills.may_kill(user, can_kill)

    async def confirm_kill(
        self, snap: RunSnapshot, user: str, can_kill: bool | None = None
    ) -> Card:
        return await self.kills.confirm(snap, user, can_kill)

    def cancel_kill(self, snap: RunSnapshot, user: str) -> Card:
        return self.kills.cancel(snap, user)

    async def refresh_status(self, run_id: str) -> None:
        """Edit the run's status message in place, if it has one."""
        run = self.store.get_run(run_id)
        if run is not None and run.status_ref:
            snap = await self.read_snapshot(run)
            await self.chat.update(
                MessageRef.loads(run.status_ref), render_status(snap.estimate, snap.view)
            )

    async def _runs_card(self, runs: list[RunRecord]) -> Card:
        snaps = [await self.read_snapshot(run) for run in runs]
        return render_runs([(s.view, s.estimate) for s in snaps])


def _render_chart(inputs: dict[str, Any]) -> bytes:
    from bot.chart import render_checkin_png  # matplotlib loads only when needed

    return render_checkin_png(build_chart_data(**inputs))


def _dump_states(states: dict[TriggerName, AlertState]) -> str:
    return json.dumps({t: json.loads(s.to_json()) for t, s in states.items()})


def _alert_states(run: RunRecord) -> dict[TriggerName, AlertState]:
    if not run.alert_states:
        return {}
    stored = json.loads(run.alert_states)
    return {t: AlertState.from_json(stored[t]) for t in TRIGGER_NAMES if t in stored}


def _registration(run: RunRecord) -> RunRegistration:
    return RunRegistration.model_validate_json(run.registration)


def _gpu_label(run: RunRecord) -> str:
    gpus = _registration(run).gpus
    if not gpus:
        return "no GPU reported"
    return ", ".join(f"{g.count}× {g.name}" for g in gpus)


def _hardware(run: RunRecord) -> Hardware:
    reg = _registration(run)
    gpu = reg.gpus[0] if reg.gpus else None
    return Hardware(
        gpu_name=gpu.name if gpu else None,
        gpu_count=gpu.count if gpu else 1,
        vram_gib=gpu.vram_mib / 1024 if gpu and gpu.vram_mib else None,
        cpu_ram_gib=reg.host.ram_mib / 1024 if reg.host and reg.host.ram_mib else None,
    )


__all__ = [
    "Conflict",
    "Jobs",
    "RunNotFound",
    "RunSnapshot",
    "Service",
    "ServiceError",
    "Unauthorized",
    "hash_token",
]
