"""The reporter's client, config and Probe against an in-process fake of the bot's API.

The fake implements the wire contract (auth, seq dedupe, contiguous ack, commands
delivered until their outcome arrives) behind ``httpx.MockTransport``; the probe's real
background thread talks to it. Waits poll with a timeout; nothing asserts timings.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from reporter.client import BotClient, BotRejected, BotUnavailable
from reporter.config import ConfigError, ProbeConfig, detect_host, detect_vast
from reporter.demo_train import Mlp, make_spirals, train
from reporter.probe import KILL_FLAG_DETAIL, Probe
from reporter.wire import (
    SCHEMA_VERSION,
    Command,
    CommandOutcome,
    ConfigFamily,
    EventBatch,
    GpuSample,
    HostSample,
    RunRegistration,
    StepEvent,
    TargetEvent,
    VastIdentity,
    events_for,
    registration_exclude,
)

SECRET = "s3cret"
RUN_ID = "run-1"
TOKEN = "tok-1"
T0 = 1_700_000_000.0


class FakeBot:
    """The bot's reporter API in miniature; records everything it receives."""

    def __init__(
        self,
        *,
        post_interval_s: float = 0.05,
        restarts: int = 0,
        stored_before: int = 0,
        schema_version: int | None = None,  # None: the field left out (read as version 1)
    ) -> None:
        self.lock = threading.Lock()
        self.post_interval_s = post_interval_s
        self.schema_version = schema_version
        self.restarts = restarts
        self.register_attempts = 0
        self.registrations: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []  # every batch received, failed ones too
        # seq -> event; an earlier reporter process may have stored some already.
        self.stored: dict[int, dict[str, Any]] = {
            seq: {"kind": "log", "seq": seq, "code": "warning", "message": "earlier process"}
            for seq in range(1, stored_before + 1)
        }
        self.commands: dict[str, dict[str, Any]] = {}  # delivered until an outcome arrives
        self.outcomes: list[tuple[str, dict[str, Any]]] = []
        self.fail_register = 0  # answer this many registrations with 503
        self.fail_events = 0  # answer this many event posts with 503
        self.fail_outcomes = 0  # answer this many outcome reports with 503
        self.deliveries = 0  # command deliveries, repeats included
        self.store_then_fail = False  # store the batch, then 503: a response lost in transit
        self.token_valid = True
        self.refuse_since_3 = False  # a bot before wire 3: 422 on fields it does not know
        self.gate = threading.Event()  # registration blocks until it is set
        self.gate.set()
        self.threads: set[str] = set()
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.threads.add(threading.current_thread().name)
        path = request.url.path
        auth = request.headers.get("Authorization", "")
        if path == "/v1/runs":
            return self._register(auth, request.content)
        if not (auth == f"Bearer {TOKEN}" and self.token_valid):
            return _error(401, "unauthorized", "unknown run or wrong run token")
        if path == f"/v1/runs/{RUN_ID}/events":
            return self._events(request.content)
        prefix = f"/v1/runs/{RUN_ID}/commands/"
        if path.startswith(prefix):
            CommandOutcome.model_validate_json(request.content)
            command_id = path.removeprefix(prefix)
            with self.lock:
                if self.fail_outcomes:
                    self.fail_outcomes -= 1
                    return httpx.Response(502, text="bad gateway")
                self.outcomes.append((command_id, json.loads(request.content)))
                self.commands.pop(command_id, None)
            return httpx.Response(200, json={})
        return _error(404, "not_found", path)

    def _register(self, auth: str, body: bytes) -> httpx.Response:
        with self.lock:
            self.register_attempts += 1
        self.gate.wait(10)
        if auth != f"Bearer {SECRET}":
            return _error(401, "unauthorized", "the ingest secret does not match")
        with self.lock:
            if self.fail_register:
                self.fail_register -= 1
                return httpx.Response(503, text="busy")
            raw = json.loads(body)
            newer = {"attempt_of", "launch"} & raw.keys()
            since_3 = {"final_eval", "save_every", "final_save", "steps_per_epoch"}
            newer |= since_3 & (raw.get("config") or {}).keys()
            if self.refuse_since_3 and newer:
                return _error(422, "invalid_body", sorted(newer))
            self.registrations.append(RunRegistration.model_validate_json(body).model_dump())
        return httpx.Response(
            200,
            json={
                "run_id": RUN_ID,
                "run_token": TOKEN,
                "restarts": self.restarts,
                "settings": {"post_interval_s": self.post_interval_s}
                | ({} if self.schema_version is None else {"schema_version": self.schema_version}),
            },
        )

    def _events(self, body: bytes) -> httpx.Response:
        EventBatch.model_validate_json(body)  # the real bot answers 422 here; we fail loud
        raw = json.loads(body)
        with self.lock:
            self.batches.append(raw)
            lose = self.fail_events > 0
            if lose and not self.store_then_fail:
                self.fail_events -= 1
                return httpx.Response(503, text="busy")
            for event in raw["events"]:
                self.stored.setdefault(event["seq"], event)
            if lose:
                self.fail_events -= 1
                return httpx.Response(503, text="busy")
            self.deliveries += len(self.commands)
            return httpx.Response(
                200, json={"acked_seq": self.acked_seq(), "commands": list(self.commands.values())}
            )

    def acked_seq(self) -> int:
        seq = 0
        while seq + 1 in self.stored:
            seq += 1
        return seq

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            ordered = [self.stored[seq] for seq in sorted(self.stored)]
        return [e for e in ordered if kind is None or e["kind"] == kind]

    def queue_kill(self, command_id: str = "cmd-1") -> None:
        with self.lock:
            self.commands[command_id] = {"id": command_id, "kind": "kill", "grace_s": 30}


