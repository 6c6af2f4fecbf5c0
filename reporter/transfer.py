"""Transfer speed: time a bounded download (or upload) so the bot can price data movement.

Only the scheme, host and path of a URL are ever reported: presigned URLs carry their
credentials in the query string.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class TransferResult:
    endpoint: str
    direction: Literal["up", "down"]
    n_bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.n_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


class TransferError(Exception):
    """A timed transfer could not be made; its message names the endpoint, never a secret."""


def endpoint_label(url: str) -> str:
    """``https://host:port/path`` of a URL: no user, password or query, so safe to show."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"[:128]


def time_download(
    url: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout_s: float = 60.0,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> TransferResult:
    """Download at most ``max_bytes`` of ``url`` and time it (the body is thrown away)."""
    label = endpoint_label(url)
    received = 0
    try:
        with httpx.Client(transport=transport, timeout=timeout_s, follow_redirects=True) as http:
            started = clock()
            with http.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise TransferError(f"GET {label}: HTTP {response.status_code}")
                for chunk in response.iter_bytes(_CHUNK):
                    received += len(chunk)
                    if received >= max_bytes:
                        received = max_bytes
                        break
            seconds = clock() - started
    except httpx.HTTPError as exc:
        raise TransferError(f"GET {label}: {type(exc).__name__}") from None
    if received == 0:
        raise TransferError(f"GET {label}: empty body, nothing to time")
    return TransferResult(label, "down", received, max(seconds, 1e-6))


def time_upload(
    url: str,
    *,
    n_bytes: int = 16 * 1024 * 1024,
    timeout_s: float = 60.0,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> TransferResult:
    """PUT ``n_bytes`` of random data to ``url`` (a scratch object) and time it."""
    label = endpoint_label(url)

    def body() -> Iterator[bytes]:
        left = n_bytes
        while left > 0:
            size = min(_CHUNK, left)
            left -= size
            yield os.urandom(size)  # incompressible, so no proxy can flatter the figure

    try:
        with httpx.Client(transport=transport, timeout=timeout_s) as http:
            started = clock()
            response = http.put(url, content=body(), headers={"Content-Length": str(n_bytes)})
            seconds = clock() - started
    except httpx.HTTPError as exc:
        raise TransferError(f"PUT {label}: {type(exc).__name__}") from None
    if response.status_code >= 400:
        raise TransferError(f"PUT {label}: HTTP {response.status_code}")
    return TransferResult(label, "up", n_bytes, max(seconds, 1e-6))


__all__ = [
    "DEFAULT_MAX_BYTES",
    "TransferError",
    "TransferResult",
    "endpoint_label",
    "time_download",
    "time_upload",
]
