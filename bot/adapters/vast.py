"""Async Vast.ai REST client: search offers, show, stop and destroy an instance.

Exceptions::

    VastError                  anything that went wrong talking to Vast.ai (also: 400, garbled 2xx)
     ├── VastAuthError         401/403, or 404 whose body says "auth_error": fix the key
     ├── VastRateLimited       429 (text or JSON body, no Retry-After) that outlasted our retries
     ├── VastNotFound          404 without "auth_error": no such instance (or not ours)
     ├── VastServerError       5xx (after retries for reads; at once for stop/destroy)
     └── VastUnavailable       network error or timeout

Reads (show, and search, a POST that only reads) are retried on 429, 5xx and network
errors with exponential backoff and jitter. Stop and destroy change state, so they are
retried only where Vast cannot have acted: a connection that never opened, or a 429.
The API key never appears in an exception message or a log line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

_SEARCH_LIMIT = 10  # Vast allows 10 searches a minute per key
_SEARCH_WINDOW_S = 60.0
# Connection never made: nothing reached Vast, so even stop/destroy may be resent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class VastError(Exception):
    """Vast.ai could not be reached or did not do what was asked."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class VastAuthError(VastError):
    """The API key is missing, wrong, or lacks the permission for this call."""


class VastRateLimited(VastError):
    """Vast answered 429 for longer than our retries waited."""


class VastNotFound(VastError):
    """No such instance for this key."""


class VastServerError(VastError):
    """Vast answered 5xx."""


class VastUnavailable(VastError):
    """Network error or timeout: Vast was not reached, or did not answer."""


Kind = Literal["on-demand", "interruptible"]


@dataclass(frozen=True, kw_only=True)
class OfferQuery:
    """What to search for; hashable, so it keys the search cache."""

    gpu_name: str | None = None  # Vast's spelling, e.g. "RTX 4090"; None for any GPU
    num_gpus: int = 1
    disk_gb: float  # sent as allocated_storage, so dph_total includes this disk
    kind: Kind = "on-demand"
    min_reliability: float | None = None
    limit: int = 100


class _VastModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @field_validator("verified", mode="before", check_fields=False)
    @classmethod
    def _verified(cls, value: Any) -> bool:
        # Vast says "verified", "unverified" or "deverified".
        return value is True or value == "verified"


class Offer(_VastModel):
    """One rentable machine slot from `POST /api/v0/bundles/`."""

    id: int
    machine_id: int | None = None
    gpu_name: str
    num_gpus: int
    gpu_ram_mib: float = Field(validation_alias=AliasChoices("gpu_ram_mib", "gpu_ram"))
    cpu_ram_mib: float = Field(validation_alias=AliasChoices("cpu_ram_mib", "cpu_ram"))
    cpu_cores_effective: float | None = None
    disk_space_gb: float = Field(validation_alias=AliasChoices("disk_space_gb", "disk_space"))
    # $/h for the GPUs plus the requested allocated_storage; bandwidth is extra.
    dph_total_usd: float = Field(validation_alias=AliasChoices("dph_total_usd", "dph_total"))
    storage_usd_per_hour: float | None = Field(
        None, validation_alias=AliasChoices("storage_usd_per_hour", "storage_total_cost")
    )
    storage_cost_usd_per_gb_month: float | None = Field(
        None, validation_alias=AliasChoices("storage_cost_usd_per_gb_month", "storage_cost")
    )
    inet_up_mbps: float | None = Field(
        None, validation_alias=AliasChoices("inet_up_mbps", "inet_up")
    )
    inet_down_mbps: float | None = Field(
        None, validation_alias=AliasChoices("inet_down_mbps", "inet_down")
    )
    inet_up_cost_usd_per_gb: float | None = Field(
        None, validation_alias=AliasChoices("inet_up_cost_usd_per_gb", "inet_up_cost")
    )
    inet_down_cost_usd_per_gb: float | None = Field(
        None, validation_alias=AliasChoices("inet_down_cost_usd_per_gb", "inet_down_cost")
    )
    reliability: float | None = Field(
        None, validation_alias=AliasChoices("reliability", "reliability2")
    )
    verified: bool = Field(False, validation_alias=AliasChoices("verified", "verification"))
    total_flops: float | None = None
    dlperf: float | None = None
    cuda_max_good: float | None = None
    geolocation: str | None = None
    # Lowest interruptible bid in $/h, when the host takes bids.
    min_bid_usd: float | None = Field(None, validation_alias=AliasChoices("min_bid_usd", "min_bid"))


