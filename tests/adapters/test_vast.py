"""`bot.adapters.vast.VastMarket` over real loopback sockets against the fake Vast API."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.adapters.vast import (
    Instance,
    OfferQuery,
    VastAuthError,
    VastError,
    VastMarket,
    VastNotFound,
    VastRateLimited,
    VastServerError,
    VastUnavailable,
    build_offer_filter,
)
from tests.conftest import SHARED, FakeClock
from tests.fake_vast import FAKE_KEY, FakeVast

VAST_DIR = SHARED / "vast"
needs_snapshot = pytest.mark.skipif(
    not (VAST_DIR / "bundles_response_2024-11.json").exists(),
    reason="../shared/vast (the real Vast objects) is not here",
)
RATE_TEXT = "API requests too frequent"
RATE_JSON = {"success": False, "error": "rate_limited", "msg": "API requests too frequent"}


class Sleeps:
    """An injected `sleep` that records and moves the fake clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.slept_s: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept_s.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def sleeps(clock: FakeClock) -> Sleeps:
    return Sleeps(clock)


@pytest.fixture
async def fake() -> AsyncIterator[FakeVast]:
    fake = FakeVast.tiny()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def real_fake() -> AsyncIterator[FakeVast]:
    if not (VAST_DIR / "bundles_response_2024-11.json").exists():
        pytest.skip("../shared/vast (the real Vast objects) is not here")
    fake = FakeVast.from_shared(VAST_DIR)
    await fake.start()
    yield fake
    await fake.stop()


MarketFactory = Callable[..., VastMarket]


@pytest.fixture
async def market_for(clock: FakeClock, sleeps: Sleeps) -> AsyncIterator[MarketFactory]:
    made: list[VastMarket] = []

    def make(url: str, key: str = FAKE_KEY, **kwargs: Any) -> VastMarket:
        market = VastMarket(key, base_url=url, clock=clock, sleep=sleeps, **kwargs)
        made.append(market)
        return market

    yield make
    for market in made:
        await market.aclose()


def q(**kwargs: Any) -> OfferQuery:
    return OfferQuery(**{"gpu_name": "RTX 4090", "disk_gb": 50, **kwargs})


# Real objects


@needs_snapshot
async def test_search_parses_the_real_offers(
    real_fake: FakeVast, market_for: MarketFactory
) -> None:
    raw = json.loads((VAST_DIR / "bundles_response_2024-11.json").read_text())["offers"]
    wanted = [o for o in raw if o["gpu_name"] == "RTX 4090" and o["num_gpus"] == 1]
    cheapest = min(wanted, key=lambda o: o["dph_base"])

    offers = await market_for(real_fake.url).search_offers(q(limit=1000))

    assert len(offers) == len(wanted) == 91
    first = offers[0]
    assert first.id == cheapest["id"]
    assert (first.gpu_name, first.num_gpus) == ("RTX 4090", 1)
    assert first.gpu_ram_mib == cheapest["gpu_ram"]
    assert first.cpu_ram_mib == cheapest["cpu_ram"]
    assert first.disk_space_gb == cheapest["disk_space"]
    assert first.inet_down_mbps == cheapest["inet_down"]
    assert first.inet_up_cost_usd_per_gb == cheapest["inet_up_cost"]
    assert first.reliability == cheapest["reliability"]
    assert first.verified == (cheapest["verification"] == "verified")
    assert first.min_bid_usd == cheapest["min_bid"]
    # 50 GB at $/GB-month over 720 h is in the price, as Vast does with allocated_storage.
    storage = cheapest["storage_cost"] * 50 / 720
    assert first.dph_total_usd == pytest.approx(cheapest["dph_base"] + storage)
    assert [o.dph_total_usd for o in offers] == sorted(o.dph_total_usd for o in offers)


@needs_snapshot
async def test_the_filter_json_sent(real_fake: FakeVast, market_for: MarketFactory) -> None:
    market = market_for(real_fake.url)
    await market.search_offers(q(num_gpus=2, disk_gb=120, min_reliability=0.98, limit=7))
    await market.search_offers(q(kind="interruptible"))

    on_demand, bid = real_fake.posted_searches()
    assert on_demand == {
        "gpu_name": {"eq": "RTX 4090"},
        "num_gpus": {"eq": 2},
        "rentable": {"eq": True},
        "reliability": {"gte": 0.98},
        "type": "on-demand",
        "allocated_storage": 120,
        "order": [["dph_total", "asc"]],
        "limit": 7,
    }
    assert bid["type"] == "bid"
    assert bid["order"] == [["min_bid", "asc"]]
    assert real_fake.received[0].authorization == f"Bearer {FAKE_KEY}"


