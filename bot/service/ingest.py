"""The reporter's side: enrolment, run tokens, and storing each batch of events once,
on the bot's clock, with the progress it shows (first step, restarts, exit).

Exceptions: `Unauthorized` for a wrong secret or token, `RunNotFound` for a command
that is not this run's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from typing import Any

from bot.adapters.store import RunRecord, StoredEvent
from bot.core.instance import InstanceFacts, InstanceTrack, track_read
from bot.service.jobs import ScheduledJobs
from bot.service.kill_flow import KillFlow
from bot.service.ports import Ports, RunNotFound, Unauthorized
from bot.service.records import instance_track
from reporter.wire import (
    SCHEMA_VERSION,
    CommandOutcome,
    EventBatch,
    EventsAck,
    Registered,
    RunRegistration,
    RunSettings,
)

# A reporter whose clock is behind ours by more than this is corrected (the hung rule
# measures time since the last step on our clock); less is latency and batching.
MAX_TRUSTED_LAG_S = 60.0


def hash_token(token: str) -> str:
    # Run tokens are 256-bit random, so a fast hash is enough to keep them out of the file.
    return hashlib.sha256(token.encode()).hexdigest()


def _tokens_match(presented: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_token(presented), expected_hash)


class Ingest:
    def __init__(self, ports: Ports, scheduled: ScheduledJobs, kills: KillFlow) -> None:
        self.ports, self.scheduled, self.kills = ports, scheduled, kills
        self._behind_s: dict[str, float] = {}  # run id -> the offset of a clock far behind

    def register(self, registration: RunRegistration, presented_secret: str) -> Registered:
        self.check_ingest_secret(presented_secret)
        now = self.ports.clock()
        instance_id = (registration.vast.container_id if registration.vast else None) or ""
        token = secrets.token_urlsafe(32)
        store = self.ports.store
        existing = store.find_run(registration.name, instance_id)
        if existing is not None and existing.active:
            # A restarted reporter continues the same run; the restart is setup/debug time.
            store.update_run(
                existing.id,
                token_hash=hash_token(token),
                restarts=existing.restarts + 1,
                restart_at=now,
                state="registered",
                registration=registration.model_dump_json(),
                target_steps=registration.target_steps,
                eval_every=registration.eval_every,
                usd_per_hour=registration.usd_per_hour,
            )
            run_id, restarts, acked = existing.id, existing.restarts + 1, existing.acked_seq
        else:
            # A new run; after an earlier one of the job has ended, its next attempt.
            previous = (
                registration.attempt_of and store.latest_run_named(registration.attempt_of)
            ) or store.latest_run_named(registration.name)
            started = registration.instance_started_at
            started_at = min(started, now) if started else now
            if previous is not None and previous.instance_id == instance_id and instance_id:
                # Same instance: the time since the last attempt ended is this one's setup.
                started_at = max(started_at, min(previous.last_event_at or now, now))
            run = RunRecord(
                id=uuid.uuid4().hex[:16],
                name=registration.name,
                instance_id=instance_id,
                token_hash=hash_token(token),
                registered_at=now,
                started_at=started_at,
                registration=registration.model_dump_json(),
                target_steps=registration.target_steps,
                eval_every=registration.eval_every,
                usd_per_hour=registration.usd_per_hour,
                attempt_of=None if previous is None else previous.id,
                attempt=1 if previous is None else previous.attempt + 1,
            )
            store.create_run(run)
            run_id, restarts, acked = run.id, 0, 0
            if self.ports.jobs is not None:
                self.scheduled.schedule_run(run_id)
        return Registered(
            run_id=run_id,
            run_token=token,
            restarts=restarts,
            acked_seq=acked,
            settings=RunSettings(
                post_interval_s=self.ports.settings.post_interval_s, schema_version=SCHEMA_VERSION
            ),
        )

    def check_ingest_secret(self, presented_secret: str) -> None:
        expected = self.ports.settings.ingest_secret
        if expected is None or not hmac.compare_digest(
            presented_secret.encode(), expected.get_secret_value().encode()
        ):
            raise Unauthorized("the ingest secret does not match PROBECAST_INGEST_SECRET")

    def authenticate(self, run_id: str, presented_token: str) -> RunRecord:
        run = self.ports.store.get_run(run_id)
        if run is None or not _tokens_match(presented_token, run.token_hash):
            # The same answer for an unknown run and a wrong token reveals no run ids.
            raise Unauthorized("unknown run or wrong run token")
        return run

    def ingest(self, run_id: str, presented_token: str, batch: EventBatch) -> EventsAck:
        run = self.authenticate(run_id, presented_token)
        received_at = self.ports.clock()
        # Events go onto our clock: the reporter stamped the batch when it sent it, so the
        # gap is its clock's offset (plus latency). Shifting the whole batch keeps step
        # spacing intact. A clock ahead would put events in the future; one far behind
        # would make a healthy run look hung. A small lag is latency, left alone.
        shift_s = self._clock_shift(run_id, batch.sent_at - received_at)
        known = self.ports.store.known_seqs(run_id, batch.seq_from, batch.events[-1].seq)
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
        with self.ports.store.transaction():  # one commit per post, not one per write
            self.ports.store.add_events(run_id, stored)
            acked = self.ports.store.contiguous_seq(run_id, run.acked_seq)
            changes: dict[str, Any] = {"acked_seq": acked, "last_event_at": received_at}
            if stored:
                changes.update(self._progress_changes(run, stored, received_at))
            self.ports.store.update_run(run_id, **changes)
        if stored:
            self.scheduled.after_ingest(run, changes)
        commands, poll_s = self.kills.deliver(run_id, received_at)
        return EventsAck(acked_seq=acked, commands=commands, poll_s=poll_s)

    def poll_commands(self, run_id: str, presented_token: str) -> EventsAck:
        """A reporter with nothing to post asks for commands (while a kill is pending)."""
        run = self.authenticate(run_id, presented_token)
        commands, poll_s = self.kills.deliver(run_id, self.ports.clock())
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
            # The first exit decides how the run ended; a second (a reporter's retry after
            # a restart, an exit hook after a callback's own) changes nothing.
            ended = run.return_code is not None or "return_code" in changes
            if event.kind == "exit" and not ended:
                code = json.loads(event.body)["return_code"]
                changes["return_code"] = code
                changes["state"] = (
                    "killed" if self._kill_sent(run) else ("finished" if code == 0 else "failed")
                )
        targets = [e for e in events if e.kind == "target"]
        if targets:
            # The reporter learnt the run's length better (a bar that started over counts
            # an epoch): the ETA, the table and the checks go by the revised one from now.
            changes["target_steps"] = json.loads(targets[-1].body)["target_steps"]
        shown = [e for e in events if e.kind == "instance"]
        if shown:
            changes["instance_track"] = self._instance_seen(run, shown[-1]).to_json()
        return changes

    def _instance_seen(self, run: RunRecord, event: StoredEvent) -> InstanceTrack:
        """The instance as its reporter read it with its own key (a bot with no key)."""
        body = json.loads(event.body)
        facts = InstanceFacts(
            read_at_s=event.t,
            actual_status=body.get("actual_status"),
            intended_status=body.get("intended_status"),
            status_msg=body.get("status_msg"),
            interruptible=bool(body.get("interruptible")),
            end_date_s=body.get("end_date"),
            dph_total_usd=body.get("dph_total_usd"),
            min_bid_usd=body.get("min_bid_usd"),
            storage_usd_per_hour=body.get("storage_usd_per_hour"),
        )
        track = instance_track(run) or InstanceTrack()
        return track_read(track, facts, event.t, self.ports.settings.check_interval_s)

    async def command_outcome(
        self, run_id: str, presented_token: str, command_id: str, outcome: CommandOutcome
    ) -> None:
        self.authenticate(run_id, presented_token)
        record = self.ports.store.get_command(command_id)
        if record is None or record.run_id != run_id:
            raise RunNotFound(f"no command {command_id} for this run")
        await self.kills.outcome(record, outcome.step, outcome.state, outcome.detail)

    def _kill_sent(self, run: RunRecord) -> bool:
        kill = self.kills.latest(run)
        return kill is not None and kill.process_started_at is not None


__all__ = ["MAX_TRUSTED_LAG_S", "Ingest", "hash_token"]
