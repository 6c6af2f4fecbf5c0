"""A fake Vast.ai REST API on loopback that serves real offer and instance objects.

It answers the calls `bot.adapters.vast.VastMarket` makes, checks the Bearer key the way Vast does
(401, or 404 with `auth_error`), can be told to fail the next requests with 429 or 5xx,
and records every request in `received`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

FAKE_KEY = "vast-test-key-0123456789abcdef"

# Hand-written from the shape of the real objects, so error-path tests run without
# ../shared/vast.
TINY_OFFERS: list[dict[str, Any]] = [
    {
        "id": 1001,
        "machine_id": 11,
        "gpu_name": "RTX 4090",
        "num_gpus": 1,
        "gpu_ram": 24564,
        "cpu_ram": 64000,
        "cpu_cores_effective": 16.0,
        "disk_space": 500.0,
        "dph_base": 0.30,
        "storage_cost": 0.2,
        "storage_total_cost": 0.2 * 5 / 720,
        "dph_total": 0.30 + 0.2 * 5 / 720,
        "inet_up": 500.0,
        "inet_down": 900.0,
        "inet_up_cost": 0.004,
        "inet_down_cost": 0.002,
        "reliability": 0.995,
        "reliability2": 0.995,
        "verification": "verified",
        "total_flops": 82.0,
        "dlperf": 100.0,
        "cuda_max_good": 12.4,
        "geolocation": "Sweden, SE",
        "min_bid": 0.2,
        "rentable": True,
        "rented": False,
        "is_bid": False,
    },
    {
        "id": 1002,
        "gpu_name": "RTX 3090",
        "num_gpus": 2,
        "gpu_ram": 24576,
        "cpu_ram": 128000,
        "disk_space": 1000.0,
        "dph_base": 0.40,
        "storage_cost": 0.1,
        "storage_total_cost": 0.1 * 5 / 720,
        "dph_total": 0.40 + 0.1 * 5 / 720,
        "verification": "unverified",
        "rentable": True,
    },
]
TINY_INSTANCES: dict[int, dict[str, Any]] = {
    4242: {
        "id": 4242,
        "actual_status": "running",
        "cur_state": "running",
        "intended_status": "running",
        "gpu_name": "RTX 4090",
        "num_gpus": 1,
        "dph_total": 0.3013,
        "start_date": 1_730_000_000.0,
        "label": "probecast-test",
        "disk_space": 20.0,
        "disk_usage": 3.5,
        "storage_cost": 0.2,
        "storage_total_cost": 0.2 * 20 / 720,
        "is_bid": False,
        "verification": "verified",
    }
}

_HOURS_PER_MONTH = 720.0  # Vast prices storage per GB-month of 30 days


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    authorization: str | None
    body: Any


class FakeVast:
    """Start with `await fake.start()`; `fake.url` is then the base URL."""

    def __init__(
        self,
        offers: list[dict[str, Any]],
        instances: dict[int, dict[str, Any]],
        *,
        api_key: str = FAKE_KEY,
    ) -> None:
        self.offers = offers
        self.instances = copy.deepcopy(instances)
        self.api_key = api_key
        self.received: list[Received] = []
        # Real Vast answers a bad key with 401 on some endpoints and 404 on others.
        self.auth_failure = 401  # or 404
        self._failures: list[tuple[int, str, str]] = []  # (status, content type, body)
        self._runner: web.AppRunner | None = None
        self.url = ""

    @classmethod
    def tiny(cls) -> FakeVast:
        return cls(copy.deepcopy(TINY_OFFERS), TINY_INSTANCES)

    @classmethod
    def from_shared(cls, vast_dir: Path) -> FakeVast:
        """The real snapshot: every offer, and the running and loading instances."""
        offers = json.loads((vast_dir / "bundles_response_2024-11.json").read_text())["offers"]
        instances: dict[int, dict[str, Any]] = {}
        for path in sorted(vast_dir.glob("instance_*_http_inferred.json")):
            instance = json.loads(path.read_text())["instances"]
            instances[int(instance["id"])] = instance
        return cls(offers, instances)

    def fail_next(self, count: int, status: int, *, body: str | dict[str, Any] = "") -> None:
        """Answer the next `count` requests with `status` (text body, or JSON for a dict)."""
        if isinstance(body, dict):
            entry = (status, "application/json", json.dumps(body))
        else:
            entry = (status, "text/plain", body)
        self._failures.extend([entry] * count)

    def posted_searches(self) -> list[Any]:
        return [r.body for r in self.received if r.path == "/api/v0/bundles/"]

    async def start(self) -> str:
        app = web.Application(middlewares=[self._gate])
        app.router.add_post("/api/v0/bundles/", self._search)
        app.router.add_get("/api/v0/instances/{id}/", self._show)
        app.router.add_put("/api/v0/instances/{id}/", self._update)
        app.router.add_delete("/api/v0/instances/{id}/", self._destroy)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        auth = request.headers.get("Authorization")
        self.received.append(Received(request.method, request.path, auth, body))
        if self._failures:
            status, content_type, text = self._failures.pop(0)
            return web.Response(status=status, text=text, content_type=content_type)
        if auth != f"Bearer {self.api_key}":
            # Echo what was sent, as a careless server might: the client must scrub it.
            sent = (auth or "").removeprefix("Bearer ")
            return web.json_response(
                {"success": False, "error": "auth_error", "msg": f"Invalid user key {sent}"},
                status=self.auth_failure,
            )
        response: web.StreamResponse = await handler(request)
        return response

    async def _search(self, request: web.Request) -> web.Response:
        query = await request.json()
        kind = query.get("type", "on-demand")
        if kind not in ("on-demand", "bid", "reserved"):
            return _error(400, "invalid_args", f"bad type {kind}")
        matches = [o for o in self.offers if _matches(o, query)]
        storage_gb = float(query.get("allocated_storage", 5.0))
        priced = [_priced(o, storage_gb) for o in matches]
        for field, direction in reversed(query.get("order", [])):
            priced.sort(key=lambda o: o.get(field) or 0.0, reverse=direction == "desc")
        return web.json_response({"offers": priced[: int(query.get("limit", 64))]})

    async def _show(self, request: web.Request) -> web.Response:
        instance = self.instances.get(int(request.match_info["id"]))
        if instance is None:
            return _error(404, "no_such_instance", "Instance not found")
        return web.json_response({"instances": instance})

    async def _update(self, request: web.Request) -> web.Response:
        instance = self.instances.get(int(request.match_info["id"]))
        if instance is None:
            return _error(404, "no_such_instance", "Instance not found")
        state = (await request.json()).get("state")
        if state not in ("running", "stopped"):
            return _error(400, "invalid_args", "state must be running or stopped")
        instance["intended_status"] = state
        instance["actual_status"] = state
        instance["cur_state"] = state
        return web.json_response({"success": True, "msg": f"Instance {state}"})

    async def _destroy(self, request: web.Request) -> web.Response:
        if self.instances.pop(int(request.match_info["id"]), None) is None:
            return _error(404, "no_such_instance", "Instance not found")
        return web.json_response({"success": True, "msg": "Instance destroyed successfully"})


def _matches(offer: dict[str, Any], query: dict[str, Any]) -> bool:
    for field in ("gpu_name", "num_gpus", "rentable"):
        condition = query.get(field)
        if (
            isinstance(condition, dict)
            and "eq" in condition
            and offer.get(field) != condition["eq"]
        ):
            return False
    reliability = query.get("reliability")
    if isinstance(reliability, dict) and "gte" in reliability:
        return float(offer.get("reliability") or 0.0) >= float(reliability["gte"])
    return True


def _priced(offer: dict[str, Any], storage_gb: float) -> dict[str, Any]:
    """Reprice for the requested disk, as Vast does: dph_total = dph_base + storage."""
    priced = dict(offer)
    storage_usd_per_hour = float(offer.get("storage_cost") or 0.0) * storage_gb / _HOURS_PER_MONTH
    priced["storage_total_cost"] = storage_usd_per_hour
    priced["dph_total"] = float(offer["dph_base"]) + storage_usd_per_hour
    return priced


def _error(status: int, code: str, msg: str) -> web.Response:
    return web.json_response({"success": False, "error": code, "msg": msg}, status=status)
