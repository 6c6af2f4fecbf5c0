"""The option table PNG: every row drawn, the header and this run's row shaded, long
cells wrapped rather than widening the image."""

from __future__ import annotations

import io

from PIL import Image

from bot.adapters.table_png import CURRENT_BG, HEADER_BG, MARGIN_PX, render_table_png
from bot.core.card import Table

COLUMNS = ("GPU option", "$/h", "time (opt/base/pess)", "major risks", "keep/switch/kill")


def table(rows: int, cell: str = "RTX 4090 · 1×") -> Table:
    return Table(COLUMNS, tuple(tuple(f"{cell} {r}" for _ in COLUMNS) for r in range(rows)))


def image(t: Table) -> Image.Image:
    return Image.open(io.BytesIO(render_table_png("Option table · llm", t))).convert("RGB")


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_every_row_is_drawn_and_the_header_and_this_run_are_shaded() -> None:
    small, large = image(table(3)), image(table(25))
    assert large.height > small.height * 4  # one band per row
    colours = {colour for _, colour in large.getcolors(maxcolors=1 << 16) or []}
    assert rgb(HEADER_BG) in colours and rgb(CURRENT_BG) in colours
    # The shaded run is the first row under the header, once.
    column = [large.getpixel((MARGIN_PX + 3, y)) for y in range(large.height)]
    first = column.index(rgb(CURRENT_BG))
    assert column.index(rgb(HEADER_BG)) < first
    assert rgb(CURRENT_BG) not in column[first + 60 :]


def test_long_cells_wrap_instead_of_widening_the_image() -> None:
    short = image(table(2, "x"))
    long = image(table(2, "a much longer description of the risks of this option " * 3))
    assert long.width < short.width * 4
    assert long.height > short.height  # the words went down, not across
