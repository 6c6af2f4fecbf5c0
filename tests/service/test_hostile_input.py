"""Hostile input: the wire schema and the API under garbage, fuzz and abuse (issue 10).

Property-based tests (hypothesis) throw random and mutated JSON at the wire models and
at every reporter endpoint of the real app; a schema-driven fuzz (schemathesis) does the
same from the app's own OpenAPI document. Each test then checks what an attacker must
not achieve: a 5xx, a non-JSON error, a write through someone else's token, a change to
a legitimate run's events, or a damaged database (``PRAGMA integrity_check``).
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient

from bot.app import App, build, start_server
from bot.chat.console import ConsoleChat
from reporter.wire import (
    CommandOutcome,
    EventBatch,
    EventsAck,
    GpuInfo,
    GpuSample,
    HostInfo,
    HostSample,
    Registered,
    RunRegistration,
    StepEvent,
    VastIdentity,
)
from tests.conftest import SECRET, FakeClock, make_settings

T0 = 1_700_000_000.0
SMALL_BODY_BYTES = 2_048
LEGIT_EVENTS = 10
DEEP = 10_000
# Bounded so the file runs in well under a minute on two cores; the slow twins go further.
FAST = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings(FAST, max_examples=30, suppress_health_check=list(HealthCheck))
SLOW_FUZZ = settings(FUZZ, max_examples=600)


# --- strategies -------------------------------------------------------------------------

_WIRE_MODELS: list[type[BaseModel]] = [
    RunRegistration,
    GpuInfo,
    HostInfo,
    VastIdentity,
    EventBatch,
    StepEvent,
    GpuSample,
    HostSample,
    CommandOutcome,
    EventsAck,
    Registered,
]
_FIELD_NAMES = sorted(
    {name for model in _WIRE_MODELS for name in model.model_fields}
    | {"step", "phase", "sample", "transfer", "log", "exit", "kind", "seq"}
)
_HUGE_INTS = st.sampled_from(
    [10**400, -(10**400), 10**309, 2**53, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**20]
)
_ODD_STRINGS = st.sampled_from(
    [
        "nan",
        "NaN",
        "inf",
        "-inf",
        "+inf",
        "Infinity",
        "1e400",
        "1" * 400,
        "",
        " ",
        "\x00",
        "\ud800",  # a lone surrogate: valid in JSON text, not encodable as UTF-8
        "\u202e\u0301",
        "\U0001d518\U0001d52b\U0001d526",
        "a" * 10_000,
        "step",
        "kill",
        "' or 1=1 --",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | _HUGE_INTS
    | st.floats()  # NaN and infinities included; dumped as the NaN/Infinity tokens
    | st.text(max_size=40)
    | _ODD_STRINGS
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(st.sampled_from(_FIELD_NAMES) | st.text(max_size=8), kids, max_size=5)
    ),
    max_leaves=25,
)

_UNIX_T = st.floats(min_value=1.6e9, max_value=1.8e9)
_SHORT = st.text(max_size=128)


_EVENT_FIELDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "step": (
        {"step": st.integers(0, 10**12)},
        dict(
            loss=st.none()
            | st.floats(min_value=-1e30, max_value=1e30)
            | st.sampled_from(["nan", "inf", "-inf"]),
            samples=st.integers(0, 10**12),
            tokens=st.integers(0, 10**15),
        ),
    ),
    "phase": (
        {
            "phase": st.sampled_from(["train", "eval", "checkpoint", "setup"]),
            "edge": st.sampled_from(["start", "end"]),
        },
        {},
    ),
    "sample": (
        {},
        dict(
            gpus=st.lists(
                st.fixed_dictionaries(
                    {"index": st.integers(0, 63)},
                    optional={
                        "util_pct": st.floats(0, 100),
                        "vram_used_mib": st.floats(0, 1e9),
                        "temperature_c": st.floats(-50, 200),
                        "throttle_reasons": st.lists(_SHORT, max_size=3),
                    },
                ),
                max_size=4,
            ),
            host=st.fixed_dictionaries({}, optional={"cpu_pct": st.floats(0, 100)}),
            no_gpu_reason=_SHORT,
        ),
    ),
    "transfer": (
        {
            "endpoint": _SHORT,
            "direction": st.sampled_from(["up", "down"]),
            "bytes": st.integers(0, 10**15),
            "seconds": st.floats(min_value=1e-6, max_value=1e7),
        },
        {},
    ),
    "log": (
        {
            "code": st.sampled_from(["oom", "nonfinite_loss", "traceback", "nccl", "warning"]),
            "message": st.text(max_size=300),
        },
        {},
    ),
    "exit": ({"return_code": st.integers(-255, 255)}, {}),
}


@st.composite
def valid_batches(draw: st.DrawFn, seq_from: st.SearchStrategy[int] | None = None) -> Any:
    first = draw(st.integers(1, 10**6) if seq_from is None else seq_from)
    kinds = draw(st.lists(st.sampled_from(sorted(_EVENT_FIELDS)), min_size=1, max_size=6))
    events = []
    for offset, kind in enumerate(kinds):
        required, optional = _EVENT_FIELDS[kind]
        body = draw(st.fixed_dictionaries(required, optional=optional))
        events.append({"kind": kind, "seq": first + offset, "t": draw(_UNIX_T), **body})
    return {"seq_from": first, "sent_at": draw(_UNIX_T), "events": events}


VALID_REGISTRATIONS = st.fixed_dictionaries(
    {
        "name": st.from_regex(r"\Afuzz-[A-Za-z0-9._-]{0,40}\Z"),
        "target_steps": st.integers(1, 10**10),
    },
    optional={
        "eval_every": st.integers(1, 10**10),
        "usd_per_hour": st.floats(0, 1_000),
        "expected_step_s": st.floats(min_value=1e-6, max_value=86_400),
        "gpus": st.lists(
            st.fixed_dictionaries({"name": _SHORT}, optional={"count": st.integers(1, 64)}),
            max_size=3,
        ),
        "vast": st.fixed_dictionaries({}, optional={"container_id": _SHORT, "label": _SHORT}),
        "instance_started_at": _UNIX_T,
        "reporter_version": _SHORT,
    },
)
VALID_OUTCOMES = st.fixed_dictionaries(
    {"state": st.sampled_from(["done", "failed"]), "t": _UNIX_T},
    optional={"step": st.sampled_from(["process", "instance"]), "detail": st.text(max_size=200)},
)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*here, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*here, index))


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> Any:
    """A valid value with one to three nodes replaced, removed or given a stray key."""
    value = copy.deepcopy(draw(valid))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(value))))
        if not path:
            return draw(JSON_VALUES)
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON_VALUES | _HUGE_INTS | _ODD_STRINGS)
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.sampled_from(_FIELD_NAMES))] = draw(JSON_VALUES)
    return value


def _dump(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


_RAW_BODIES = st.sampled_from(
    [
        b"",
        b"null",
        b"[]",
        b"{}",
        b"\xff\xfe\x00{",
        b"\xef\xbb\xbf{}",
        b"[" * DEEP + b"]" * DEEP,
        b'{"a":' * DEEP + b"1" + b"}" * DEEP,
        b'{"seq_from":1,"sent_at":1.7e9,"events":' + b"[" * DEEP + b"]" * DEEP + b"}",
        b"1" * 5_000,  # beyond Python's int-from-string digit limit
        b'{"seq_from":' + b"9" * 5_000 + b"}",
        b"NaN",
        b"-Infinity",
        b'{"seq_from": 1e400, "sent_at": NaN, "events": Infinity}',
        b'"\\ud800"',
        b'{"name": "x", "name": "y", "target_steps": 1}',
        '{"name": "\u00e9"}'.encode("utf-16"),
        b"\x00" * 100,
    ]
)


def bodies(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Request bodies from valid through mutated to not JSON at all."""
    return st.one_of(
        valid.map(_dump),
        mutated(valid).map(_dump),
        JSON_VALUES.map(_dump),
        _RAW_BODIES,
        st.binary(max_size=64),
    )