@needs_snapshot
@pytest.mark.parametrize(
    ("name", "status", "gpu"),
    [("running", "running", "RTX 3090"), ("loading", "loading", "RTX 3070 Ti")],
)
async def test_show_real_instances(
    real_fake: FakeVast, market_for: MarketFactory, name: str, status: str, gpu: str
) -> None:
    raw = json.loads((VAST_DIR / f"instance_{name}_http_inferred.json").read_text())["instances"]

    instance = await market_for(real_fake.url).show_instance(raw["id"])

    assert instance.id == raw["id"]
    assert (instance.actual_status, instance.cur_state) == (status, "running")
    assert instance.intended_status == "running"
    assert instance.gpu_name == gpu
    assert instance.num_gpus == raw["num_gpus"]
    assert instance.dph_total_usd == raw["dph_total"]
    assert instance.start_date_unix_s == raw["start_date"]
    assert instance.storage_usd_per_hour == raw["storage_total_cost"]
    assert instance.label is None
    assert real_fake.received[-1].path == f"/api/v0/instances/{raw['id']}/"


def test_every_real_offer_and_instance_parses() -> None:
    from bot.adapters.vast import Offer

    if not VAST_DIR.exists():
        pytest.skip("../shared/vast (the real Vast objects) is not here")
    raw = json.loads((VAST_DIR / "bundles_response_2024-11.json").read_text())["offers"]
    assert len([Offer.model_validate(o) for o in raw]) == 1396
    for path in VAST_DIR.glob("instance_*_http_inferred.json"):
        Instance.model_validate(json.loads(path.read_text())["instances"])


# Stop and destroy


async def test_stop_and_destroy(fake: FakeVast, market_for: MarketFactory) -> None:
    market = market_for(fake.url)
    await market.stop_instance(4242)
    assert (await market.show_instance("4242")).actual_status == "stopped"
    await market.destroy_instance("4242")

    sent = [(r.method, r.path, r.body) for r in fake.received]
    assert sent == [
        ("PUT", "/api/v0/instances/4242/", {"state": "stopped"}),
        ("GET", "/api/v0/instances/4242/", None),
        ("DELETE", "/api/v0/instances/4242/", None),
    ]
    with pytest.raises(VastNotFound):
        await market.show_instance(4242)


async def test_a_bad_instance_id_is_refused_before_sending(
    fake: FakeVast, market_for: MarketFactory
) -> None:
    with pytest.raises(ValueError):
        await market_for(fake.url).destroy_instance("../bundles")
    assert fake.received == []


async def test_a_5xx_on_destroy_is_not_retried(
    fake: FakeVast, market_for: MarketFactory, sleeps: Sleeps
) -> None:
    fake.fail_next(1, 502, body="Bad Gateway")
    with pytest.raises(VastServerError):
        await market_for(fake.url).destroy_instance(4242)
    assert len(fake.received) == 1
    assert sleeps.slept_s == []


async def test_a_429_on_stop_is_retried(
    fake: FakeVast, market_for: MarketFactory, sleeps: Sleeps
) -> None:
    fake.fail_next(1, 429, body=RATE_TEXT)
    await market_for(fake.url).stop_instance(4242)
    assert [r.method for r in fake.received] == ["PUT", "PUT"]
    assert len(sleeps.slept_s) == 1


# Errors


