"""Where alternatives come from: live Vast.ai offers, or the catalog's reference prices.

Both give `Candidate`s for the option table; the service does not care which. Live
offers are the cheapest rentable machine per GPU model with the run's GPU count, and
with twice as many GPUs (the multi-GPU options), and the run's disk; reference prices
(median Vast ``dph_total`` of a dated snapshot) stand in when no ``VAST_API_KEY`` is
set, and say so in each row's price source.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from bot.adapters.vast import Offer, OfferQuery, VastError, VastMarket
from bot.core.gpus import Catalog, UnknownGpu
from bot.core.options import Candidate

log = logging.getLogger(__name__)
MIN_RELIABILITY = 0.90  # below this a host is not worth listing at all


class Market(Protocol):
    async def candidates(self, num_gpus: int, disk_gb: float) -> list[Candidate]:
        """Machines with ``num_gpus`` GPUs and room for ``disk_gb``, one per GPU model."""
        ...


class ReferenceMarket:
    """Every catalog GPU with a reference price, priced per GPU × ``num_gpus``."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    async def candidates(self, num_gpus: int, disk_gb: float) -> list[Candidate]:
        found: list[Candidate] = []
        for name, usd_per_hour in self.catalog.reference_usd_per_hour_by_gpu:
            try:
                spec = self.catalog.by_name(name)
            except UnknownGpu:
                continue
            for count in gpu_counts(num_gpus):
                found.append(
                    Candidate(
                        spec=spec,
                        num_gpus=count,
                        usd_per_hour=usd_per_hour * count,
                        price_source=f"median Vast price, {self.catalog.prices_dated}",
                    )
                )
        return found


class VastCandidates:
    """The cheapest live offer per GPU model; the reference prices if Vast fails."""

    def __init__(self, vast: VastMarket, catalog: Catalog) -> None:
        self.vast, self.catalog = vast, catalog
        self._fallback = ReferenceMarket(catalog)

    async def candidates(self, num_gpus: int, disk_gb: float) -> list[Candidate]:
        found: list[Candidate] = []
        for count in gpu_counts(num_gpus):
            query = OfferQuery(
                num_gpus=count, disk_gb=disk_gb, min_reliability=MIN_RELIABILITY, limit=400
            )
            try:
                offers = await self.vast.search_offers(query)
            except VastError as exc:
                if found:  # the live offers we have beat a dated median
                    log.warning("Vast search for %d GPUs failed: %s", count, exc)
                    break
                log.warning("Vast search failed, using reference prices: %s", exc)
                return await self._fallback.candidates(num_gpus, disk_gb)
            found += candidates_from_offers(offers, self.catalog)
        return found


def gpu_counts(num_gpus: int) -> tuple[int, ...]:
    """The run's own GPU count, and twice it while a single Vast machine can hold that."""
    return (num_gpus, 2 * num_gpus) if num_gpus <= 4 else (num_gpus,)


def candidates_from_offers(offers: Iterable[Offer], catalog: Catalog) -> list[Candidate]:
    """The cheapest offer per GPU model and count that the catalog knows."""
    cheapest: dict[tuple[str, int], Candidate] = {}
    for offer in sorted(offers, key=lambda o: o.dph_total_usd):
        try:
            spec = catalog.resolve(offer.gpu_name, offer.gpu_ram_mib / 1024)
        except UnknownGpu:
            continue
        if (spec.name, offer.num_gpus) in cheapest:
            continue
        cheapest[spec.name, offer.num_gpus] = Candidate(
            spec=spec,
            num_gpus=offer.num_gpus,
            usd_per_hour=offer.dph_total_usd,
            price_source=f"Vast offer {offer.id}",
            cpu_ram_gib=offer.cpu_ram_mib / 1024,
            reliability=offer.reliability,
            verified=offer.verified,
            inet_down_mbps=offer.inet_down_mbps,
            inet_up_mbps=offer.inet_up_mbps,
            inet_down_usd_per_gb=offer.inet_down_cost_usd_per_gb,
        )
    return list(cheapest.values())


__all__ = [
    "Market",
    "ReferenceMarket",
    "VastCandidates",
    "candidates_from_offers",
    "gpu_counts",
]
