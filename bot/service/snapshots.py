"""Reading a run as the cards show it: its calibrated steps, estimate, spend and view,
and the option table built from what its probe measured."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.adapters.market import Market
from bot.adapters.store import RunRecord, SqliteStore
from bot.core import kill as k
from bot.core.attempts import launch_changes
from bot.core.estimate import (
    CalibrationSettings,
    RunInputs,
    calibrate_throughput,
    estimate_run,
)
from bot.core.gpus import Catalog, UnknownGpu
from bot.core.instance import billed_usd_per_hour, contract_risk, describe_instance
from bot.core.options import OptionTable, RunFacts, SwitchSettings, build_option_table
from bot.core.pace_profile import PaceProfile, derive_pace_profile, profile_breakers
from bot.core.projection import project_finish
from bot.core.render import (
    TRIGGER_LABELS,
    RunView,
    after_kill_billing,
    how_kill_stops,
    kill_confirm_text,
)
from bot.service.history import StepHistory, calibrated_steps, load_run, load_steps
from bot.service.ports import Ports, RunSnapshot
from bot.service.records import (
    alert_states,
    gpu_label,
    hardware_of,
    instance_track,
    launch_of,
    registration_of,
)


def current_kill(store: SqliteStore, run: RunRecord) -> k.Kill | None:
    """The run's latest kill, unless it ended before the run was started again."""
    latest = store.latest_kill(run.id)
    if latest is None or not latest.terminal or run.restart_at is None:
        return latest
    return None if latest.requested_at < run.restart_at else latest