class Instance(_VastModel):
    """One of our instances, from `GET /api/v0/instances/{id}/`."""

    id: int
    machine_id: int | None = None
    actual_status: str | None = None  # None while provisioning; loading, running, stopped, ...
    cur_state: str | None = None
    intended_status: str | None = None
    status_msg: str | None = None
    label: str | None = None
    gpu_name: str | None = None
    num_gpus: int | None = None
    gpu_ram_mib: float | None = Field(None, validation_alias=AliasChoices("gpu_ram_mib", "gpu_ram"))
    dph_total_usd: float | None = Field(
        None, validation_alias=AliasChoices("dph_total_usd", "dph_total")
    )
    interruptible: bool = Field(False, validation_alias=AliasChoices("interruptible", "is_bid"))
    start_date_unix_s: float | None = Field(
        None, validation_alias=AliasChoices("start_date_unix_s", "start_date")
    )
    disk_space_gb: float | None = Field(
        None, validation_alias=AliasChoices("disk_space_gb", "disk_space")
    )
    disk_usage_gb: float | None = Field(
        None, validation_alias=AliasChoices("disk_usage_gb", "disk_usage")
    )
    # The host's contract end (Unix seconds): an on-demand instance stops then.
    end_date_unix_s: float | None = Field(
        None, validation_alias=AliasChoices("end_date_unix_s", "end_date")
    )
    min_bid_usd: float | None = Field(None, validation_alias=AliasChoices("min_bid_usd", "min_bid"))
    # Still billed while the instance is stopped.
    storage_usd_per_hour: float | None = Field(
        None, validation_alias=AliasChoices("storage_usd_per_hour", "storage_total_cost")
    )
    storage_cost_usd_per_gb_month: float | None = Field(
        None, validation_alias=AliasChoices("storage_cost_usd_per_gb_month", "storage_cost")
    )
    inet_up_cost_usd_per_gb: float | None = Field(
        None, validation_alias=AliasChoices("inet_up_cost_usd_per_gb", "inet_up_cost")
    )
    inet_down_cost_usd_per_gb: float | None = Field(
        None, validation_alias=AliasChoices("inet_down_cost_usd_per_gb", "inet_down_cost")
    )
    reliability: float | None = Field(
        None, validation_alias=AliasChoices("reliability", "reliability2")
    )
    verified: bool = Field(False, validation_alias=AliasChoices("verified", "verification"))
    geolocation: str | None = None

    @field_validator("disk_usage_gb", mode="before")
    @classmethod
    def _unknown_usage(cls, value: Any) -> Any:
        # A loading instance reports -1: not measured yet.
        return None if isinstance(value, int | float) and value < 0 else value


def build_offer_filter(query: OfferQuery) -> dict[str, Any]:
    """The JSON body Vast's search expects for this query."""
    body: dict[str, Any] = {
        "rentable": {"eq": True},
        "num_gpus": {"eq": query.num_gpus},
        # Vast calls interruptible pricing "bid" (the CLI maps --interruptible to it).
        "type": "bid" if query.kind == "interruptible" else "on-demand",
        "allocated_storage": query.disk_gb,
        "order": [["min_bid" if query.kind == "interruptible" else "dph_total", "asc"]],
        "limit": query.limit,
    }
    if query.gpu_name is not None:
        body["gpu_name"] = {"eq": query.gpu_name}
    if query.min_reliability is not None:
        body["reliability"] = {"gte": query.min_reliability}
    return body


