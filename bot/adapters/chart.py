"""Render a check-in's `ChartData` as a PNG sized for a phone (matplotlib, Agg).

Uses matplotlib's object API only (no pyplot and its global figure registry), so
renders can run concurrently in worker threads. The same data gives the same bytes.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Sequence
from itertools import pairwise

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.core.chartdata import ChartData
from bot.core.render import fmt_duration

WIDTH_IN, HEIGHT_IN, DPI = 6.0, 7.5, 180  # 1080 × 1350 px: a portrait phone screen
FONT_PT = 14
TITLE_PT = 15
SUPTITLE_PT = 17
TITLE_CHARS = 36
GAP_FACTOR = 3.0

# Colour-blind-safe (Okabe–Ito) with neutral reference lines.
RATE = "#0072B2"
EXPECTED = "#555555"
SLOW = "#D55E00"
BAND = "#56B4E9"
UTIL = "#009E73"
VRAM = "#E69F00"


def chart_panels(data: ChartData) -> tuple[str, ...]:
    """The panels the chart will have, top to bottom."""
    telemetry = ("gpu",) if data.gpu_util or data.vram_pct else ()
    return ("throughput", "eta", *telemetry)


def checkin_figure(data: ChartData) -> Figure:
    """The check-in chart as a matplotlib figure, one stacked panel per `chart_panels`."""
    panels = chart_panels(data)
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(_short(data.title), fontsize=SUPTITLE_PT, fontweight="bold")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    draw = {"throughput": _throughput, "eta": _eta, "gpu": _gpu}
    for name, ax in zip(panels, axes, strict=True):
        ax.tick_params(labelsize=FONT_PT)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(True, alpha=0.3)
        draw[name](ax, data)
    x_max = max([data.now_h, 1 / 60, *(x for x, _ in data.throughput)])
    x_min = min([0.0, *(x for x, _ in (*data.gpu_util, *data.vram_pct))])
    axes[-1].set_xlim(x_min, x_max)
    axes[-1].set_xlabel("hours since first step", fontsize=FONT_PT)
    return fig


def render_checkin_png(data: ChartData) -> bytes:
    """PNG bytes of the check-in chart, 1080 × 1350 px, without a timestamp or version."""
    buf = io.BytesIO()
    checkin_figure(data).savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _throughput(ax: Axes, data: ChartData) -> None:
    expected = data.expected_step_per_s
    latest = data.throughput[-1][1] if data.throughput else None
    title = f"Speed {_rate(latest)} step/s"
    if expected:
        title += f" · expected {_rate(expected)}"
    ax.set_title(title, loc="left", fontsize=TITLE_PT)
    if data.throughput:
        for xs, ys in _unbroken(data.throughput):
            ax.plot(xs, ys, color=RATE, linewidth=2.2)
    else:
        _note(ax, "waiting for steps")
    top = max((y for _, y in data.throughput), default=0.0)
    if expected:
        slow = expected * data.slow_fraction
        ax.axhline(expected, color=EXPECTED, linestyle="--", linewidth=1.6)
        ax.annotate(
            "expected",
            (0.99, expected),
            xycoords=("axes fraction", "data"),
            xytext=(0, -4),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize=FONT_PT,
            color=EXPECTED,
        )
        ax.axhline(slow, color=SLOW, linestyle="--", linewidth=1.6)
        ax.axhspan(0, slow, color=SLOW, alpha=0.08, linewidth=0)
        ax.annotate(
            f"{data.slow_fraction:.0%} alert",
            (0.01, slow),
            xycoords=("axes fraction", "data"),
            xytext=(0, -4),
            textcoords="offset points",
            va="top",
            fontsize=FONT_PT,
            color=SLOW,
        )
        top = max(top, expected)
    ax.set_ylim(0, top * 1.2 if top > 0 else 1.0)


def _eta(ax: Axes, data: ChartData) -> None:
    if not data.eta_band:
        ax.set_title("Finish: estimating…", loc="left", fontsize=TITLE_PT)
        _note(ax, "needs a few more steps")
        return
    xs, lows, bases, highs = zip(*data.eta_band, strict=True)
    ax.set_title(
        f"Finish {_hours(bases[-1])} from start ({_hours(lows[-1])}–{_hours(highs[-1])})",
        loc="left",
        fontsize=TITLE_PT,
    )
    ax.fill_between(xs, lows, highs, color=BAND, alpha=0.35, linewidth=0)
    ax.plot(xs, bases, color=RATE, linewidth=2.2, marker="o", markersize=3.5)
    ax.set_ylabel("finish (h)", fontsize=FONT_PT)
    # The first estimates can be far off; frame the recent half so today's band reads.
    recent = data.eta_band[len(data.eta_band) // 2 :]
    lo = min(low for _, low, _, _ in recent)
    hi = max(high for _, _, _, high in recent)
    pad = max((hi - lo) * 0.25, 0.02 * hi, 1 / 60)
    ax.set_ylim(max(0.0, lo - pad), hi + pad)


def _gpu(ax: Axes, data: ChartData) -> None:
    parts = []
    if data.gpu_util:
        xs, ys = zip(*data.gpu_util, strict=True)
        ax.plot(xs, ys, color=UTIL, linewidth=2.2, label="GPU util")
        parts.append(f"GPU {data.gpu_util[-1][1]:.0f}%")
    if data.vram_pct:
        xs, ys = zip(*data.vram_pct, strict=True)
        ax.plot(xs, ys, color=VRAM, linewidth=2.2, label="VRAM")
        parts.append(f"VRAM {data.vram_pct[-1][1]:.0f}%")
    ax.set_title(" · ".join(parts), loc="left", fontsize=TITLE_PT)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%", fontsize=FONT_PT)
    ax.legend(loc="lower left", fontsize=FONT_PT, frameon=False, ncols=2)


def _unbroken(
    points: Sequence[tuple[float, float]],
) -> list[tuple[list[float], list[float]]]:
    """The series split where it has no data for a while (a long eval or checkpoint), so
    a line does not bridge the gap as if the run had trained through it."""
    gaps = [b[0] - a[0] for a, b in pairwise(points)]
    limit = GAP_FACTOR * statistics.median(gaps) if gaps else math.inf
    runs: list[tuple[list[float], list[float]]] = [([], [])]
    for i, (x, y) in enumerate(points):
        if i and gaps[i - 1] > limit:
            runs.append(([], []))
        runs[-1][0].append(x)
        runs[-1][1].append(y)
    return runs


def _note(ax: Axes, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=FONT_PT,
        color=EXPECTED,
    )


def _rate(step_per_s: float | None) -> str:
    """Three significant figures, keeping trailing zeros: 2.10, 15.0, 0.0420."""
    if step_per_s is None or not math.isfinite(step_per_s):
        return "—"
    if step_per_s >= 100:
        return f"{step_per_s:.0f}"
    digits = 2 - math.floor(math.log10(step_per_s)) if step_per_s > 0 else 2
    return f"{step_per_s:.{max(0, digits)}f}"


def _hours(hours: float) -> str:
    return fmt_duration(hours * 3600)


def _short(title: str) -> str:
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1] + "…"
    return title.replace("$", r"\$")  # a bare "$" would switch matplotlib to math text


def render_attempts_png(
    title: str, series: Sequence[tuple[str, Sequence[tuple[float, int]]]]
) -> bytes:
    """Attempts of one job overlaid: steps against time since each one's first step, so a
    faster relaunch is the steeper line and a designed slowdown shows in both."""
    fig = Figure(figsize=(WIDTH_IN, WIDTH_IN * 0.8), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_title(_short(title), fontsize=TITLE_PT, fontweight="bold")
    for (label, points), colour in zip(series, (EXPECTED, RATE, SLOW, UTIL), strict=False):
        if points:
            ax.plot(
                [t / 3600 for t, _ in points], [s for _, s in points], label=label, color=colour
            )
    ax.set_xlabel("hours since the first step", fontsize=FONT_PT)
    ax.set_ylabel("step", fontsize=FONT_PT)
    ax.tick_params(labelsize=FONT_PT)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=FONT_PT)
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
