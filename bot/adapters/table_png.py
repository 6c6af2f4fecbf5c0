"""The full option table as a PNG, drawn with Pillow.

matplotlib's table took 2.4 s of CPU for a 25-row table (text layout of ~300 cells),
the largest single cost under load (bench/ingest_load.py); drawing the same grid with
Pillow takes a few tens of milliseconds. Rows are options, long cells wrapped, the
current run's row shaded; wide (landscape), so a phone shows it whole and zooms in.
"""

from __future__ import annotations

import io
import textwrap
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bot.core.card import Table

CELL_CHARS = 22  # wrap width of a cell, in characters
HEADER_CHARS = 12
FONT_PX = 15
TITLE_PX = 24
PAD_PX = 8
MARGIN_PX = 16
HEADER_BG = "#e8eef5"
CURRENT_BG = "#fff6e0"  # this run: observed, not predicted
GRID = "#b8c0c8"
INK = "#1a1a1a"


@cache
def _font(bold: bool, size_px: int) -> ImageFont.FreeTypeFont:
    # DejaVu ships inside matplotlib (already a bot dependency): no system font needed.
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    return ImageFont.truetype(str(path), size_px)


def render_table_png(title: str, table: Table) -> bytes:
    body, bold = _font(False, FONT_PX), _font(True, FONT_PX)
    header = [textwrap.wrap(c, HEADER_CHARS, break_long_words=False) or [""] for c in table.columns]
    rows = [[textwrap.wrap(cell, CELL_CHARS) or [""] for cell in row] for row in table.rows]
    line_px = FONT_PX + 4
    widths = [
        max(
            max(bold.getlength(line) for line in header[i]),
            *(body.getlength(line) for row in rows for line in row[i]),
        )
        + 2 * PAD_PX
        for i in range(len(header))
    ]
    heights = [max(len(cell) for cell in row) * line_px + 2 * PAD_PX for row in [header, *rows]]
    width = int(sum(widths)) + 2 * MARGIN_PX
    top = MARGIN_PX + TITLE_PX + PAD_PX * 2
    image = Image.new("RGB", (width, top + sum(heights) + MARGIN_PX), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN_PX, MARGIN_PX), title, font=_font(True, TITLE_PX), fill=INK)
    y = top
    for index, (row, height) in enumerate(zip([header, *rows], heights, strict=True)):
        fill = HEADER_BG if index == 0 else CURRENT_BG if index == 1 else "white"
        x = float(MARGIN_PX)
        for cell, cell_width in zip(row, widths, strict=True):
            draw.rectangle((x, y, x + cell_width, y + height), fill=fill, outline=GRID)
            font = bold if index == 0 else body
            for n, line in enumerate(cell):
                draw.text((x + PAD_PX, y + PAD_PX + n * line_px), line, font=font, fill=INK)
            x += cell_width
        y += height
    buf = io.BytesIO()
    # Flat colours compress well even at a low level, which costs a fraction of the time.
    image.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


__all__ = ["render_table_png"]