# Weighted towards JSON so that enough requests get past parsing into the handlers.
CONTENT_TYPES = st.sampled_from(
    [
        None,
        *["application/json"] * 6,
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "application/merge-patch+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "garbage",
    ]
)
_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
_PATH_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=60) | (
    st.sampled_from(["..", "%00", "0" * 5_000, "nope", "' or 1=1 --"])
)


# --- the app under test -----------------------------------------------------------------


@dataclass
class Run:
    run_id: str
    token: str


class Harness:
    """The real app over httpx's ASGI transport, driven from plain (sync) hypothesis tests.

    One event loop serves every request, as under uvicorn. Two runs exist: ``legit``, whose
    events no fuzzed request may change, and ``target``, the fuzz's own run.
    """

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self.clock = FakeClock(T0 + 60)
        self.chat = ConsoleChat(io.StringIO())
        self.app = build(
            make_settings(tmp_path, killers="alice", **overrides), chat=self.chat, clock=self.clock
        )
        self.runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=self.app.api)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://bot")
        self.legit = self.register("legit-run")
        self.target = self.register("target-run")
        batch = steps(1, LEGIT_EVENTS)
        for run in (self.legit, self.target):
            r = self.post_events(run, _dump(batch))
            assert r.status_code == 200 and r.json()["acked_seq"] == LEGIT_EVENTS, r.text
        self.legit_rows = self.rows(self.legit)
        self.target_seqs = {seq for seq, *_ in self.rows(self.target)}

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.runner.run(self.client.request(method, url, **kw))

    def register(self, name: str) -> Run:
        r = self.request(
            "POST",
            "/v1/runs",
            json={"name": name, "target_steps": 1_000},
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        assert r.status_code == 200, r.text
        return Run(r.json()["run_id"], r.json()["run_token"])

    def post_events(
        self, run: Run, body: bytes, token: str | None = None, content_type: Any = "json"
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or run.token}"}
        if content_type == "json":
            headers["Content-Type"] = "application/json"
        elif content_type is not None:
            headers["Content-Type"] = content_type
        return self.request("POST", f"/v1/runs/{run.run_id}/events", content=body, headers=headers)

    def rows(self, run: Run) -> list[tuple[Any, ...]]:
        return list(
            self.app.store.db.execute(
                "select seq, kind, t, body from events where run_id = ? order by seq",
                [run.run_id],
            )
        )

    def assert_intact(self) -> None:
        """The database is sound and the legitimate run's events are as it sent them."""
        assert self.app.store.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert self.rows(self.legit) == self.legit_rows
        legit = self.app.store.get_run(self.legit.run_id)
        assert legit is not None and legit.acked_seq == LEGIT_EVENTS
        assert [seq for seq, *_ in self.legit_rows] == list(range(1, LEGIT_EVENTS + 1))

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.close()
        self.app.store.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def steps(seq_from: int, n: int, t0: float = T0) -> dict[str, Any]:
    events = [
        {"kind": "step", "seq": seq_from + i, "t": t0 + i, "step": seq_from + i, "loss": 2.0}
        for i in range(n)
    ]
    return {"seq_from": seq_from, "sent_at": t0 + n, "events": events}


def assert_json_4xx_or_ok(r: httpx.Response) -> None:
    """The API's contract: no 5xx, and every 4xx is JSON ``{"error": code, "detail": ...}``."""
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code >= 400:
        body = r.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str), r.text[:500]
        assert "detail" in body


