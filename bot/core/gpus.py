"""GPU catalog: datasheet specs and name resolution across NVML, Vast.ai and benchmark names.

Errors: ``UnknownGpu`` (a ``LookupError``) names the closest catalog matches.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["Catalog", "GpuSpec", "UnknownGpu", "load_catalog"]


@dataclass(frozen=True)
class GpuSpec:
    """One GPU's datasheet figures (dense, no sparsity) and where they came from."""

    name: str
    vram_gib: float
    bf16_tflops: float  # dense tensor, FP32 accumulate (fp16 tensor figure before Ampere)
    fp16_acc_tflops: float  # GeForce fp16-accumulate rate; equals bf16_tflops elsewhere
    fp32_tflops: float
    hbm_bw_gbs: float
    source: str
    tf32_tflops: float | None = None  # None before Ampere
    supports_bf16: bool = True
    notes: str = ""


class UnknownGpu(LookupError):
    """A GPU name the catalog cannot resolve; ``suggestions`` are the closest names."""

    def __init__(self, name: str, suggestions: tuple[str, ...]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f"; closest: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown GPU {name!r}{hint}")


# Exact spellings whose tokens alone would be ambiguous or misleading (normalised form).
_ALIASES = {
    "h100 80gb hbm3": "H100 SXM",
    "h100 hbm3": "H100 SXM",
    "gh200 480gb": "GH200 96GB",
    "gh200 144g hbm3e": "GH200 96GB",
    "a100x": "A100 PCIe 80GB",  # A100 80GB PCIe converged card (with ConnectX)
    "h200 sxm": "H200 SXM",
    "h200": "H200 SXM",
}
_DROP = {"nvidia", "geforce", "tesla", "generation", "hbm3", "hbm3e", "hbm2", "hbm2e"}
_VARIANTS = {"sxm", "pcie", "nvl"}
_MEM = re.compile(r"^(\d+)g(?:b)?$")


@dataclass(frozen=True)
class _Key:
    core: frozenset[str]
    variants: frozenset[str]
    vram_gib: float | None


def _tokens(name: str) -> list[str]:
    text = re.sub(r"\(.*?\)", " ", name.lower())
    text = re.sub(r"[-_/,]", " ", text)
    text = re.sub(r"(\d)(ada)\b", r"\1 \2", text)  # Vast's "RTX 6000Ada"
    text = re.sub(r"\bq rtx\b", "quadro rtx", text)  # Vast's "Q RTX 6000"
    out: list[str] = []
    for tok in text.split():
        if tok in _DROP:
            continue
        if re.fullmatch(r"sxm\d?", tok):
            tok = "sxm"
        out.append(tok)
    return out


def _key(name: str) -> _Key:
    core: set[str] = set()
    variants: set[str] = set()
    vram: float | None = None
    for tok in _tokens(name):
        mem = _MEM.match(tok)
        if mem:
            vram = float(mem.group(1))
        elif tok in _VARIANTS - {"nvl"}:
            variants.add(tok)
        else:
            core.add(tok)
    return _Key(frozenset(core), frozenset(variants), vram)


def _normal(name: str) -> str:
    return " ".join(_tokens(name))


@dataclass(frozen=True)
class Catalog:
    """The shipped GPU specs, with name resolution and dated reference prices."""

    specs: tuple[GpuSpec, ...]
    reference_usd_per_hour_by_gpu: tuple[tuple[str, float], ...] = ()
    prices_dated: str | None = None

    def __iter__(self) -> Iterator[GpuSpec]:
        return iter(self.specs)

    def by_name(self, name: str) -> GpuSpec:
        """The spec with this exact catalog name."""
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise UnknownGpu(name, self._suggest(name))

    def resolve(self, name: str, vram_gib: float | None = None) -> GpuSpec:
        """The spec for an NVML, Vast ``gpu_name`` or benchmark spelling.

        ``vram_gib`` (e.g. Vast's ``gpu_ram`` / 1024) picks between memory variants when the
        name does not carry the size itself; without either, the largest variant wins, and
        SXM before PCIe.
        """
        normal = _normal(name)
        alias = _ALIASES.get(normal)
        if alias is not None:
            return self.by_name(alias)
        query = _key(name)
        if not query.core:
            raise UnknownGpu(name, self._suggest(name))
        candidates = [
            spec
            for spec in self.specs
            if (k := _key(spec.name)).core == query.core and query.variants <= k.variants
        ]
        if not candidates:
            raise UnknownGpu(name, self._suggest(name))
        want = query.vram_gib if query.vram_gib is not None else vram_gib

        def rank(spec: GpuSpec) -> tuple[float, float, int]:
            gap = abs(spec.vram_gib - want) if want is not None else 0.0
            return (gap, -spec.vram_gib, 0 if "sxm" in _key(spec.name).variants else 1)

        return min(candidates, key=rank)

    def reference_usd_per_hour(self, name: str, vram_gib: float | None = None) -> tuple[float, str]:
        """Median single-GPU Vast.ai ``dph_total`` in a dated snapshot: ``(usd, "2024-11")``."""
        spec = self.resolve(name, vram_gib)
        prices = dict(self.reference_usd_per_hour_by_gpu)
        if spec.name not in prices or self.prices_dated is None:
            raise UnknownGpu(f"{name} (no reference price)", tuple(sorted(prices)))
        return prices[spec.name], self.prices_dated

    def _suggest(self, name: str) -> tuple[str, ...]:
        names = {_normal(s.name): s.name for s in self.specs}
        close = difflib.get_close_matches(_normal(name), list(names), n=3, cutoff=0.4)
        return tuple(names[c] for c in close)


def catalog_from_dict(doc: dict[str, Any]) -> Catalog:
    """A catalog from the shipped JSON's object."""
    fields = set(GpuSpec.__dataclass_fields__)
    specs = tuple(GpuSpec(**{k: v for k, v in g.items() if k in fields}) for g in doc["gpus"])
    prices = tuple(sorted((str(k), float(v)) for k, v in doc["reference_usd_per_hour"].items()))
    return Catalog(specs, prices, doc.get("prices_dated"))


def load_catalog() -> Catalog:
    """The catalog shipped in ``bot/data/gpu_catalog.json``."""
    text = resources.files("bot.data").joinpath("gpu_catalog.json").read_text(encoding="utf-8")
    return catalog_from_dict(json.loads(text))
