"""Carrying out kills: the `bot.core.kill` state machine applied to the store, the
reporter's commands, the Vast API and the chat.

Each step is stored before it has effects elsewhere, with a compare-and-set on the
state it started from, so a second confirmation, a replayed button, a retried outcome, a
late deadline or a restarted bot acts on nothing twice. The instance step keeps whether
Vast already took the stop, so a retry after a restart only reads the state back.

Exceptions: none escape; what failed is in the kill's ``failure`` and the final card.

About 500 lines, kept in one module: each transition of the kill reads beside the effects
it has on the store, the reporter, Vast and the chat.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot.adapters.store import CommandRecord, RunRecord
from bot.adapters.vast import VastAuthError, VastError, VastNotFound
from bot.chat.base import MessageRef
from bot.core import kill as k
from bot.core import slash
from bot.core.card import Button, Card, CardField, action_id
from bot.core.instance import disk_line
from bot.core.projection import project_finish
from bot.core.render import (
    fmt_duration,
    fmt_usd,
    render_status,
    render_text,
)
from bot.service.disk import DiskReminders, disk_usd_per_day
from bot.service.ports import Ports, RunSnapshot, SnapshotReader
from bot.service.records import instance_id_of, registration_of
from bot.service.snapshots import current_kill, kill_words
from reporter.wire import Command

# After the grace period, how long a kill waits for the reporter before the bot stops the
# instance through the Vast API alone.
KILL_REPORTER_DEADLINE_S = 120.0
# Commands typed into the bot's own terminal come from this user: whoever runs the bot.
LOCAL_USER = "console"


class KillFlow:
    """Needs only the ports and a way to read a run, so it depends on no other part."""

    def __init__(self, ports: Ports, snapshots: SnapshotReader) -> None:
        self.ports, self.snapshots = ports, snapshots
        self.store = ports.store
        self.disk = DiskReminders(ports)

    # --- asked from chat ------------------------------------------------------------

    def request(self, snap: RunSnapshot, user: str) -> Card:
        """The confirmation step: say what a kill does and what it costs, do nothing yet."""
        run, now = snap.run, self.ports.clock()
        latest = self.latest(run)
        if latest is not None and (latest.pending or latest.state == "done"):
            return self._text(run, k.describe(latest))
        if not run.active:
            raise slash.CommandError(f"{run.name} is already {run.state}")
        kill = self._open_request(run, user, now, latest)
        self.store.add_decision(
            run.id, "kill-request", user, now, None, self._detail(snap, kill.id)
        )
        est = snap.estimate
        kept_usd = (
            None if est is None else project_finish(est, now=now, spent_usd=snap.view.spent_usd)
        )
        how, after = kill_words(self.ports, run, snap.view)
        return Card(
            title=f"Kill {run.name}?",
            headline=f"Spent {fmt_usd(snap.view.spent_usd)} so far; "
            f"{fmt_usd(kept_usd.cost_usd if kept_usd else None)} if kept to the end.",
            fields=(
                CardField("Stops", how),
                CardField("Keeps billing", after),
                CardField("Instance", kill.via_reason),
            ),
            notes=(f"Type `/kill {run.name} confirm` to go ahead, or `/kill {run.name} cancel`.",),
            buttons=(
                Button("Confirm kill", action_id("confirm-kill", run.id), "danger"),
                Button("Cancel", action_id("cancel-kill", run.id)),
            ),
            kind="confirm",
        )

    def may_kill(self, user: str, can_kill: bool | None = None) -> bool:
        """Only ``PROBECAST_KILLERS`` may confirm a kill; the bot's own terminal may too.

        A platform that checked a role itself (Discord) passes its verdict as ``can_kill``.
        """
        if can_kill is not None:
            return can_kill
        bare = user.removeprefix("<@").removesuffix(">")  # chats write people as mentions
        return user == LOCAL_USER or bare in self.ports.settings.killer_ids

    async def confirm(self, snap: RunSnapshot, user: str, can_kill: bool | None = None) -> Card:
        run, now = snap.run, self.ports.clock()
        if not self.may_kill(user, can_kill):
            self.store.add_decision(run.id, "kill-refused", user, now, None, self._detail(snap))
            # Discord decides by a role; elsewhere the bot's list of user ids does.
            kill_who = "(those with the kill role)" if can_kill is not None else "(a list of users)"
            return render_text(
                f"Kill · {run.name}",
                f"only the people this bot allows to kill {kill_who} may confirm a kill; "
                "your attempt was recorded. Ask whoever runs the bot to add you.",
                "refused",
            )
        latest = self.latest(run)
        if latest is not None and (latest.pending or latest.state == "done"):
            return self._text(run, f"already {k.describe(latest)}; nothing more to do")
        if not run.active:
            raise slash.CommandError(f"{run.name} is already {run.state}")
        # A typed "/kill RUN confirm" is its own request: the words say it all.
        requested = self._open_request(run, user, now, latest)
        settings = self.ports.settings
        deadline_at = now + settings.kill_grace_s + KILL_REPORTER_DEADLINE_S
        try:
            confirmed = k.confirm(requested, user, now, deadline_at)
        except k.KillConflict as exc:
            return self._text(run, str(exc))
        if not self.store.save_kill(confirmed, requested.state):
            current = self.store.get_kill(requested.id)
            return self._text(run, k.describe(current) if current else "already decided")
        self.store.add_command(
            CommandRecord(
                id=confirmed.id,
                run_id=run.id,
                kind="kill",
                state="queued",
                grace_s=settings.kill_grace_s,
                created_at=now,
                requested_by=confirmed.requested_by,
                confirmed_by=user,
                detail=f"killed by {user}",
            )
        )
        self.store.add_decision(
            run.id, "kill-confirm", user, now, None, self._detail(snap, confirmed.id)
        )
        self.schedule(confirmed)
        how, after = kill_words(self.ports, run, snap.view)
        answer = render_text(
            f"Kill · {run.name}",
            # Who, on a line of its own: chats bold the first line, and all of it in
            # bold was a wall of text on a phone.
            f"Kill confirmed by {user}\n{how[0].upper()}{how[1:]}; then {after}. "
            f"Spent {fmt_usd(snap.view.spent_usd)} so far.",
            "kill",
        )
        await self._to_thread(run, answer)
        return answer

    def cancel(self, snap: RunSnapshot, user: str) -> Card:
        run, now = snap.run, self.ports.clock()
        latest = self.store.latest_kill(run.id)
        if latest is None or (latest.state == "requested" and latest.expired(now)):
            return self._text(run, "no kill is pending")
        try:
            cancelled = k.cancel(latest, user, now)
        except k.KillConflict as exc:
            return self._text(run, str(exc))
        if not self.store.save_kill(cancelled, latest.state):
            return self._text(run, "too late: the reporter already has the kill")
        for record in self.store.commands(run.id, ("queued",)):
            self.store.update_command(record.id, state="cancelled", finished_at=now)
        self.store.add_decision(run.id, "kill-cancel", user, now, None, self._detail(snap))
        return self._text(run, f"cancelled by {user}")

    # --- the reporter's side --------------------------------------------------------

    def deliver(self, run_id: str, now: float) -> tuple[list[Command], float | None]:
        """Commands for the reporter's response, and how often it should ask again."""
        out = []
        for record in self.store.commands(run_id, ("queued", "sent")):
            kill = self.store.get_kill(record.id)
            instance_action = None
            if kill is not None:
                try:
                    after = k.delivered(kill, now)
                except k.KillConflict:
                    continue  # cancelled in the meantime, or already past the process
                if after is not kill and not self.store.save_kill(after, kill.state):
                    continue
                if kill.via == "reporter" and kill.on_kill != "none":
                    instance_action = kill.on_kill
            if record.state == "queued":
                self.store.update_command(record.id, state="sent", sent_at=now)
            out.append(
                Command(
                    id=record.id,
                    kind="kill",
                    grace_s=record.grace_s,
                    reason=record.detail,
                    instance_action=instance_action,
                )
            )
        latest = self.store.latest_kill(run_id)
        # A request polls fast only when its asker may confirm it: anyone may ask, and
        # an ask that cannot be confirmed must not keep the reporter busy for minutes.
        polling = latest is not None and (
            latest.state in ("confirmed", "stopping-process")
            or (
                latest.state == "requested"
                and not latest.expired(now)
                and self.may_kill(latest.requested_by)
            )
        )
        return out, (k.KILL_POLL_S if polling else None)

    async def outcome(self, record: CommandRecord, step: str, state: str, detail: str) -> None:
        """The reporter's report: the process outcome, or its own instance stop."""
        run_id, now = record.run_id, self.ports.clock()
        kill = self.store.get_kill(record.id)
        if step == "process":
            if record.state in ("done", "failed"):
                return  # a retried report: already recorded
            self.store.update_command(record.id, state=state, finished_at=now, detail=detail)
            run = self.store.get_run(run_id)
            if run is not None:
                # In words: "reporter: done — …" named a component, not what happened.
                said = "Training stopped" if state == "done" else "Training NOT stopped"
                await self._to_thread(
                    run, render_text(f"Kill · {run.name}", f"{said}\n{detail}", "kill")
                )
            if kill is not None and kill.state in ("confirmed", "stopping-process"):
                await self._advance(kill, k.process_stopped(kill, f"{state}: {detail}", now))
            return
        if kill is None or kill.state != "stopping-instance" or kill.via != "reporter":
            return
        if state == "done":
            after = k.instance_done(kill, f"{detail} (reported by the instance)", now)
        else:
            after = k.instance_failed(kill, detail, now, retryable=False)
        await self._advance(kill, after)

    # --- jobs -----------------------------------------------------------------------

    async def deadline(self, run_id: str) -> None:
        """The reporter had its grace period and more: go on without it."""
        kill = self.store.latest_kill(run_id)
        now = self.ports.clock()
        if kill is None or kill.deadline_at is None or now < kill.deadline_at:
            return
        if kill.state in ("confirmed", "stopping-process"):
            for command in self.store.commands(run_id, ("queued", "sent")):
                self.store.update_command(
                    command.id,
                    state="failed",
                    finished_at=now,
                    detail="the reporter did not answer in time",
                )
            waited_s = now - (kill.confirmed_at or now)
            after = k.process_stopped(
                kill, f"the reporter did not answer within {fmt_duration(waited_s)}", now
            )
            if after.state == "stopping-instance" and after.via == "reporter":
                after = k.instance_failed(
                    after,
                    "the reporter is silent, so it cannot stop its own instance, and the bot "
                    "has no Vast API key",
                    now,
                    retryable=False,
                )
            await self._advance(kill, after)
        elif kill.state == "stopping-instance" and kill.via == "reporter":
            await self._advance(
                kill,
                k.instance_failed(
                    kill,
                    "the reporter did not confirm its instance stop",
                    now,
                    retryable=False,
                ),
            )

    async def instance_step(self, run_id: str) -> None:
        """Stop or destroy the instance through the Vast API, then read its state back."""
        kill = self.store.latest_kill(run_id)
        instances = self.ports.instances
        if kill is None or kill.state != "stopping-instance" or kill.via != "bot":
            return
        now = self.ports.clock()
        if kill.instance_next_at is not None and now < kill.instance_next_at:
            return  # a retry not due yet (a job that fired early, or a duplicate)
        run = self.store.get_run(run_id)
        instance_id = None if run is None else instance_id_of(run)
        if instances is None or instance_id is None:
            await self._advance(
                kill,
                k.instance_failed(kill, "no Vast API client or instance id", now, retryable=False),
            )
            return
        try:
            if not kill.instance_accepted:
                if kill.on_kill == "destroy":
                    await instances.destroy_instance(instance_id)
                else:
                    await instances.stop_instance(instance_id)
                accepted = k.instance_accepted(kill)
                if not self.store.save_kill(accepted, kill.state):
                    return
                self.store.add_decision(
                    run_id, f"instance-{kill.on_kill}", "probecast", now, None, {"kill": kill.id}
                )
                kill = accepted
            after = k.instance_done(kill, await self._read_back(instance_id, kill.on_kill), now)
        except VastNotFound:
            after = k.instance_done(kill, f"instance {instance_id} is already gone", now)
        except VastAuthError as exc:
            after = k.instance_failed(
                kill,
                f"Vast refused the bot's API key ({exc})",
                now,
                retryable=False,
            )
        except VastError as exc:
            after = k.instance_failed(
                kill,
                f"could not {kill.on_kill} instance {instance_id} ({exc})",
                now,
                retryable=True,
            )
        await self._advance(kill, after)

    async def _read_back(self, instance_id: str, on_kill: str) -> str:
        if on_kill == "destroy":
            return f"instance {instance_id} destroyed: billing has ended"
        instances = self.ports.instances
        assert instances is not None
        try:
            shown = await instances.show_instance(instance_id)
            status = shown.actual_status or shown.intended_status or "stopping"
        except VastNotFound:
            return f"instance {instance_id} is gone"
        except VastError as exc:
            status = f"stopping (Vast took the stop; reading it back failed: {exc})"
        return (
            f"instance {instance_id} {status}; a stopped instance still bills its disk: "
            "destroy it when you no longer need the data"
        )

    def resume(self) -> int:
        """After a restart: carry on with every kill still under way."""
        open_kills = [kill for kill in self.store.open_kills() if kill.pending]
        for kill in open_kills:
            self.schedule(kill)
        return len(open_kills)

    # --- destroy after a stop -------------------------------------------------------

    def ask_destroy(self, snap: RunSnapshot) -> Card:
        """The Destroy button asks first: destroying deletes the instance's data."""
        run = snap.run
        instance = instance_id_of(run) or "?"
        return Card(
            title=f"Destroy instance {instance}?",
            headline=f"Deletes {run.name}'s Vast instance {instance} and its disk: billing "
            "ends, and the data on it cannot be recovered.",
            buttons=(
                Button("Confirm destroy", action_id("confirm-destroy", run.id), "danger"),
                Button("Cancel", action_id("cancel-destroy", run.id)),
            ),
            kind="confirm",
        )

    async def destroy(self, snap: RunSnapshot, user: str, can_kill: bool | None) -> Card:
        """Confirmed from the final card: end the disk's billing too."""
        run, now = snap.run, self.ports.clock()
        if not self.may_kill(user, can_kill):
            self.store.add_decision(run.id, "destroy-refused", user, now, None, self._detail(snap))
            return render_text(f"Destroy · {run.name}", "you may not destroy instances", "refused")
        instance_id = instance_id_of(run)
        instances = self.ports.instances
        if instance_id is None or instances is None:
            return self._text(
                run, "this bot has no Vast API key: destroy it on Vast.ai → Instances"
            )
        if any(d["kind"] == "instance-destroy" for d in self.store.decisions(run.id)):
            return self._text(run, f"instance {instance_id} was already destroyed")
        try:
            await instances.destroy_instance(instance_id)
            text = f"instance {instance_id} destroyed by {user}: billing has ended"
        except VastNotFound:
            text = f"instance {instance_id} is already gone"
        except VastError as exc:
            return self._text(run, f"could not destroy it ({exc}); do it on Vast.ai → Instances")
        self.store.add_decision(run.id, "instance-destroy", user, now, None, self._detail(snap))
        card = render_text(f"Destroyed · {run.name}", text, "kill-report")
        await self._to_thread(run, card)
        return card

    # --- internals ------------------------------------------------------------------

    def latest(self, run: RunRecord) -> k.Kill | None:
        return current_kill(self.store, run)

    def _open_request(self, run: RunRecord, user: str, now: float, latest: k.Kill | None) -> k.Kill:
        """The run's open request, or a new one (an expired one is closed first)."""
        if latest is not None and latest.state == "requested":
            # Someone who may confirm takes over an ask from someone who may not: it is
            # theirs now (and the reporter polls fast for it).
            takes_over = self.may_kill(user) and not self.may_kill(latest.requested_by)
            if not latest.expired(now) and not takes_over:
                return latest
            why = "nobody (it expired)" if latest.expired(now) else f"{user}, who asked again"
            self.store.save_kill(k.cancel(latest, why, now), "requested")
        vast = registration_of(run).vast
        via, why = k.plan_instance(
            self.ports.settings.on_kill,
            None if vast is None else vast.container_id,
            bot_has_key=self.ports.instances is not None,
            reporter_has_key=vast is not None and vast.can_stop_self,
        )
        kill = k.request(
            uuid.uuid4().hex[:12], run.id, user, now, self.ports.settings.on_kill, via, why
        )
        self.store.add_kill(kill)
        return kill

    async def _advance(self, before: k.Kill, after: k.Kill) -> None:
        """Store the transition (once), then do what the new state asks for."""
        if (
            after.state == "stopping-instance"
            and after.via == "reporter"
            and before.state != after.state
        ):
            # The reporter now stops its own instance; give it a deadline to say so.
            after = replace(after, deadline_at=self.ports.clock() + KILL_REPORTER_DEADLINE_S)
        if not self.store.save_kill(after, before.state):
            return  # someone else moved it first
        if after.terminal:
            self.store.add_decision(
                after.run_id,
                f"kill-{after.state}",
                "probecast",
                after.finished_at or self.ports.clock(),
                None,
                {"kill": after.id, "result": after.instance_result, "failure": after.failure},
            )
            await self._report(after)
            return
        if self.ports.jobs is None and after.state == "stopping-instance":
            if after.via == "bot" and after.instance_attempts == 0:
                await self.instance_step(after.run_id)  # no scheduler: go on inline
            return
        self.schedule(after)

    def schedule(self, kill: k.Kill) -> None:
        jobs = self.ports.jobs
        if jobs is None:
            return
        if kill.state in ("confirmed", "stopping-process") or (
            kill.state == "stopping-instance" and kill.via == "reporter"
        ):
            jobs.at(kill.run_id, "kill-deadline", kill.deadline_at)
        elif kill.state == "stopping-instance":
            jobs.at(kill.run_id, "instance-stop", kill.instance_next_at)

    async def _report(self, kill: k.Kill) -> None:
        """The final card: who, when, spend, the estimate then, and what was avoided."""
        run = self.store.get_run(kill.run_id)
        if run is None:
            return
        snap = await self.snapshots.read_snapshot(run)
        confirmed = [
            d
            for d in self.store.decisions(run.id)
            if d["kind"] == "kill-confirm" and _json(d["detail"]).get("kill") == kill.id
        ]
        at_kill = _json(confirmed[-1]["detail"]) if confirmed else {}
        when = datetime.fromtimestamp(kill.confirmed_at or 0.0, UTC).strftime("%H:%M UTC")
        projected, spent_then = at_kill.get("projected_cost_usd"), at_kill.get("spent_usd")
        avoided = None if projected is None or spent_then is None else projected - spent_then
        done = kill.state == "done"
        instance = kill.instance_result if done else f"FAILED: {kill.failure}"
        buttons: tuple[Button, ...] = ()
        if done and kill.on_kill == "stop" and kill.via == "bot":
            buttons = (
                Button(
                    "Destroy instance",
                    action_id("destroy", run.id),
                    "danger",
                    confirm="Destroy the instance and its disk? Billing ends; the data is gone.",
                ),
            )
        card = Card(
            title=f"{'Killed' if done else 'Kill failed'} · {run.name}",
            # Who and when on the bold first line; what became of the machine below.
            headline=f"by {kill.confirmed_by} at {when}\n{instance}",
            fields=(
                CardField("Spent", fmt_usd(snap.view.spent_usd)),
                CardField(
                    "Avoided",
                    f"{fmt_usd(avoided)}: {fmt_usd(projected)} if kept to the end, as the "
                    f"confirmation said, less {fmt_usd(spent_then)} spent then",
                ),
                CardField(
                    "Estimate then",
                    f"step {at_kill.get('step') or 0:,}, "
                    f"{fmt_duration(at_kill.get('eta_remaining_s'))} to go",
                ),
                CardField("Process", kill.process_result or "—"),
                *(
                    (CardField("Disk", disk_line(disk_usd_per_day(run))),)
                    if done and kill.on_kill == "stop" and kill.via != "none"
                    else ()
                ),
                *(
                    # Nothing stopped the machine: say it still bills, and how much.
                    (CardField("Still billing", kill_words(self.ports, run, snap.view)[1]),)
                    if kill.via == "none" or kill.on_kill == "none"
                    else ()
                ),
            ),
            buttons=buttons,
            kind="kill-report",
        )
        await self._to_thread(run, card, post_if_no_thread=True)
        await self.refresh_status(run.id)
        self.disk.schedule(kill)

    async def refresh_status(self, run_id: str) -> None:
        """Edit the run's status message in place (its health line, ETA and buttons), if
        it has one: after an alert fires or ends, a kill, a keep or a table revision."""
        run = self.store.get_run(run_id)
        if run is not None and run.status_ref:
            snap = await self.snapshots.read_snapshot(run)
            await self.ports.chat.update(
                MessageRef.loads(run.status_ref), render_status(snap.estimate, snap.view)
            )

    async def _to_thread(
        self, run: RunRecord, card: Card, *, post_if_no_thread: bool = False
    ) -> None:
        if run.status_ref:
            await self.ports.chat.reply(MessageRef.loads(run.status_ref), card)
        elif post_if_no_thread:
            await self.ports.chat.post(card)

    def _detail(self, snap: RunSnapshot, kill_id: str | None = None) -> dict[str, Any]:
        detail = snap.decision_detail()
        return detail if kill_id is None else {**detail, "kill": kill_id}

    def _text(self, run: RunRecord, text: str) -> Card:
        # Not "kill": an answer that decides nothing must not mark its alert decided.
        return render_text(f"Kill · {run.name}", text, "kill-info")


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


__all__ = ["KILL_REPORTER_DEADLINE_S", "LOCAL_USER", "KillFlow"]