def _validates(model: type[BaseModel], body: bytes) -> BaseModel | None:
    try:
        return model.model_validate(json.loads(body))
    except (ValueError, RecursionError):  # JSONDecodeError and ValidationError are ValueErrors
        return None


# --- the wire schema --------------------------------------------------------------------

_TOP_MODELS: list[type[BaseModel]] = [
    RunRegistration,
    EventBatch,
    CommandOutcome,
    EventsAck,
    Registered,
]


def _validate_and_round_trip(model: type[BaseModel], value: Any) -> bool:
    try:
        parsed = model.model_validate(value)
    except ValidationError:
        return False
    text = parsed.model_dump_json()
    again = model.model_validate_json(text)
    assert again.model_dump_json() == text
    return True


@FAST
@given(
    value=JSON_VALUES
    | mutated(valid_batches())
    | mutated(VALID_REGISTRATIONS)
    | mutated(VALID_OUTCOMES)
)
def test_wire_models_validate_or_raise_validation_error(value: Any) -> None:
    for model in _TOP_MODELS:
        # Anything but a ValidationError escaping here would be a 500 in the API.
        _validate_and_round_trip(model, value)


@FAST
@given(batch=valid_batches(), registration=VALID_REGISTRATIONS, outcome=VALID_OUTCOMES)
def test_valid_wire_values_validate_and_round_trip(
    batch: Any, registration: Any, outcome: Any
) -> None:
    assert _validate_and_round_trip(EventBatch, batch)
    assert _validate_and_round_trip(RunRegistration, registration)
    assert _validate_and_round_trip(CommandOutcome, outcome)
    parsed = EventBatch.model_validate(batch)
    assert [e.seq for e in parsed.events] == [e["seq"] for e in batch["events"]]


@pytest.mark.parametrize("loss", [10**400, 10**309, -(10**309)], ids=["1e400", "1e309", "-1e309"])
def test_a_huge_integer_loss_is_a_validation_error(loss: int) -> None:
    with pytest.raises(ValidationError):
        StepEvent.model_validate({"seq": 1, "t": T0, "step": 1, "loss": loss})