class Snapshots:
    def __init__(self, ports: Ports, catalog: Catalog, market: Market | None = None) -> None:
        self.ports, self.catalog, self.market = ports, catalog, market
        # An earlier attempt's profile by run id, with the events acked when it was read:
        # a finished run's is read once, not on every check-in of its relaunch.
        self._profiles: dict[str, tuple[int, PaceProfile | None]] = {}

    def pace_prior(self, run: RunRecord) -> tuple[PaceProfile | None, str | None]:
        """The earlier attempt's pace profile when it holds for ``run``, and the card's
        words for it: that the ETA follows it, or why it does not."""
        before = None if run.attempt_of is None else self.ports.store.get_run(run.attempt_of)
        if before is None:
            return None, None
        cached = self._profiles.get(before.id)
        if cached is None or cached[0] != before.acked_seq:
            # Read once per earlier attempt (normally finished): a day-long one costs the
            # loop about 2 s here, once, where its own reads go to a worker thread.
            points, pauses = load_steps(self.ports.store, before.id)
            evals = calibrate_throughput(points, pauses, self._calibration_settings())
            profile = derive_pace_profile(
                points,
                pauses,
                before.target_steps,
                attempt=before.attempt,
                eval_s_each=evals.eval_s_each,
            )
            self._profiles[before.id] = cached = (before.acked_seq, profile)
        profile = cached[1]
        which = f"attempt {before.attempt}'s pace profile"
        if profile is None:
            return None, f"not from {which}: it ran too little of its target to have one"
        changes = launch_changes(
            launch_of(before),
            launch_of(run),
            gpu_before=gpu_label(before),
            gpu_after=gpu_label(run),
        )
        breakers = profile_breakers(
            changes, target_before=before.target_steps, target_after=run.target_steps
        )
        if breakers:
            return None, f"not from {which}: {'; '.join(breakers)}"
        return profile, f"ETA follows {which}"

    async def read_snapshot(self, run: RunRecord) -> RunSnapshot:
        """``snapshot`` with the run's steps read by ``read_steps``."""
        return self.snapshot(run, await self.read_steps(run))

    async def read_steps(self, run: RunRecord) -> StepHistory:
        """The run's steps, calibrated. A long run's are read and calibrated on a worker
        thread with a connection of its own: a day at 5 step/s (432,000 steps) is about
        2 s of CPU, and on the event loop no post was answered and no Slack action acked
        while it ran. Beside the thread the loop's longest stall was about 0.12 s."""
        store = self.ports.store
        if run.acked_seq < self.ports.settings.history_off_loop_events or not store.on_disk:
            return self._steps(store, run.id)
        return await asyncio.to_thread(self._steps_apart, run.id)

    def _calibration_settings(self) -> CalibrationSettings:
        return CalibrationSettings(probe_steps=self.ports.settings.probe_steps)

    def _steps(self, store: SqliteStore, run_id: str) -> StepHistory:
        return calibrated_steps(store, run_id, self._calibration_settings())

    def _steps_apart(self, run_id: str) -> StepHistory:
        """On a worker thread: its own read-only connection, opened and closed here."""
        reader = SqliteStore.reader(self.ports.store.path)
        try:
            return self._steps(reader, run_id)
        finally:
            reader.close()

    def snapshot(self, run: RunRecord, steps: StepHistory | None = None) -> RunSnapshot:
        """The run as the cards show it. ``steps``: from ``read_steps`` when the caller
        has read them already; otherwise they are read here, on the caller's thread."""
        now = self.ports.clock()
        calibration = (steps or self._steps(self.ports.store, run.id)).calibration
        track = instance_track(run)
        facts = None if track is None else track.facts
        usd_per_hour = billed_usd_per_hour(run.usd_per_hour, facts)
        registration = registration_of(run)
        config = registration.config
        pace, pace_note = self.pace_prior(run)
        estimate = estimate_run(
            calibration,
            RunInputs(
                run.target_steps,
                run.eval_every,
                usd_per_hour,
                run.setup_s,
                run.restart_s,
                final_eval=bool(config.final_eval),
                save_every=config.save_every,
                final_save=bool(config.final_save),
                eval_every_expected=config.eval_every_expected,
            ),
            origin_s=run.first_step_at,
            pace=pace,
        )
        if estimate is not None and estimate.pace is not None and pace_note is not None:
            pace_note += f" (×{estimate.pace_factor:.2f} on the remaining steps' pace)"
        kill = current_kill(self.ports.store, run)
        reg_vast = registration.vast
        spent = None
        if usd_per_hour is not None:
            # an active run bills until now, even while its reporter is silent
            billed_s = (now if run.active else run.last_event_at or now) - run.started_at
            spent = max(0.0, billed_s) / 3600 * usd_per_hour
            if track is not None:  # an outbid pause bills the disk, not the GPU
                storage = (facts.storage_usd_per_hour if facts else None) or 0.0
                paused_usd = track.lost_s(now) / 3600 * max(0.0, usd_per_hour - storage)
                spent = max(0.0, spent - paused_usd)
        states = alert_states(run)
        view = RunView(
            run_id=run.id,
            name=run.name,
            state=run.state,
            target_steps=run.target_steps,
            gpu_label=gpu_label(run),
            usd_per_hour=usd_per_hour,
            last_event_age_s=None if run.last_event_at is None else now - run.last_event_at,
            last_event_at_s=run.last_event_at,
            as_of_s=now,
            kept_until_s=None
            if run.kept_until is None or run.kept_until <= now
            else run.kept_until - now,
            kill_state=None
            if kill is None or kill.state == "cancelled" or kill.expired(now)
            else k.describe(kill),
            return_code=run.return_code,
            spent_usd=spent,
            alerts=tuple(
                t for t, a in states.items() if a.resolved_at is None and a.cleared_at is None
            ),
            clearing=tuple(
                t for t, a in states.items() if a.resolved_at is None and a.cleared_at is not None
            ),
            instance_id=None if reg_vast is None else reg_vast.container_id,
            instance_state=None if track is None else describe_instance(track, now),
            attempt=run.attempt,
            pace_note=pace_note,
        )
        how, after = kill_words(self.ports, run, view)
        projected = (
            None
            if estimate is None
            else project_finish(estimate, now=now, spent_usd=spent).cost_usd
        )
        view = replace(
            view,
            kill_confirm=kill_confirm_text(view, projected_usd=projected, how=how, after=after),
        )
        return RunSnapshot(run, estimate, view, calibration.clean_steps)

    async def option_table(self, snap: RunSnapshot) -> OptionTable:
        """This run's row and every alternative the market offers, decided."""
        facts, missing = self._run_facts(snap.run)
        settings = self.ports.settings
        candidates = (
            []
            if self.market is None
            else await self.market.candidates(facts.num_gpus, settings.offer_disk_gb)
        )
        facts = replace(facts, instance_risks=self._instance_risks(snap))
        table = build_option_table(
            snap.estimate,
            hardware_of(snap.run),
            probe_steps_seen=snap.clean_steps,
            probe_steps=settings.probe_steps,
            usd_per_hour=snap.view.usd_per_hour,
            candidates=candidates,
            facts=facts,
            settings=SwitchSettings(saving=settings.switch_saving),
        )
        return replace(table, missing=(*table.missing, *missing))

    def _instance_risks(self, snap: RunSnapshot) -> tuple[str, ...]:
        """The contract ending before the finish: a major risk for this run's own row."""
        track = instance_track(snap.run)
        if track is None or snap.estimate is None:
            return ()
        now, eta = self.ports.clock(), snap.estimate.eta
        risk = contract_risk(
            track.facts, now, now + eta.base.remaining_s, now + eta.pess.remaining_s
        )
        return () if risk is None else (f"MAJOR: {risk}",)

    def _run_facts(self, run: RunRecord) -> tuple[RunFacts, list[str]]:
        """What the probe and telemetry say about the run, for predicting other GPUs."""
        reg = registration_of(run)
        gpu = reg.gpus[0] if reg.gpus else None
        missing: list[str] = []
        spec = None
        if gpu is not None:
            try:
                spec = self.catalog.resolve(gpu.name, gpu.vram_mib / 1024 if gpu.vram_mib else None)
            except UnknownGpu as exc:
                missing.append(str(exc))
        loaded = load_run(
            self.ports.store, run, post_interval_s=self.ports.settings.post_interval_s
        )
        history = loaded.history
        utils = [u for _, u in loaded.gpu_util]
        mems = [g.mem_util_pct for g in history.gpus if g.mem_util_pct is not None]
        rams = [h.ram_used_mib for h in history.hosts if h.ram_used_mib is not None]
        downloads = [x.mb_per_s for x in history.transfers if x.direction == "down"]
        silenced = run.kept_until is not None and run.kept_until > self.ports.clock()
        holding = (
            [] if silenced else [t for t, a in alert_states(run).items() if a.resolved_at is None]
        )
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


def kill_words(ports: Ports, run: RunRecord, view: RunView) -> tuple[str, str]:
    """How a kill would stop this run's training, and what keeps billing after it."""
    settings = ports.settings
    registration = registration_of(run)
    vast = registration.vast
    via, _ = k.plan_instance(
        settings.on_kill,
        None if vast is None else vast.container_id,
        bot_has_key=ports.instances is not None,
        reporter_has_key=vast is not None and vast.can_stop_self,
    )
    track = instance_track(run)
    storage = None if track is None or track.facts is None else track.facts.storage_usd_per_hour
    how = how_kill_stops(registration.kill_by, settings.kill_grace_s)
    after = after_kill_billing(via, settings.on_kill, view.instance_id, view.usd_per_hour, storage)
    return how, after


__all__ = ["Snapshots", "current_kill", "kill_words"]