def _error(status: int, code: str, detail: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": code, "detail": detail})


def probe_learning_its_target(bot: FakeBot, *, post_interval_s: float) -> Probe:
    """A probe as `probecast run` makes it: no declared length, the log's to tell."""
    return Probe(
        "demo-run",
        None,
        url="http://bot.test",
        ingest_secret=SECRET,
        transport=bot.transport,
        post_interval_s=post_interval_s,
        spool=":memory:",
        sample_interval_s=None,
        target_from_log=True,
        environ={},
    )


def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        time.sleep(0.01)


def acked(probe: Probe, seq: int) -> Callable[[], bool]:
    return lambda: probe.acked_seq >= seq


@pytest.fixture
def bot() -> FakeBot:
    return FakeBot()


@pytest.fixture
def make_probe(bot: FakeBot) -> Iterator[Callable[..., Probe]]:
    probes: list[Probe] = []

    def make(fake: FakeBot | None = None, **overrides: Any) -> Probe:
        kwargs: dict[str, Any] = {
            "url": "http://bot.test",
            "ingest_secret": SECRET,
            "transport": (fake or bot).transport,
            "post_interval_s": 0.05,
            "environ": {},
            "spool": ":memory:",
            "sample_interval_s": None,
        }
        kwargs.update(overrides)
        probe = Probe("demo-run", 1_000, 100, **kwargs)
        probes.append(probe)
        return probe

    yield make
    for probe in probes:
        probe.close(timeout_s=1)


# --- client ----------------------------------------------------------------------------


def registration() -> RunRegistration:
    return RunRegistration(name="demo-run", target_steps=1_000)


def test_client_registers_with_the_ingest_secret(bot: FakeBot) -> None:
    with BotClient("http://bot.test/", transport=bot.transport) as client:
        registered = client.register(registration(), SECRET)
    assert (registered.run_id, registered.run_token) == (RUN_ID, TOKEN)
    assert registered.settings.post_interval_s == 0.05
    assert bot.registrations[0]["name"] == "demo-run"


@pytest.mark.parametrize(("schema_version", "sent"), [(None, False), (1, False), (2, True)])
def test_fields_newer_than_the_bot_are_left_out(
    make_probe: Callable[..., Probe], schema_version: int | None, sent: bool
) -> None:
    """Every wire model forbids unknown fields: a bot older than the reporter would refuse
    the whole batch, steps and all, over memory-controller utilisation (wire version 2)."""
    older = FakeBot(schema_version=schema_version)
    probe = make_probe(older)
    probe.step(1)
    probe.sample(gpus=(GpuSample(index=0, util_pct=97, mem_util_pct=91),))
    assert probe.close(return_code=0)
    (gpu,) = older.events("sample")[0]["gpus"]
    assert ("mem_util_pct" in gpu) is sent
    assert gpu["util_pct"] == 97 and [e["step"] for e in older.events("step")] == [1]
    if sent:
        assert gpu["mem_util_pct"] == 91


@pytest.mark.parametrize(("schema_version", "sent"), [(2, False), (3, True)])
def test_a_watched_metric_is_registered_and_sent_with_its_steps(
    make_probe: Callable[..., Probe], schema_version: int, sent: bool
) -> None:
    """#22: the user names the metric to watch and which way is good; its values ride on
    steps (wire version 3), left out for an older bot so it still takes the steps."""
    bot = FakeBot(schema_version=schema_version)
    probe = make_probe(bot, watch_metric="reward", metric_goal="max")
    probe.step(1, loss=0.5, metric=0.25)
    probe.step(2, loss=0.4)
    assert probe.close(return_code=0)
    (reg,) = bot.registrations
    assert (reg["watch_metric"], reg["metric_goal"]) == ("reward", "max")
    first, second = bot.events("step")
    assert ("metric" in first) is sent and second.get("metric") is None
    if sent:
        assert first["metric"] == 0.25


def test_a_target_event_reaches_an_older_bot_as_a_warning_at_its_seq() -> None:
    batch = EventBatch(
        seq_from=1,
        sent_at=T0,
        events=[
            StepEvent(seq=1, t=T0, step=20),
            TargetEvent(seq=2, t=T0, target_steps=60),
            StepEvent(seq=3, t=T0 + 1, step=21),
        ],
    )
    assert events_for(batch, SCHEMA_VERSION) is batch
    older = events_for(batch, 3)
    assert [(e.seq, e.kind) for e in older.events] == [(1, "step"), (2, "log"), (3, "step")]
    assert "60 steps" in older.events[1].message  # type: ignore[union-attr]


def test_a_log_stated_total_is_revised_upward_only_and_never_a_declared_one(
    make_probe: Callable[..., Probe],
) -> None:
    bot = FakeBot(schema_version=SCHEMA_VERSION)
    learnt = probe_learning_its_target(bot, post_interval_s=0.05)
    learnt.set_target_steps(20)
    learnt.step(1)
    wait_for(lambda: learnt.acked_seq >= 1)  # registered with 20
    learnt.set_target_steps(10)  # a smaller total is another bar's
    learnt.set_target_steps(60)
    assert learnt.target_steps == 60 and learnt.close(return_code=0)
    assert bot.registrations[0]["target_steps"] == 20
    assert [e["target_steps"] for e in bot.events("target")] == [60]
    declared = make_probe(FakeBot())  # declared 1,000: the log does not move it
    declared.set_target_steps(5_000)
    assert declared.target_steps == 1_000


def test_unused_registration_fields_are_left_out_for_older_bots() -> None:
    unset = dict.fromkeys(("attempt_of", "launch", "watch_metric", "metric_goal", "kill_by"), True)
    assert registration_exclude(registration(), older_bot=False) == unset
    watched = RunRegistration(name="r", target_steps=10, watch_metric="reward")
    assert "watch_metric" not in registration_exclude(watched, older_bot=False)
    older = registration_exclude(watched, older_bot=True)
    assert older["watch_metric"] and older["config"]["final_eval"]


def test_a_metric_goal_must_be_min_or_max(make_probe: Callable[..., Probe]) -> None:
    with pytest.raises(ValueError, match="metric_goal"):
        make_probe(metric_goal="up")


def test_client_posts_nan_loss_as_the_string_nan(bot: FakeBot) -> None:
    batch = EventBatch(
        seq_from=1, sent_at=T0, events=[StepEvent(seq=1, t=T0, step=1, loss=math.nan)]
    )
    with BotClient("http://bot.test", transport=bot.transport) as client:
        ack = client.post_events(RUN_ID, TOKEN, batch, bot_schema_version=SCHEMA_VERSION)
    assert ack.acked_seq == 1
    assert bot.batches[0]["events"][0]["loss"] == "nan"


@pytest.mark.parametrize(
    ("response", "error", "status"),
    [
        (httpx.Response(503, text="busy"), BotUnavailable, 503),
        (httpx.Response(500), BotUnavailable, 500),
        (httpx.Response(429, headers={"Retry-After": "7"}), BotUnavailable, 429),
        (httpx.Response(200, text="<html>captive portal</html>"), BotUnavailable, 200),
        (_error(401, "unauthorized", "wrong secret"), BotRejected, 401),
        (_error(422, "invalid", [{"loc": ["name"]}]), BotRejected, 422),
        (httpx.Response(404, text="no such route"), BotRejected, 404),
    ],
)
def test_client_sorts_failures_into_retry_later_or_refused(
    response: httpx.Response, error: type[Exception], status: int
) -> None:
    transport = httpx.MockTransport(lambda request: response)
    with BotClient("http://bot.test", transport=transport) as client, pytest.raises(error) as info:
        client.register(registration(), SECRET)
    assert info.value.status == status  # type: ignore[attr-defined]
    assert SECRET not in str(info.value)
    if status == 429:
        assert isinstance(info.value, BotUnavailable) and info.value.retry_after_s == 7
    if status == 401:
        assert isinstance(info.value, BotRejected)
        assert (info.value.code, info.value.detail) == ("unauthorized", "wrong secret")
    if status == 404:
        assert isinstance(info.value, BotRejected) and info.value.code == "http_404"


def test_client_network_error_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        BotClient("http://bot.test", transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(BotUnavailable, match="ConnectError"),
    ):
        client.report_outcome(RUN_ID, TOKEN, "c1", CommandOutcome(state="done", t=T0))


# --- config ----------------------------------------------------------------------------

FULL_ENV = {
    "PROBECAST_URL": "http://127.0.0.1:8787",
    "PROBECAST_INGEST_SECRET": SECRET,
    "PROBECAST_RUN": "llama-ft.v2",
    "PROBECAST_TARGET_STEPS": "5000",
    "PROBECAST_EVAL_EVERY": "250",
    "PROBECAST_USD_PER_HOUR": "1.85",
    "PROBECAST_POST_INTERVAL_S": "2.5",
}


def test_config_reads_the_environment() -> None:
    config = ProbeConfig.from_env(FULL_ENV)
    assert config == ProbeConfig(
        name="llama-ft.v2",
        target_steps=5_000,
        url="http://127.0.0.1:8787",
        ingest_secret=SECRET,
        eval_every=250,
        usd_per_hour=1.85,
        post_interval_s=2.5,
    )
    assert SECRET not in repr(config)


def test_config_explicit_arguments_win_and_defaults_apply() -> None:
    env = {k: v for k, v in FULL_ENV.items() if k != "PROBECAST_POST_INTERVAL_S"}
    config = ProbeConfig.from_env(env, name="other", target_steps=7, url="https://bot.example")
    assert (config.name, config.target_steps, config.url) == ("other", 7, "https://bot.example")
    assert (config.eval_every, config.post_interval_s) == (250, 5.0)


@pytest.mark.parametrize(
    "missing",
    ["PROBECAST_URL", "PROBECAST_INGEST_SECRET", "PROBECAST_RUN", "PROBECAST_TARGET_STEPS"],
)
def test_config_names_the_missing_variable(missing: str) -> None:
    env = {k: v for k, v in FULL_ENV.items() if k != missing}
    with pytest.raises(ConfigError, match=missing) as info:
        ProbeConfig.from_env(env)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PROBECAST_TARGET_STEPS", "lots"),
        ("PROBECAST_TARGET_STEPS", "0"),
        ("PROBECAST_EVAL_EVERY", "1.5"),
        ("PROBECAST_USD_PER_HOUR", "cheap"),
        ("PROBECAST_RUN", "has spaces"),
        ("PROBECAST_URL", "bot:8787"),
        ("PROBECAST_POST_INTERVAL_S", "0"),
    ],
)
def test_config_refuses_malformed_values(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        ProbeConfig.from_env({**FULL_ENV, key: value})


def test_probe_construction_fails_fast_on_missing_config(bot: FakeBot) -> None:
    with pytest.raises(ConfigError, match="PROBECAST_URL"):
        Probe("demo-run", 10, environ={"PROBECAST_INGEST_SECRET": SECRET})


def test_detect_vast_and_host() -> None:
    assert detect_vast({}) is None
    assert detect_vast({"CONTAINER_ID": "123", "VAST_CONTAINERLABEL": "C.123"}) == VastIdentity(
        container_id="123", label="C.123"
    )
    host = detect_host()
    assert host.cpu_cores is not None and host.cpu_cores >= 1
    assert host.ram_mib is not None and host.ram_mib > 0
    assert host.disk_free_mib is not None and host.disk_free_mib >= 0


# --- probe -----------------------------------------------------------------------------


def test_a_bot_before_wire_3_gets_the_registration_without_its_fields(
    bot: FakeBot, make_probe: Callable[..., Probe]
) -> None:
    """Attempts (#25) and the eval/save cadence (#21) are wire 3; an older bot refuses
    them with a 422, so the reporter registers once more without them and runs as before."""
    bot.refuse_since_3 = True
    probe = make_probe(
        attempt_of="earlier-run",
        family=ConfigFamily(batch_size=8, final_eval=True, save_every=50),
    )
    probe.step(1)
    assert probe.close(return_code=0)
    assert bot.register_attempts == 2
    (registered,) = bot.registrations
    assert registered["attempt_of"] is None and registered["launch"] is None
    assert registered["config"]["batch_size"] == 8
    assert "final_eval" not in registered["config"]  # left out of the dump while unset
    assert [e["step"] for e in bot.events("step")] == [1]


def test_registration_is_retried_after_503(bot: FakeBot, make_probe: Callable[..., Probe]) -> None:
    bot.fail_register = 2
    probe = make_probe()
    wait_for(lambda: probe.run_id == RUN_ID)
    assert bot.register_attempts == 3
    registered = bot.registrations[0]
    assert (registered["name"], registered["target_steps"], registered["eval_every"]) == (
        "demo-run",
        1_000,
        100,
    )
    assert registered["host"]["cpu_cores"] >= 1 and registered["gpus"] == []


def test_step_does_no_io_on_the_training_thread(
    bot: FakeBot, make_probe: Callable[..., Probe]
) -> None:
    bot.gate.clear()  # hold registration, so nothing can be posted yet
    probe = make_probe()
    for n in range(1, 1_001):
        probe.step(n, loss=1.0 / n)
        with probe.eval():
            pass
    assert bot.batches == []
    bot.gate.set()
    wait_for(lambda: probe.acked_seq == 3_000)
    assert bot.threads == {"probecast-probe"}


def test_events_are_batched_with_contiguous_seqs(
    bot: FakeBot, make_probe: Callable[..., Probe]
) -> None:
    bot.gate.clear()
    probe = make_probe(clock=lambda: T0)
    for n in range(12_001):
        probe.step(n, loss=0.5, samples=n * 32, tokens=n * 4_096)
    bot.gate.set()
    assert probe.close(return_code=0)
    sizes = [len(b["events"]) for b in bot.batches]
    assert max(sizes) <= 5_000 and sum(sizes) == 12_002 and len(sizes) >= 3
    seq_from = 1
    for batch in bot.batches:
        assert batch["seq_from"] == seq_from
        assert [e["seq"] for e in batch["events"]] == list(
            range(seq_from, seq_from + len(batch["events"]))
        )
        seq_from += len(batch["events"])
    steps = bot.events("step")
    assert [e["step"] for e in steps] == list(range(12_001))
    assert steps[-1] == {
        "kind": "step", "seq": 12_001, "t": T0, "step": 12_000,
        "loss": 0.5, "samples": 384_000, "tokens": 49_152_000,
    }  # fmt: skip
    assert bot.events()[-1]["kind"] == "exit"


def test_nonfinite_losses_travel_as_strings(bot: FakeBot, make_probe: Callable[..., Probe]) -> None:
    probe = make_probe()
    for n, loss in enumerate([math.nan, math.inf, -math.inf, 1e31, 0.25]):
        probe.step(n, loss=loss)
    assert probe.close()
    assert [e["loss"] for e in bot.events("step")] == ["nan", "inf", "-inf", "inf", 0.25]


@pytest.mark.parametrize("store_then_fail", [False, True], ids=["lost-request", "lost-response"])
def test_failed_posts_are_resent_without_loss_or_duplicates(
    bot: FakeBot, make_probe: Callable[..., Probe], store_then_fail: bool
) -> None:
    bot.fail_events, bot.store_then_fail = 3, store_then_fail
    probe = make_probe()
    for n in range(1, 31):
        probe.step(n, loss=1.0)
    wait_for(lambda: bot.fail_events == 0)
    for n in range(31, 61):
        probe.step(n, loss=1.0)
    assert probe.close(return_code=0)
    assert [e["step"] for e in bot.events("step")] == list(range(1, 61))
    assert sorted(bot.stored) == list(range(1, 62))
    received = [e["seq"] for b in bot.batches for e in b["events"]]
    assert len(received) > len(set(received))  # some were really sent more than once
    assert probe.acked_seq == 61 and probe.dropped_events == 0


def test_close_wakes_the_thread_and_flushes_the_exit_event(
    make_probe: Callable[..., Probe],
) -> None:
    slow = FakeBot(post_interval_s=3_600)  # the bot asks for rare posts
    probe = make_probe(slow)
    wait_for(lambda: probe.run_id is not None)
    probe.step(1, loss=2.0)
    assert probe.close(return_code=3, timeout_s=5)
    assert [e["kind"] for e in slow.events()] == ["step", "exit"]
    assert slow.events()[-1]["return_code"] == 3


def test_context_manager_reports_a_crash_as_return_code_1(
    bot: FakeBot, make_probe: Callable[..., Probe]
) -> None:
    with pytest.raises(RuntimeError), make_probe() as probe:
        probe.step(1)
        raise RuntimeError("boom")
    last = bot.events()[-1]
    assert (last["kind"], last["return_code"]) == ("exit", 1)


def test_on_command_is_called_once_and_its_outcome_reported(
    bot: FakeBot, make_probe: Callable[..., Probe]
) -> None:
    seen: list[Command] = []

    def on_command(command: Command) -> tuple[str, str]:
        seen.append(command)
        return "done", "sent SIGTERM to the training process"

    # The first outcome reports fail, so the bot delivers the command again meanwhile.
    bot.fail_outcomes = 3
    bot.queue_kill("cmd-7")
    probe = make_probe(on_command=on_command)
    for n in range(1, 4):
        probe.step(n)
        wait_for(acked(probe, n))
    wait_for(lambda: bot.outcomes)
    assert probe.close()
    assert bot.deliveries >= 2 and [c.id for c in seen] == ["cmd-7"]
    command_id, outcome = bot.outcomes[0]
    assert (command_id, outcome["state"]) == ("cmd-7", "done")
    assert outcome["detail"] == "sent SIGTERM to the training process"
    assert not probe.kill_requested.is_set()  # the callback decided, not the default


def test_a_raising_on_command_is_reported_as_failed(
    bot: FakeBot, make_probe: Callable[..., Probe]
) -> None:
    def on_command(command: Command) -> None:
        raise OSError("no such process")

    bot.queue_kill()
    probe = make_probe(on_command=on_command)
    probe.step(1)
    wait_for(lambda: bot.outcomes)
    _, outcome = bot.outcomes[0]
    assert outcome["state"] == "failed" and "no such process" in outcome["detail"]
    probe.step(2)
    assert probe.close()  # reporting carries on


def test_default_kill_sets_the_flag(bot: FakeBot, make_probe: Callable[..., Probe]) -> None:
    bot.queue_kill()
    probe = make_probe()
    probe.step(1)
    assert probe.kill_requested.wait(10)
    wait_for(lambda: bot.outcomes)
    assert bot.outcomes[0][1]["state"] == "done"
    assert bot.outcomes[0][1]["detail"] == KILL_FLAG_DETAIL


def test_learning_the_target_late_keeps_the_posting_pace() -> None:
    # A wake-up (the target arrives from the log) must not leave the sender spinning.
    bot = FakeBot(post_interval_s=5)
    probe = probe_learning_its_target(bot, post_interval_s=5)
    try:
        probe.step(1)
        probe.set_target_steps(1_000)
        wait_for(lambda: probe.acked_seq >= 1)
        for n in range(2, 202):
            probe.step(n)
            time.sleep(0.002)
        assert len(bot.batches) <= 2  # one post per 5 s interval, not one per step
    finally:
        probe.close(timeout_s=5)
    assert [e["step"] for e in bot.events("step")] == list(range(1, 202))


def test_a_kill_reaches_a_probe_whose_training_is_stuck_in_a_step(
    bot: FakeBot, make_probe: Callable[..., Probe]
) -> None:
    # Commands only travel in replies to posts; the telemetry samples keep them coming
    # while the training loop itself reports nothing.
    probe = make_probe(sample_interval_s=0.1)
    probe.step(1)
    wait_for(lambda: probe.acked_seq >= 1)
    bot.queue_kill()  # the step never ends: no more step() calls from here on
    assert probe.kill_requested.wait(10)
    assert bot.events("sample")


def test_refused_registration_stops_trying_and_never_raises(
    bot: FakeBot, make_probe: Callable[..., Probe], capsys: pytest.CaptureFixture[str]
) -> None:
    probe = make_probe(ingest_secret="wrong")
    for n in range(1, 11):
        probe.step(n)
    wait_for(lambda: probe.dropped_events >= 10)  # the thread lives on, discarding
    for n in range(11, 21):
        probe.step(n)
    wait_for(lambda: probe.dropped_events >= 20)
    assert probe.close() is False
    assert bot.register_attempts == 1 and bot.batches == []
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "refused to register" in lines[0] and "401" in lines[0]


def test_revoked_run_token_stops_posting_without_raising(
    bot: FakeBot, make_probe: Callable[..., Probe]
) -> None:
    probe = make_probe()
    probe.step(1)
    wait_for(lambda: probe.acked_seq == 1)
    bot.token_valid = False
    probe.step(2)
    wait_for(lambda: probe.dropped_events >= 1)
    posts = len(bot.batches)
    probe.step(3)
    wait_for(lambda: probe.dropped_events >= 2)
    assert len(bot.batches) == posts
    assert probe.close() is False


def test_a_restarted_reporter_continues_the_bots_numbering(
    make_probe: Callable[..., Probe],
) -> None:
    resumed = FakeBot(restarts=1, stored_before=40)  # an earlier process stored seqs 1..40
    probe = make_probe(resumed)
    for n in range(1, 6):
        probe.step(n, loss=0.1)
    assert probe.close()
    assert sorted(resumed.stored) == list(range(1, 47))
    assert [e["step"] for e in resumed.events("step")] == [1, 2, 3, 4, 5]
    assert resumed.events()[40]["seq"] == 41 and resumed.events()[-1]["kind"] == "exit"


def test_backlog_is_bounded_dropping_samples_first(
    bot: FakeBot, make_probe: Callable[..., Probe]
) -> None:
    bot.gate.clear()
    probe = make_probe(max_pending=11)
    probe.sample(host=HostSample(cpu_pct=10))
    probe.sample(host=HostSample(cpu_pct=20))
    for n in range(1, 14):
        probe.step(n)
    bot.gate.set()
    wait_for(lambda: probe.acked_seq == 11)
    assert probe.dropped_events == 4  # both samples, then two of the oldest steps
    steps = [e["step"] for e in bot.events("step")]
    assert len(steps) == 11 and steps == sorted(steps) and steps[-3:] == [11, 12, 13]
    assert bot.events("sample") == []


# --- demo trainer ----------------------------------------------------------------------


def test_demo_model_genuinely_learns() -> None:
    result = train(200, eval_every=None, batch=32, say=lambda line: None)
    first, last = result.losses[:10], result.losses[-20:]
    assert sum(last) / len(last) < 0.7 * (sum(first) / len(first))
    held_out = make_spirals(400, seed=99)
    assert Mlp(32, seed=0).loss(held_out)[1] < 0.7  # untrained: near chance


def test_demo_trainer_reports_steps_and_evals(
    bot: FakeBot, make_probe: Callable[..., Probe]
) -> None:
    probe = make_probe()
    lines: list[str] = []
    result = train(60, eval_every=30, batch=16, eval_points=200, probe=probe, say=lines.append)
    assert probe.close()
    assert [e["step"] for e in bot.events("step")] == list(range(1, 61))
    phases = [(e["phase"], e["edge"]) for e in bot.events("phase")]
    assert phases == [("eval", "start"), ("eval", "end")] * 2
    assert [step for step, _, _ in result.evals] == [30, 60]
    assert [line.split(" loss")[0] for line in lines] == [
        "eval at step 30:",
        "step 50/60",
        "step 60/60",
        "eval at step 60:",
    ]


def test_demo_trainer_stops_on_kill(bot: FakeBot, make_probe: Callable[..., Probe]) -> None:
    bot.queue_kill()
    probe = make_probe()
    # Registered first: on a loaded machine the tiny steps could outrun the registration
    # and the first post that brings the kill; a large target leaves the kill the time.
    wait_for(lambda: probe.run_id == RUN_ID)
    lines: list[str] = []
    stop = probe.kill_requested
    target = 2_000_000
    result = train(target, eval_every=None, batch=4, probe=probe, stop=stop, say=lines.append)
    assert result.killed and len(result.losses) < target
    assert lines[-1] == f"stop requested: stopping at step {len(result.losses)}/{target}"
    assert probe.close(return_code=143)
    assert bot.events()[-1]["return_code"] == 143


def test_demo_main_reports_missing_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reporter.demo_train import main

    for key in FULL_ENV:
        monkeypatch.delenv(key, raising=False)
    assert main(["--steps", "5"]) == 2
    assert "PROBECAST_RUN" in capsys.readouterr().err