@pytest.mark.parametrize(
    ("with_token", "status", "error"),
    [(True, 422, "invalid_body"), (False, 401, "unauthorized")],
    ids=["own-token", "no-auth-unknown-run"],
)
async def test_a_huge_integer_loss_is_refused_cleanly(
    tmp_path: Path, with_token: bool, status: int, error: str
) -> None:
    app = build(make_settings(tmp_path), chat=ConsoleChat(io.StringIO()), clock=FakeClock())
    transport = httpx.ASGITransport(app=app.api, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as c:
        body = steps(1, 1)
        body["events"][0]["loss"] = 10**400
        if with_token:
            r = await _post(c, await _register(c), _dump(body))
        else:  # a stranger is refused before the body is read: never a 500
            r = await c.post("/v1/runs/anything/events", json=body)
    assert r.status_code == status and r.json()["error"] == error, r.text


# --- property-based tests of the endpoints ----------------------------------------------


def test_fuzzed_batches_never_5xx_and_only_accepted_ones_are_stored(harness: Harness) -> None:
    h = harness
    accepted = set(h.target_seqs)
    counts: dict[int, int] = {}

    @FAST
    @given(
        body=bodies(valid_batches(st.integers(1, 40) | st.integers(1, 2**53))),
        content_type=CONTENT_TYPES,
    )
    @example(_dump(steps(LEGIT_EVENTS + 1, 3)), "application/json")
    @example(_dump(steps(LEGIT_EVENTS + 1, 3, T0 - 1e9)), "application/json")
    def probe(body: bytes, content_type: str | None) -> None:
        r = h.post_events(h.target, body, content_type=content_type)
        counts[r.status_code] = counts.get(r.status_code, 0) + 1
        assert_json_4xx_or_ok(r)
        batch = _validates(EventBatch, body)
        if r.status_code == 200:
            assert isinstance(batch, EventBatch), body[:300]
            accepted.update(e.seq for e in batch.events)
        # Never through the legitimate run, whatever the body: the target's token is wrong.
        cross = h.post_events(h.legit, body, token=h.target.token, content_type=content_type)
        assert_json_4xx_or_ok(cross)
        assert cross.status_code != 200
        if batch is not None and _is_json(content_type):
            assert cross.status_code == 401, cross.text

    probe()
    # The fuzz did reach the handler, not only the validator.
    assert counts.get(200, 0) > 0 and counts.get(422, 0) > 0, counts
    stored = {seq for seq, *_ in h.rows(h.target)}
    assert stored == accepted
    watermark = 0
    while watermark + 1 in stored:
        watermark += 1
    target = h.app.store.get_run(h.target.run_id)
    assert target is not None and target.acked_seq == watermark
    h.assert_intact()


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI parses the body as JSON; with any other type it is a 422."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def test_fuzzed_registrations_never_5xx(harness: Harness) -> None:
    h = harness
    runs_before = len(h.app.store.list_runs())
    registered: set[str] = set()

    @FAST
    @given(
        body=VALID_REGISTRATIONS.map(_dump) | bodies(VALID_REGISTRATIONS),
        content_type=CONTENT_TYPES,
        auth=st.sampled_from([SECRET] * 4 + [None, "", "wrong", "legit-token"]) | _HEADER_TEXT,
    )
    @example(_dump({"name": "fuzz-0", "target_steps": 1}), "application/json", SECRET)
    def probe(body: bytes, content_type: str | None, auth: str | None) -> None:
        headers = {} if content_type is None else {"Content-Type": content_type}
        if auth == "legit-token":
            auth = h.legit.token  # a run token is not the ingest secret
        if auth is not None:
            headers["Authorization"] = f"Bearer {auth}"
        r = h.request("POST", "/v1/runs", content=body, headers=headers)
        assert_json_4xx_or_ok(r)
        if r.status_code == 200:
            assert auth == SECRET
            registration = _validates(RunRegistration, body)
            assert isinstance(registration, RunRegistration)
            assert registration.name not in ("legit-run", "target-run")
            registered.add(r.json()["run_id"])
        elif (
            auth != SECRET
            and _is_json(content_type)
            and _validates(RunRegistration, body) is not None
        ):
            assert r.status_code == 401

    probe()
    assert registered, "no fuzzed registration got through: the fuzz never reached the service"
    assert len(h.app.store.list_runs()) == runs_before + len(registered)
    h.assert_intact()


def test_fuzzed_command_requests_never_5xx(harness: Harness) -> None:
    h = harness
    command_id = _queue_kill(h)
    runs = {"legit": h.legit, "target": h.target}

    @FAST
    @given(
        run_key=st.sampled_from(["legit", "target", "target"]) | _PATH_TEXT,
        token_key=st.sampled_from(["legit", "target", "target", "secret", None]) | _HEADER_TEXT,
        command=st.sampled_from([command_id, command_id]) | _PATH_TEXT,
        body=bodies(VALID_OUTCOMES),
        content_type=CONTENT_TYPES,
        get=st.booleans(),
    )
    def probe(
        run_key: str,
        token_key: str | None,
        command: str,
        body: bytes,
        content_type: str | None,
        get: bool,
    ) -> None:
        run = runs.get(run_key)
        run_id = run.run_id if run else quote(run_key, safe="")
        token = {"secret": SECRET, **{k: r.token for k, r in runs.items()}}.get(
            str(token_key), token_key
        )
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        if get:
            r = h.request("GET", f"/v1/runs/{run_id}/commands", headers=headers)
        else:
            if content_type is not None:
                headers["Content-Type"] = content_type
            url = f"/v1/runs/{run_id}/commands/{quote(command, safe='')}"
            r = h.request("POST", url, content=body, headers=headers)
        assert_json_4xx_or_ok(r)
        if r.status_code == 200:
            # Only a run's own token reaches its commands, and only that run's commands.
            assert run is not None and token == run.token
            if not get:
                assert run is h.target and command == command_id
                assert isinstance(_validates(CommandOutcome, body), CommandOutcome)

    probe()
    (record,) = [
        c for c in h.app.store.commands(h.target.run_id, ["queued", "sent", "done", "failed"])
    ]
    assert record.id == command_id
    assert h.app.store.commands(h.legit.run_id, ["queued", "sent", "done", "failed"]) == []
    h.assert_intact()


def _queue_kill(h: Harness) -> str:
    """A real kill for the target run, confirmed and delivered: a command id to aim at."""
    h.runner.run(h.app.service.handle_command("/kill target-run", "alice"))
    h.runner.run(h.app.service.handle_command("/kill target-run confirm", "alice"))
    r = h.post_events(h.target, _dump(steps(LEGIT_EVENTS + 1, 1, T0 + 30)))
    assert r.status_code == 200, r.text
    (command,) = r.json()["commands"]
    h.target_seqs.add(LEGIT_EVENTS + 1)
    return str(command["id"])


# --- schema-driven fuzz (schemathesis, from the app's own OpenAPI document) --------------


def _schema(h: Harness) -> Any:
    r = h.request("GET", "/openapi.json")
    assert r.status_code == 200
    return schemathesis.openapi.from_dict(r.json())


def _check(case: Any, response: Any) -> None:
    case.validate_response(response, checks=[not_a_server_error])
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str), response.text