@pytest.mark.parametrize("status", [401, 404])
async def test_auth_errors(
    fake: FakeVast, market_for: MarketFactory, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    fake.auth_failure = status
    wrong_key = "wrong-secret-key-not-to-leak"
    market = market_for(fake.url, key=wrong_key)
    with caplog.at_level(logging.DEBUG), pytest.raises(VastAuthError) as caught:
        await market.show_instance(4242)
    assert caught.value.status == status
    assert "auth_error" in str(caught.value)
    assert wrong_key not in str(caught.value)  # the fake echoed it back
    assert wrong_key not in repr(caught.value)
    assert wrong_key not in caplog.text
    assert len(fake.received) == 1  # no retry on auth errors


async def test_404_without_auth_error_is_not_found(
    fake: FakeVast, market_for: MarketFactory
) -> None:
    with pytest.raises(VastNotFound) as caught:
        await market_for(fake.url).show_instance(999)
    assert not isinstance(caught.value, VastAuthError)
    assert caught.value.status == 404


@pytest.mark.parametrize("body", [RATE_TEXT, RATE_JSON], ids=["text", "json"])
async def test_429_is_retried_with_backoff(
    fake: FakeVast, market_for: MarketFactory, sleeps: Sleeps, body: Any
) -> None:
    fake.fail_next(2, 429, body=body)
    offers = await market_for(fake.url, max_tries=4, backoff_s=2).search_offers(q())
    assert [o.id for o in offers] == [1001]
    assert len(fake.posted_searches()) == 3
    # Exponential with jitter: each wait lies between half and all of 2 s, 4 s.
    assert len(sleeps.slept_s) == 2
    assert 1 <= sleeps.slept_s[0] <= 2
    assert 2 <= sleeps.slept_s[1] <= 4


@pytest.mark.parametrize("body", [RATE_TEXT, RATE_JSON], ids=["text", "json"])
async def test_a_persistent_429_raises_rate_limited(
    fake: FakeVast, market_for: MarketFactory, sleeps: Sleeps, body: Any
) -> None:
    fake.fail_next(10, 429, body=body)
    with pytest.raises(VastRateLimited) as caught:
        await market_for(fake.url, max_tries=3).show_instance(4242)
    assert "too frequent" in str(caught.value)
    assert caught.value.status == 429
    assert len(fake.received) == 3
    assert len(sleeps.slept_s) == 2


async def test_5xx_is_retried_then_succeeds(
    fake: FakeVast, market_for: MarketFactory, sleeps: Sleeps
) -> None:
    fake.fail_next(2, 500, body={"success": False, "error": "server_error", "msg": "oops"})
    instance = await market_for(fake.url).show_instance(4242)
    assert instance.label == "probecast-test"
    assert len(fake.received) == 3
    assert len(sleeps.slept_s) == 2


async def test_a_persistent_5xx_raises_server_error(
    fake: FakeVast, market_for: MarketFactory
) -> None:
    fake.fail_next(10, 503, body="Service Unavailable")
    with pytest.raises(VastServerError) as caught:
        await market_for(fake.url, max_tries=2).search_offers(q())
    assert caught.value.status == 503


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_network_errors_are_unavailable_and_retried(
    market_for: MarketFactory, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    market = market_for(_closed_port_url(), max_tries=3)
    with caplog.at_level(logging.DEBUG), pytest.raises(VastUnavailable) as caught:
        await market.destroy_instance(4242)  # never connected: safe even for destroy
    assert len(sleeps.slept_s) == 2
    assert FAKE_KEY not in str(caught.value)
    assert FAKE_KEY not in caplog.text


async def test_other_4xx_is_a_plain_vast_error(fake: FakeVast, market_for: MarketFactory) -> None:
    fake.fail_next(1, 400, body={"success": False, "error": "invalid_args", "msg": "bad"})
    with pytest.raises(VastError) as caught:
        await market_for(fake.url).show_instance(4242)
    assert type(caught.value) is VastError
    assert "invalid_args" in str(caught.value)


# Cache and rate limiter


async def test_a_cache_hit_avoids_a_second_search(
    fake: FakeVast, market_for: MarketFactory, clock: FakeClock
) -> None:
    market = market_for(fake.url, cache_s=120)
    first = await market.search_offers(q())
    clock.advance(119)
    assert await market.search_offers(q()) == first
    assert len(fake.posted_searches()) == 1

    await market.search_offers(q(disk_gb=80))  # another query is another key
    assert len(fake.posted_searches()) == 2

    clock.advance(2)
    await market.search_offers(q())
    assert len(fake.posted_searches()) == 3


async def test_the_11th_search_in_a_minute_waits(
    fake: FakeVast, market_for: MarketFactory, clock: FakeClock, sleeps: Sleeps
) -> None:
    market = market_for(fake.url, cache_s=0)
    for _ in range(10):
        await market.search_offers(q())
        clock.advance(1)
    assert sleeps.slept_s == []

    await market.search_offers(q())

    assert sleeps.slept_s == [pytest.approx(50)]  # the first went out 10 s ago
    assert len(fake.posted_searches()) == 11


def test_filter_for_any_gpu_has_no_gpu_name() -> None:
    body = build_offer_filter(OfferQuery(disk_gb=10))
    assert "gpu_name" not in body
    assert "reliability" not in body
    assert body["type"] == "on-demand"


async def test_key_is_not_in_the_market_repr() -> None:
    async with VastMarket(FAKE_KEY, base_url="http://127.0.0.1:9") as market:
        assert FAKE_KEY not in repr(market)
