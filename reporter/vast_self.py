"""Read, stop or destroy this Vast instance with its own ``CONTAINER_API_KEY``.

Used after a kill when the bot holds no ``VAST_API_KEY``: Vast gives every container a
key scoped to that one instance, so the reporter can end its own billing. Stop
(``PUT {"state": "stopped"}``) and destroy (``DELETE``) are idempotent, so a 429, a 5xx
or a timeout is retried with backoff; 404 means the instance is already gone. The key
never appears in what this returns.

This is the reporter's side, so it is synchronous httpx (no bot extras on the GPU box).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import httpx

DEFAULT_VAST_URL = "https://console.vast.ai"
RETRY_DELAYS_S = (2.0, 4.0, 8.0)

Outcome = tuple[Literal["done", "failed"], str]


def end_own_instance(
    instance_id: str,
    api_key: str,
    action: Literal["stop", "destroy"],
    *,
    base_url: str = DEFAULT_VAST_URL,
    timeout_s: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Ask Vast to stop or destroy ``instance_id``; says what happened, in words."""
    if not instance_id.isdigit():
        return "failed", f"{instance_id[:40]!r} is not a Vast instance id"
    url = f"{base_url.rstrip('/')}/api/v0/instances/{int(instance_id)}/"
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    last = ""
    with httpx.Client(timeout=timeout_s, headers=headers) as client:
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            if attempt:
                sleep(RETRY_DELAYS_S[attempt - 1])
            try:
                if action == "destroy":
                    response = client.delete(url)
                else:
                    response = client.put(url, json={"state": "stopped"})
            except httpx.HTTPError as exc:
                last = f"Vast did not answer ({type(exc).__name__})"
                continue
            verdict = _verdict(response, instance_id, action)
            if verdict is not None:
                return verdict
            last = f"Vast answered HTTP {response.status_code}"
    return "failed", f"{last} after {len(RETRY_DELAYS_S) + 1} tries"


def read_own_instance(
    instance_id: str,
    api_key: str,
    *,
    base_url: str = DEFAULT_VAST_URL,
    timeout_s: float = 10.0,
) -> dict[str, Any] | None:
    """This instance's status, contract end and prices, or None when Vast did not say.

    One request, no retries: the caller reads again later (and backs off); a failed read
    is no reason to disturb the training job.
    """
    if not instance_id.isdigit():
        return None
    url = f"{base_url.rstrip('/')}/api/v0/instances/{int(instance_id)}/"
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    try:
        with httpx.Client(timeout=timeout_s, headers=headers) as client:
            response = client.get(url)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    raw = _json(response).get("instances")
    if not isinstance(raw, dict):
        return None
    return {
        "actual_status": _text(raw.get("actual_status"), 128),
        "intended_status": _text(raw.get("intended_status"), 128),
        "status_msg": _text(raw.get("status_msg"), 2048),
        "interruptible": bool(raw.get("is_bid")),
        "end_date": _number(raw.get("end_date")),
        "dph_total_usd": _number(raw.get("dph_total")),
        "min_bid_usd": _number(raw.get("min_bid")),
        "storage_usd_per_hour": _number(raw.get("storage_total_cost")),
    }


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _verdict(response: httpx.Response, instance_id: str, action: str) -> Outcome | None:
    """The outcome of one answer, or None when it is worth asking again."""
    status = response.status_code
    if status == 429 or status >= 500:
        return None
    body = _json(response)
    if status in (401, 403) or (status == 404 and body.get("error") == "auth_error"):
        return (
            "failed",
            f"Vast refused the instance's own key (HTTP {status})",
        )
    if status == 404:
        return "done", f"instance {instance_id} is already gone"
    if status >= 400 or body.get("success") is False:
        detail = str(body.get("msg") or body.get("error") or f"HTTP {status}")[:200]
        return "failed", f"Vast would not {action} instance {instance_id}: {detail}"
    if action == "destroy":
        return "done", f"instance {instance_id} destroyed by the reporter: billing has ended"
    return "done", (
        f"instance {instance_id} stopped by the reporter; a stopped instance still bills "
        "its disk: destroy it on Vast.ai when you no longer need the data"
    )


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


__all__ = ["DEFAULT_VAST_URL", "end_own_instance", "read_own_instance"]
