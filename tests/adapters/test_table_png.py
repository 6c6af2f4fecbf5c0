"""The option table PNG, phone first: 390 px logical wide (drawn at 2×), one card per
option with body text at least 9 px tall on the phone, this run's card shaded."""

from __future__ import annotations

import io

from PIL import Image

from bot.adapters.table_png import (
    CURRENT_BG,
    FONT_PX,
    HEADER_BG,
    MARGIN_PX,
    SCALE,
    WIDTH_PX,
    render_table_png,
)
from bot.core.card import Table
from bot.core.render import OPTION_COLUMNS

COLUMNS = ("GPU option", "$/h", "time (opt/base/pess)", "major risks", "decision")


def table(rows: int, cell: str = "RTX 4090 · 1×") -> Table:
    return Table(COLUMNS, tuple(tuple(f"{cell} {r}" for _ in COLUMNS) for r in range(rows)))


def image(t: Table) -> Image.Image:
    return Image.open(io.BytesIO(render_table_png("Option table · llm", t))).convert("RGB")


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_every_option_is_a_card_and_the_title_and_this_run_are_shaded() -> None:
    small, large = image(table(3)), image(table(25))
    assert large.height > small.height * 6  # one card per row
    colours = {colour for _, colour in large.getcolors(maxcolors=1 << 16) or []}
    assert rgb(HEADER_BG) in colours and rgb(CURRENT_BG) in colours
    column = [large.getpixel((MARGIN_PX + 6, y)) for y in range(large.height)]
    first = column.index(rgb(CURRENT_BG))
    assert column.index(rgb(HEADER_BG)) < first
    last = len(column) - 1 - column[::-1].index(rgb(CURRENT_BG))
    assert rgb(CURRENT_BG) not in column[last + 1 :]  # only the first card


def test_a_phone_reads_it_without_zoom() -> None:
    # The full 12-column table with long cells: still 390 px wide on the phone.
    row = tuple(
        "a much longer description of the risks of this option " * 2 for _ in OPTION_COLUMNS
    )
    drawn = image(Table(OPTION_COLUMNS, (row, row)))
    assert drawn.width == WIDTH_PX == 390 * SCALE
    assert FONT_PX / SCALE >= 9  # body text height on the phone, in px
    assert drawn.height > image(table(2, "x")).height  # long words went down, not across