def _modes() -> list[schemathesis.GenerationMode]:
    return [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


def _fuzz_with_auth(h: Harness, fuzz: settings) -> dict[str, dict[int, int]]:
    schema = _schema(h)
    command_id = _queue_kill(h)
    target = {"run_id": h.target.run_id}
    as_target = {"Authorization": f"Bearer {h.target.token}"}
    strategies = []
    for mode in _modes():
        strategies += [
            schema["/v1/runs"]["POST"].as_strategy(
                mode, headers={"Authorization": f"Bearer {SECRET}"}
            ),
            schema["/v1/runs/{run_id}/events"]["POST"].as_strategy(
                mode, path_parameters=target, headers=as_target
            ),
            schema["/v1/runs/{run_id}/commands"]["GET"].as_strategy(
                mode, path_parameters=target, headers=as_target
            ),
            schema["/v1/runs/{run_id}/commands/{command_id}"]["POST"].as_strategy(
                mode, path_parameters=target, headers=as_target
            ),
            schema["/v1/runs/{run_id}/commands/{command_id}"]["POST"].as_strategy(
                mode, path_parameters={**target, "command_id": command_id}, headers=as_target
            ),
        ]
    return _fuzz(h, st.one_of(strategies), fuzz)


def _fuzz(h: Harness, strategy: Any, fuzz: settings) -> dict[str, dict[int, int]]:
    session = ASGIClient(cast(Any, h.app.api))  # not entered: no lifespan, like the other API tests
    seen: dict[str, dict[int, int]] = {}

    @fuzz
    @given(case=strategy)
    def probe(case: Any) -> None:
        response = case.call(session=session)
        key = f"{case.method.upper()} {case.path}"
        seen.setdefault(key, {})
        seen[key][response.status_code] = seen[key].get(response.status_code, 0) + 1
        _check(case, response)

    probe()
    h.assert_intact()
    return seen


def test_openapi_fuzz_with_a_registered_runs_credentials(harness: Harness) -> None:
    seen = _fuzz_with_auth(harness, FUZZ)
    # Authenticated: the fuzz got past auth into the handlers on some path.
    assert any(200 in codes for codes in seen.values()), seen


def test_openapi_fuzz_without_credentials(harness: Harness) -> None:
    schema = _schema(harness)
    seen = _fuzz(harness, st.one_of([schema.as_strategy(mode) for mode in _modes()]), FUZZ)
    assert any(key.startswith("POST /v1/runs/") for key in seen), seen
    for key, codes in seen.items():
        if " /v1/" in key:  # every reporter route needs a secret or a run token
            assert 200 not in codes, (key, codes)


@pytest.mark.slow
def test_openapi_fuzz_long_run_with_credentials(harness: Harness) -> None:
    _fuzz_with_auth(harness, SLOW_FUZZ)


@pytest.mark.slow
def test_openapi_fuzz_long_run_without_credentials(harness: Harness) -> None:
    schema = _schema(harness)
    _fuzz(harness, st.one_of([schema.as_strategy(mode) for mode in _modes()]), SLOW_FUZZ)


@pytest.mark.slow
def test_fuzzed_batches_long_run(harness: Harness) -> None:
    h = harness

    @settings(FAST, max_examples=3_000)
    @given(body=bodies(valid_batches(st.integers(1, 60))), content_type=CONTENT_TYPES)
    def probe(body: bytes, content_type: str | None) -> None:
        assert_json_4xx_or_ok(h.post_events(h.target, body, content_type=content_type))
        cross = h.post_events(h.legit, body, token=h.target.token, content_type=content_type)
        assert_json_4xx_or_ok(cross)
        assert cross.status_code != 200

    probe()
    h.assert_intact()


# --- explicit cases ---------------------------------------------------------------------


async def _serve(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    settings = make_settings(tmp_path, **overrides)
    app = build(settings, chat=ConsoleChat(io.StringIO()), clock=FakeClock(T0 + 60))
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as c:
        yield app, c
    app.store.close()


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    """The app with a 2 KiB body limit, so oversize tests stay small."""
    async for served in _serve(tmp_path, max_body_bytes=SMALL_BODY_BYTES):
        yield served


@pytest.fixture
async def roomy(tmp_path: Path) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    """The app with the default 8 MiB body limit."""
    async for served in _serve(tmp_path):
        yield served


async def _register(c: httpx.AsyncClient, name: str = "r1") -> Run:
    r = await c.post(
        "/v1/runs",
        json={"name": name, "target_steps": 1_000},
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert r.status_code == 200, r.text
    return Run(r.json()["run_id"], r.json()["run_token"])


async def _post(
    c: httpx.AsyncClient, run: Run, content: Any, token: str | None = None, **headers: str
) -> httpx.Response:
    return await c.post(
        f"/v1/runs/{run.run_id}/events",
        content=content,
        headers={
            "Authorization": f"Bearer {token or run.token}",
            "Content-Type": "application/json",
            **headers,
        },
    )


def _event_rows(app: App, run: Run | None = None) -> list[tuple[Any, ...]]:
    if run is None:
        return list(app.store.db.execute("select run_id, seq, body from events order by 1, 2"))
    return list(
        app.store.db.execute(
            "select seq, body from events where run_id = ? order by seq", [run.run_id]
        )
    )


def _assert_db_ok(app: App) -> None:
    assert app.store.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def _too_large(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text
    assert r.json() == {"error": "body_too_large", "detail": f"at most {SMALL_BODY_BYTES} bytes"}


async def _chunks(total: int, size: int = 512) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


async def test_oversized_bodies_are_refused_with_413(
    small: tuple[App, httpx.AsyncClient],
) -> None:
    app, c = small
    run = await _register(c)
    big = _dump(steps(1, 100))
    assert len(big) > SMALL_BODY_BYTES
    declared = await _post(c, run, big)
    assert declared.request.headers["content-length"] == str(len(big))
    _too_large(declared)
    # Chunked: no Content-Length at all, so only counting the stream can catch it.
    chunked = await _post(c, run, _chunks(3 * SMALL_BODY_BYTES))
    assert "content-length" not in chunked.request.headers
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    _too_large(chunked)
    # A Content-Length that lies low, and one that is not a number.
    _too_large(await _post(c, run, big, **{"Content-Length": "10"}))
    _too_large(await _post(c, run, b"{}", **{"Content-Length": "nine"}))
    # The same limit guards registration and outcomes.
    r = await c.post(
        "/v1/runs",
        content=_chunks(SMALL_BODY_BYTES + 1),
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
    )
    _too_large(r)
    assert _event_rows(app) == []
    assert len(app.store.list_runs()) == 1

    # At the limit, streamed in small chunks, a valid batch still goes through.
    ok = _dump(steps(1, 10))
    ok += b" " * (SMALL_BODY_BYTES - len(ok))

    async def stream() -> AsyncIterator[bytes]:
        for i in range(0, len(ok), 100):
            yield ok[i : i + 100]

    r = await _post(c, run, stream())
    assert r.status_code == 200 and r.json()["acked_seq"] == 10, r.text
    _assert_db_ok(app)


async def test_chunked_oversize_is_refused_over_a_real_socket(tmp_path: Path) -> None:
    app = build(
        make_settings(tmp_path, max_body_bytes=SMALL_BODY_BYTES), chat=ConsoleChat(io.StringIO())
    )
    server = await start_server(app)
    try:
        async with httpx.AsyncClient(base_url=server.url) as c:
            run = await _register(c)
            r = await _post(c, run, _chunks(4 * SMALL_BODY_BYTES))
            _too_large(r)
            r = await _post(c, run, _chunks(SMALL_BODY_BYTES, 256))  # at the limit: only not JSON
            assert r.status_code == 400 and r.json()["error"] == "bad_json", r.text
            assert (await c.get("/healthz")).json() == {"ok": True}
    finally:
        await server.stop()
    assert _event_rows(app) == []
    _assert_db_ok(app)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,
        b'{"a":' * DEEP + b"null" + b"}" * DEEP,
        b'{"seq_from":1,"sent_at":1.7e9,"events":[' + b"[" * DEEP + b"]" * DEEP + b"]}",
        b'{"seq_from":1,"sent_at":1.7e9,"events":[' + b"[" * 500 + b"]" * 500 + b"]}",
    ],
    ids=["array", "object", "inside-events", "500-deep"],
)
async def test_deeply_nested_json_is_a_json_4xx(
    roomy: tuple[App, httpx.AsyncClient], body: bytes
) -> None:
    app, c = roomy
    run = await _register(c)
    for url in (f"/v1/runs/{run.run_id}/events", "/v1/runs"):
        token = run.token if "events" in url else SECRET
        r = await c.post(
            url,
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert (r.status_code, r.json()["error"]) in ((400, "bad_json"), (422, "invalid_body"))
    assert _event_rows(app) == []
    _assert_db_ok(app)


@pytest.mark.parametrize(
    ("patch", "status"),
    [
        ({"seq_from": 10**400}, 422),
        ({"seq_from": 2**53 + 1}, 422),
        ({"seq_from": 2**63}, 422),
        ({"seq_from": -(2**63) - 1}, 422),
        ({"sent_at": 10**400}, 422),
        ({"sent_at": 1e308}, 422),
        ({"event": {"step": 10**400}}, 422),
        ({"event": {"t": 10**400}}, 422),
        ({"event": {"tokens": 10**16}}, 422),
        ({"event": {"loss": 1e31}}, 422),
        ({"event": {"loss": "1e400"}}, 422),
        ({"event": {"loss": "NaN"}}, 200),
        ({"event": {"loss": "+inf"}}, 200),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_huge_numbers(
    small: tuple[App, httpx.AsyncClient], patch: dict[str, Any], status: int
) -> None:
    app, c = small
    run = await _register(c)
    body = steps(1, 1)
    body.update({k: v for k, v in patch.items() if k != "event"})
    body["events"][0].update(patch.get("event", {}))
    r = await _post(c, run, _dump(body))
    assert r.status_code == status, r.text
    assert len(_event_rows(app)) == (1 if status == 200 else 0)
    _assert_db_ok(app)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"seq_from": 1, "sent_at": NaN, "events": []}',
        b'{"seq_from": Infinity, "sent_at": 1.7e9, "events": [{}]}',
        b'{"seq_from": 1, "sent_at": 1.7e9, "events": [{"kind": "step", "seq": 1, '
        b'"t": -Infinity, "step": 1}]}',
        b'{"seq_from": 1, "sent_at": 1.7e9, "events": [{"kind": "step", "seq": 1, '
        b'"t": 1.7e9, "step": NaN}]}',
        b'{"seq_from": ' + b"9" * 5_000 + b"}",
    ],
    ids=["nan-sent-at", "inf-seq", "inf-t", "nan-step", "5000-digit-int"],
)
async def test_nonfinite_and_overlong_number_tokens_are_a_json_4xx(
    roomy: tuple[App, httpx.AsyncClient], raw: bytes
) -> None:
    app, c = roomy
    run = await _register(c)
    r = await _post(c, run, raw)
    assert r.status_code in (400, 422), r.text
    assert isinstance(r.json()["error"], str)
    assert _event_rows(app) == []


@pytest.mark.parametrize(
    "body",
    [
        [],
        "a string",
        None,
        17,
        {"seq_from": "one", "sent_at": T0, "events": []},
        {"seq_from": 1, "sent_at": T0, "events": {"kind": "step"}},
        {"seq_from": 1, "sent_at": T0, "events": ["step"]},
        {"seq_from": 1, "sent_at": T0, "events": [[1, T0, 1]]},
        {"seq_from": 1.5, "sent_at": T0, "events": [{"kind": "step", "seq": 1.5, "t": T0}]},
        {"seq_from": [1], "sent_at": {"t": T0}, "events": [None]},
        {"seq_from": 1, "sent_at": T0, "events": [{"kind": ["step"], "seq": 1, "t": T0}]},
        {"seq_from": 1, "sent_at": T0, "events": [{"kind": "step", "seq": 1, "t": "now"}]},
        {"seq_from": 1, "sent_at": T0, "events": [{"kind": "log", "seq": 1, "t": T0}], "x": 1},
    ],
    ids=lambda v: json.dumps(v)[:30],
)
async def test_wrong_types_are_422(small: tuple[App, httpx.AsyncClient], body: Any) -> None:
    app, c = small
    run = await _register(c)
    r = await _post(c, run, _dump(body))
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_body" and r.json()["detail"]
    assert _event_rows(app) == []


async def test_wrong_content_types_and_non_json_bytes(
    small: tuple[App, httpx.AsyncClient],
) -> None:
    app, c = small
    run = await _register(c)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "", "garbage/x"):
        r = await _post(c, run, _dump(steps(1, 1)), **{"Content-Type": content_type})
        assert_json_4xx_or_ok(r)
    for raw in (b"\xff\xfe\xfd", b"\x00" * 64, b"seq_from=1&events=x", "\u00e9".encode("utf-16")):
        r = await _post(c, run, raw)
        assert r.status_code in (400, 422) and isinstance(r.json()["error"], str), r.text
    _assert_db_ok(app)


@pytest.mark.parametrize(
    "run_id",
    ["nope", "0" * 16, "%00", "x" * 1_000, "%E2%80%AE", "' or '1'='1", "..%2F..%2Fetc"],
)
async def test_unknown_run_ids_are_refused_and_store_nothing(
    small: tuple[App, httpx.AsyncClient], run_id: str
) -> None:
    app, c = small
    run = await _register(c)
    auth = {"Authorization": f"Bearer {run.token}"}
    for method, url, body in [
        ("POST", f"/v1/runs/{run_id}/events", steps(1, 3)),
        ("GET", f"/v1/runs/{run_id}/commands", None),
        ("POST", f"/v1/runs/{run_id}/commands/abc", {"state": "done", "t": T0}),
    ]:
        r = await c.request(method, url, json=body, headers=auth)
        if "%2F" in run_id:  # the decoded slash leaves no route to match
            assert r.status_code == 404 and r.json()["error"] == "not_found", r.text
            continue
        assert r.status_code == 401, r.text
        # the same answer as a wrong token: run ids are not revealed
        assert r.json() == {"error": "unauthorized", "detail": "unknown run or wrong run token"}
    assert _event_rows(app) == []
    _assert_db_ok(app)


async def test_another_runs_token_cannot_write_or_read(
    small: tuple[App, httpx.AsyncClient],
) -> None:
    app, c = small
    a, b = await _register(c, "a"), await _register(c, "b")
    assert (await _post(c, b, _dump(steps(1, 5)))).status_code == 200
    b_rows = _event_rows(app, b)
    for token in (a.token, SECRET, a.token + "x", a.token[:-1], b.token.upper(), " "):
        r = await _post(c, b, _dump(steps(6, 5)), token=token)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized", r.text
        r = await c.get(
            f"/v1/runs/{b.run_id}/commands", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 401
        r = await c.post(
            f"/v1/runs/{b.run_id}/commands/x",
            json={"state": "done", "t": T0},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 401
    # and a run token is not the ingest secret
    r = await c.post(
        "/v1/runs",
        json={"name": "b", "target_steps": 1},
        headers={"Authorization": f"Bearer {b.token}"},
    )
    assert r.status_code == 401
    assert _event_rows(app, b) == b_rows and _event_rows(app, a) == []
    stored = app.store.get_run(b.run_id)
    assert stored is not None and stored.acked_seq == 5 and stored.restarts == 0
    _assert_db_ok(app)


async def test_replayed_batches_are_stored_once_and_acked_the_same(
    small: tuple[App, httpx.AsyncClient],
) -> None:
    app, c = small
    run = await _register(c)
    first = _dump(steps(1, 10))
    acks = [(await _post(c, run, first)).json() for _ in range(3)]
    assert acks[0] == acks[1] == acks[2] == {"acked_seq": 10, "commands": [], "poll_s": None}
    rows = _event_rows(app, run)
    assert [seq for seq, _ in rows] == list(range(1, 11))
    # A replay with the same seqs but other content changes nothing that was stored.
    forged = steps(1, 10)
    for event in forged["events"]:
        event["loss"], event["step"] = 99.0, 10**6
    assert (await _post(c, run, _dump(forged))).json()["acked_seq"] == 10
    assert _event_rows(app, run) == rows
    # Replaying an old batch after newer ones acks the current watermark.
    assert (await _post(c, run, _dump(steps(11, 5)))).json()["acked_seq"] == 15
    assert (await _post(c, run, first)).json()["acked_seq"] == 15
    assert len(_event_rows(app, run)) == 15
    _assert_db_ok(app)


@pytest.mark.parametrize(
    "seqs",
    [[1, 2, 4], [2, 1], [1, 1], [3, 2, 1], [1, 2**53], [0, 1], [-1, 0]],
    ids=lambda s: ",".join(map(str, s))[:20],
)
async def test_non_contiguous_seqs_are_refused_whole(
    small: tuple[App, httpx.AsyncClient], seqs: list[int]
) -> None:
    app, c = small
    run = await _register(c)
    body = {
        "seq_from": seqs[0],
        "sent_at": T0,
        "events": [{"kind": "step", "seq": s, "t": T0, "step": i} for i, s in enumerate(seqs)],
    }
    r = await _post(c, run, _dump(body))
    assert r.status_code == 422 and r.json()["error"] == "invalid_body", r.text
    assert _event_rows(app) == []
    stored = app.store.get_run(run.run_id)
    assert stored is not None and stored.acked_seq == 0


async def test_a_batch_past_a_gap_is_stored_but_not_acked(
    small: tuple[App, httpx.AsyncClient],
) -> None:
    app, c = small
    run = await _register(c)
    assert (await _post(c, run, _dump(steps(1, 3)))).json()["acked_seq"] == 3
    # Contiguous within itself but leaving 4..2**53-1 missing: stored, the watermark holds.
    far = steps(2**53, 1)
    far["events"][0]["step"] = 4
    assert (await _post(c, run, _dump(far))).json()["acked_seq"] == 3
    assert [seq for seq, _ in _event_rows(app, run)] == [1, 2, 3, 2**53]
    assert (await _post(c, run, _dump(steps(4, 2)))).json()["acked_seq"] == 5
    _assert_db_ok(app)


def test_strategies_are_not_vacuous() -> None:
    """The mutated values must mostly be invalid and the valid ones valid, or the
    property tests above would prove little."""
    valid = invalid = 0

    @settings(FAST, max_examples=100)
    @given(value=mutated(valid_batches()))
    def count(value: Any) -> None:
        nonlocal valid, invalid
        if _validate_and_round_trip(EventBatch, value):
            valid += 1
        else:
            invalid += 1

    count()
    assert invalid > 2 * valid, (valid, invalid)
