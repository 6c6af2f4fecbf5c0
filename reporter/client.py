"""Synchronous HTTP client for the bot's reporter API (wire schema v1).

The probe calls it from its background thread, so it is a plain ``httpx.Client``.
Exceptions::

    BotError                 anything that went wrong talking to the bot
     ├── BotUnavailable      network error, timeout, 5xx, 429 or a garbled 2xx: retry later
     └── BotRejected         any other non-2xx (4xx): the same body will be refused again

Secrets and tokens never appear in exception messages.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from reporter import __version__
from reporter.wire import (
    CommandOutcome,
    ErrorBody,
    EventBatch,
    EventsAck,
    Registered,
    RunRegistration,
    events_for,
    fields_unknown_to,
    registration_exclude,
)

_M = TypeVar("_M", bound=BaseModel)


class BotError(Exception):
    """The bot could not be reached or did not accept a request."""


class BotUnavailable(BotError):
    """Transient: the network, a timeout, a 5xx or 429. The same request may succeed later."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class BotRejected(BotError):
    """The bot refused the request (4xx); resending the same body will not help."""

    def __init__(self, status: int, code: str, detail: Any = None) -> None:
        super().__init__(f"HTTP {status} {code}" + (f": {detail}" if detail else ""))
        self.status = status
        self.code = code
        self.detail = detail


class BotClient:
    """One bot, one connection pool; ``transport=`` lets tests answer in-process."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 10,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout_s,
            headers={"User-Agent": f"probecast-reporter/{__version__}"},
        )

    def register(
        self, registration: RunRegistration, ingest_secret: str, *, older_bot: bool = False
    ) -> Registered:
        """Enrol the run (idempotent on name and instance); returns its id and token.
        ``older_bot``: leave out every field a bot before wire version 3 does not know."""
        exclude = registration_exclude(registration, older_bot=older_bot)
        return _parse(
            Registered, self._post("/v1/runs", ingest_secret, registration, exclude=exclude)
        )

    def post_events(
        self, run_id: str, run_token: str, batch: EventBatch, *, bot_schema_version: int
    ) -> EventsAck:
        """Send one batch, without the fields the bot's wire version does not know; the
        ack says which seqs are stored and carries any commands."""
        path = f"/v1/runs/{_seg(run_id)}/events"
        exclude = fields_unknown_to(bot_schema_version)
        sent = events_for(batch, bot_schema_version)
        return _parse(EventsAck, self._post(path, run_token, sent, exclude=exclude))

    def poll_commands(self, run_id: str, run_token: str) -> EventsAck:
        """Ask for commands with nothing to post (while a kill is pending)."""
        path = f"/v1/runs/{_seg(run_id)}/commands"
        try:
            response = self._http.get(path, headers={"Authorization": f"Bearer {run_token}"})
        except httpx.HTTPError as exc:
            raise BotUnavailable(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        return _parse(EventsAck, _checked(path, response))

    def report_outcome(
        self, run_id: str, run_token: str, command_id: str, outcome: CommandOutcome
    ) -> None:
        """Tell the bot what became of a command."""
        self._post(f"/v1/runs/{_seg(run_id)}/commands/{_seg(command_id)}", run_token, outcome)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BotClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _post(
        self,
        path: str,
        token: str,
        body: BaseModel,
        *,
        exclude: dict[str, Any] | set[str] | None = None,
    ) -> httpx.Response:
        try:
            response = self._http.post(
                path,
                # mode="json" is what turns a NaN loss into the string "nan".
                json=body.model_dump(mode="json", exclude=exclude),
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise BotUnavailable(f"POST {path}: {type(exc).__name__}: {exc}") from exc
        return _checked(path, response)


def _checked(path: str, response: httpx.Response) -> httpx.Response:
    status = response.status_code
    if status == 429 or status >= 500:
        raise BotUnavailable(
            f"{response.request.method} {path}: HTTP {status}",
            status=status,
            retry_after_s=_retry_after_s(response),
        )
    if not 200 <= status < 300:
        raise _rejection(response)
    return response


def _parse(model: type[_M], response: httpx.Response) -> _M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        # A proxy's page or a mismatched bot: nothing we sent was wrong, so retry later.
        raise BotUnavailable(
            f"{response.request.method} {response.request.url.path}: unexpected {model.__name__} "
            f"({exc.error_count()} errors)",
            status=response.status_code,
        ) from exc


def _seg(value: str) -> str:
    return quote(value, safe="")


def _rejection(response: httpx.Response) -> BotRejected:
    try:
        body = ErrorBody.model_validate_json(response.content)
        return BotRejected(response.status_code, body.error, body.detail)
    except ValidationError:
        text = response.text[:200].strip() or None
        return BotRejected(response.status_code, f"http_{response.status_code}", text)


def _retry_after_s(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date: fall back to our own backoff


__all__ = ["BotClient", "BotError", "BotRejected", "BotUnavailable"]