class VastMarket:
    """Vast.ai over one connection pool; `transport=` lets tests answer in-process."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://console.vast.ai",
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        cache_s: float = 120,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_tries: int = 4,
        backoff_s: float = 2.0,
        max_backoff_s: float = 30.0,
        jitter: Callable[[], float] = random.random,
        timeout_s: float = 30,
    ) -> None:
        self._key = api_key
        self._clock = clock
        self._sleep = sleep
        self._cache_s = cache_s
        self._max_tries = max(1, max_tries)
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._jitter = jitter
        self._cache: dict[OfferQuery, tuple[float, list[Offer]]] = {}
        self._search_sent_at: deque[float] = deque(maxlen=_SEARCH_LIMIT)
        self._search_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        )

    async def search_offers(self, query: OfferQuery) -> list[Offer]:
        """Offers matching the query, cheapest first; cached for `cache_s` per query."""
        async with self._search_lock:  # also lets concurrent identical check-ins share one call
            hit = self._cache.get(query)
            if hit is not None and self._clock() - hit[0] < self._cache_s:
                return list(hit[1])
            body = await self._call(
                "POST",
                "/api/v0/bundles/",
                json=build_offer_filter(query),
                retry_ambiguous=True,
                before_send=self._await_search_slot,
            )
            offers = _parse_offers(body)
            self._cache[query] = (self._clock(), offers)
            return list(offers)

    async def show_instance(self, instance_id: int | str, *, once: bool = False) -> Instance:
        """The instance's current state and price. ``once``: a single request, no retries
        (a watcher that reads again later paces itself, and backs off on its own)."""
        path = _instance_path(instance_id)
        body = await self._call("GET", path, retry_ambiguous=True, tries=1 if once else None)
        raw = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(raw, dict):
            # Vast answers {"instances": null} for an id that is not ours.
            raise VastNotFound(f"GET {path}: no instance in the answer", status=200)
        try:
            return Instance.model_validate(raw)
        except ValidationError as exc:
            raise VastError(
                f"GET {path}: unexpected instance ({exc.error_count()} errors)", status=200
            ) from exc

    async def stop_instance(self, instance_id: int | str) -> None:
        """Stop the container; its disk is kept and still billed."""
        path = _instance_path(instance_id)
        self._check_success("PUT", path, await self._call("PUT", path, json={"state": "stopped"}))

    async def destroy_instance(self, instance_id: int | str) -> None:
        """Destroy the instance and its data; irreversible."""
        path = _instance_path(instance_id)
        self._check_success("DELETE", path, await self._call("DELETE", path))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> VastMarket:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        retry_ambiguous: bool = False,
        before_send: Callable[[], Awaitable[None]] | None = None,
        tries: int | None = None,
    ) -> Any:
        max_tries = self._max_tries if tries is None else max(1, tries)
        for attempt in range(1, max_tries + 1):
            last = attempt == max_tries
            if before_send is not None:
                await before_send()
            try:
                response = await self._http.request(method, path, json=json)
            except httpx.HTTPError as exc:
                unavailable = VastUnavailable(
                    self._scrub(f"{method} {path}: {type(exc).__name__}: {exc}")
                )
                if last or not (retry_ambiguous or isinstance(exc, _NOT_SENT)):
                    raise unavailable from exc
                await self._backoff(attempt, unavailable)
                continue
            status = response.status_code
            if 200 <= status < 300:
                try:
                    return response.json()
                except ValueError as exc:
                    raise VastError(
                        f"{method} {path}: HTTP {status} body is not JSON", status=status
                    ) from exc
            error = self._error_for(method, path, response)
            # A 429 is refused before any work is done, so it is safe to resend even a destroy.
            retryable = status == 429 or (status >= 500 and retry_ambiguous)
            if last or not retryable:
                raise error
            await self._backoff(attempt, error)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _backoff(self, attempt: int, error: VastError) -> None:
        ceiling = min(self._max_backoff_s, self._backoff_s * 2 ** (attempt - 1))
        # Half fixed, half random: spreads retries without ever retrying at once after a 429.
        delay_s = ceiling / 2 + self._jitter() * ceiling / 2
        log.warning("vast: %s; retry %d in %.1fs", error, attempt, delay_s)
        await self._sleep(delay_s)

    async def _await_search_slot(self) -> None:
        """Hold the search back so that at most 10 go out in any 60 s."""
        sent = self._search_sent_at
        if len(sent) == sent.maxlen:
            wait_s = sent[0] + _SEARCH_WINDOW_S - self._clock()
            if wait_s > 0:
                log.info("vast: search rate limit, waiting %.1fs", wait_s)
                await self._sleep(wait_s)
        sent.append(self._clock())

    def _error_for(self, method: str, path: str, response: httpx.Response) -> VastError:
        status = response.status_code
        code, detail = _error_body(response)
        message = self._scrub(
            f"{method} {path}: HTTP {status}"
            + (f" {code}" if code else "")
            + (f": {detail}" if detail else "")
        )
        if status in (401, 403) or (status == 404 and code == "auth_error"):
            return VastAuthError(message, status=status)
        if status == 404:
            return VastNotFound(message, status=status)
        if status == 429:
            return VastRateLimited(message, status=status)
        if status >= 500:
            return VastServerError(message, status=status)
        return VastError(message, status=status)

    def _check_success(self, method: str, path: str, body: Any) -> None:
        if isinstance(body, dict) and body.get("success") is False:
            detail = body.get("msg") or body.get("error") or "success: false"
            raise VastError(self._scrub(f"{method} {path}: {str(detail)[:200]}"), status=200)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def _instance_path(instance_id: int | str) -> str:
    text = str(instance_id).strip()
    if not text.isdigit():
        raise ValueError("a Vast instance id is a positive integer")
    return f"/api/v0/instances/{int(text)}/"


def _parse_offers(body: Any) -> list[Offer]:
    raw = body.get("offers") if isinstance(body, dict) else None
    if not isinstance(raw, list):
        raise VastError("POST /api/v0/bundles/: no offers list in the answer", status=200)
    offers: list[Offer] = []
    skipped = 0
    for item in raw:
        try:
            offers.append(Offer.model_validate(item))
        except ValidationError:
            skipped += 1  # one odd host must not cost us the whole table
    if skipped:
        log.warning("vast: skipped %d of %d offers that did not parse", skipped, len(raw))
    return offers


def _error_body(response: httpx.Response) -> tuple[str | None, str | None]:
    """Vast's `error` code and `msg`; many 429s are plain text instead."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text.strip()[:200] or None
    if not isinstance(body, dict):
        return None, str(body)[:200]
    code = body.get("error")
    detail = body.get("msg") or body.get("message") or body.get("detail")
    return (str(code) if code else None), (str(detail)[:200] if detail else None)


__all__ = [
    "Instance",
    "Offer",
    "OfferQuery",
    "VastAuthError",
    "VastError",
    "VastMarket",
    "VastNotFound",
    "VastRateLimited",
    "VastServerError",
    "VastUnavailable",
    "build_offer_filter",
]
