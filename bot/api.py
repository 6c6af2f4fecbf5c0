"""FastAPI routes: each turns an HTTP request into one service call and back.

Every error is JSON ``{"error": code, "detail": ...}`` with a 4xx status; bad input never
produces a 5xx. Bodies larger than ``max_body_bytes`` are refused before they are read.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.adapters.store import StoreError
from bot.service import RunNotFound, Service, ServiceError, Unauthorized
from reporter.wire import CommandOutcome, EventBatch, EventsAck, Registered, RunRegistration


def _error(status: int, code: str, detail: Any = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing 'Authorization: Bearer <token>' header")
    return token.strip()


class Metrics:
    """Counters for ``GET /metrics`` in Prometheus text format."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def inc(self, name: str, by: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + by

    def render(self) -> str:
        lines = []
        for name, value in sorted(self.counts.items()):
            lines += [f"# TYPE probecast_{name} counter", f"probecast_{name} {value}"]
        return "\n".join(lines) + "\n"


class BodyLimit:
    """Refuse bodies over the limit while they stream in, declared length or chunked."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await self._refuse(send)
            return
        seen = 0
        started = refused = False

        async def counted_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:
                # Answer here: FastAPI's body parser turns any error while reading into
                # its own 400, which would hide the 413 from a chunked sender.
                if not started and not refused:
                    refused = True
                    await self._refuse(send)
                raise _TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's answer to a body it never got; the 413 went out instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started and not refused:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = _error(413, "body_too_large", f"at most {self.max_body_bytes} bytes")
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass


def create_api(
    service: Service, *, max_body_bytes: int, lifespan: Any = None, slack: Any = None
) -> FastAPI:
    """The reporter API; with ``slack`` (bolt's request handler), ``/slack/events`` too."""
    app = FastAPI(title="probecast", version="1", lifespan=lifespan)
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)

    def authenticate(request: Request) -> None:
        """Raise `Unauthorized` unless the request carries the credentials its route needs."""
        run_id = request.path_params.get("run_id")
        if run_id is None:
            service.check_ingest_secret(_bearer(request))
        else:
            service.authenticate(str(run_id), _bearer(request))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.inc("requests_rejected_total")
        # Authenticate before validating: a stranger learns nothing of the schema, and
        # gets 401 whatever the body. A valid body reaches the route, which authenticates.
        try:
            authenticate(request)
        except Unauthorized as exc_auth:
            return _error(401, exc_auth.code, str(exc_auth))
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "bad_json", "the body is not valid JSON")
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in errors[:20]]
        return _error(422, "invalid_body", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI answers a body it cannot parse at all (nested past the recursion limit,
        # a number past Python's digit limit) with a bare 400: it is still bad JSON.
        if exc.status_code == 400:
            try:
                authenticate(request)
            except Unauthorized as exc_auth:
                return _error(401, exc_auth.code, str(exc_auth))
        code = {400: "bad_json", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return _error(exc.status_code, code, exc.detail)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        metrics.inc("requests_rejected_total")
        status = {Unauthorized: 401, RunNotFound: 404}.get(type(exc), 409)
        return _error(status, exc.code, str(exc))

    # The last write the database refused, until a write succeeds again: a full disk
    # still answers the health check's tiny write, but not a batch of events.
    store_failure: list[str] = []

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        # Not the client's fault and nothing was half-written: tell it to retry later.
        metrics.inc("store_errors_total")
        store_failure[:] = [str(exc)]
        return _error(503, "store_unavailable", str(exc))

    @app.post("/v1/runs", response_model=Registered)
    async def register(registration: RunRegistration, request: Request) -> Registered:
        result = service.register(registration, _bearer(request))
        metrics.inc("runs_registered_total")
        return result

    @app.post("/v1/runs/{run_id}/events", response_model=EventsAck)
    async def events(run_id: str, batch: EventBatch, request: Request) -> EventsAck:
        ack = service.ingest(run_id, _bearer(request), batch)
        store_failure.clear()
        metrics.inc("events_received_total", len(batch.events))
        return ack

    @app.get("/v1/runs/{run_id}/commands", response_model=EventsAck)
    async def poll_commands(run_id: str, request: Request) -> EventsAck:
        return service.poll_commands(run_id, _bearer(request))

    @app.post("/v1/runs/{run_id}/commands/{command_id}")
    async def outcome(
        run_id: str, command_id: str, body: CommandOutcome, request: Request
    ) -> dict[str, bool]:
        await service.command_outcome(run_id, _bearer(request), command_id, body)
        return {"ok": True}

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        try:
            service.store.check()
        except StoreError as exc:
            return _error(503, "store_unavailable", str(exc))
        if store_failure:
            return _error(503, "store_unavailable", f"the last write failed: {store_failure[0]}")
        warning = getattr(service.chat, "warning", None)
        if warning:  # the chat is down or refusing us: the API itself still works
            return JSONResponse({"ok": True, "warnings": [warning]})
        return JSONResponse({"ok": True})

    if slack is not None:

        @app.post("/slack/events")
        async def slack_events(request: Request) -> Any:
            # Slash commands, buttons and events share one URL; bolt checks the signature.
            metrics.inc("slack_requests_total")
            return await slack.handle(request)

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


__all__ = ["create_api"]
