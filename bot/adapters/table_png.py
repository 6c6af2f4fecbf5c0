"""The full option table as a PNG, drawn with Pillow, phone first.

A phone is about 390 px wide: the image is drawn at twice that (780 px) and reads
without zoom, one card per option (this run first, shaded) with its decision under its
name and every column as a "label: value" line, wrapped to the width. A wide grid of
12 columns needed pinch-zoom and panning. Pillow draws it in a few tens of milliseconds
(matplotlib's table took 2.4 s of CPU for 25 rows; bench/ingest_load.py).
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bot.core.card import Table

SCALE = 2  # drawn at 2× a phone's 390 px logical width
WIDTH_PX = 390 * SCALE
FONT_PX = 12 * SCALE  # body text: 12 px tall on the phone
HEAD_PX = 14 * SCALE
TITLE_PX = 16 * SCALE
PAD_PX = 8 * SCALE
MARGIN_PX = 8 * SCALE
GAP_PX = 6 * SCALE
LINE_GAP_PX = 3 * SCALE
HEADER_BG = "#e8eef5"
CURRENT_BG = "#fff6e0"  # this run: observed, not predicted
CARD_BG = "white"
GRID = "#b8c0c8"
INK = "#1a1a1a"
SOFT = "#4a5560"


@cache
def _font(bold: bool, size_px: int) -> ImageFont.FreeTypeFont:
    # DejaVu ships inside matplotlib (already a bot dependency): no system font needed.
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    return ImageFont.truetype(str(path), size_px)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width_px: float) -> list[str]:
    """Greedy word wrap by measured width; a word longer than a line is cut."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width_px:
            line = candidate
            continue
        if line:
            lines.append(line)
        while font.getlength(word) > width_px:
            cut = max(1, int(len(word) * width_px / font.getlength(word)) - 1)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    return [*lines, line] if line else lines or [""]


Line = tuple[str, ImageFont.FreeTypeFont, str]  # text, font, colour
# What a decision rests on comes first; the hardware after it.
FIRST = ("time", "cost", "major risks", "$/h", "step/s")


def _priority(pair: tuple[str, str]) -> int:
    label = pair[0]
    return next((i for i, p in enumerate(FIRST) if label.startswith(p)), len(FIRST))


def _card_lines(columns: tuple[str, ...], row: tuple[str, ...], inner_px: float) -> list[Line]:
    head, body = _font(True, HEAD_PX), _font(False, FONT_PX)
    label_font = _font(True, FONT_PX)
    out: list[Line] = [(t, head, INK) for t in _wrap(row[0], head, inner_px)]
    if len(row) > 1:  # the decision, right under the option's name
        out += [(t, head, INK) for t in _wrap(f"→ {row[-1]}", head, inner_px)]
    pairs = sorted(zip(columns[1:-1], row[1:-1], strict=True), key=_priority)
    for label, value in pairs:
        for n, text in enumerate(_wrap(f"{label}: {value}", body, inner_px)):
            out.append((text, label_font if n == 0 and ": " not in text else body, SOFT))
    return out


def render_table_png(title: str, table: Table) -> bytes:
    """One card per row of ``table``: its first column as the heading, its last (the
    decision) under it, the rest as labelled lines."""
    inner_px = WIDTH_PX - 2 * MARGIN_PX - 2 * PAD_PX
    title_font = _font(True, TITLE_PX)
    title_lines = _wrap(title, title_font, WIDTH_PX - 2 * MARGIN_PX)
    cards = [_card_lines(table.columns, row, inner_px) for row in table.rows]

    def line_px(font: ImageFont.FreeTypeFont) -> int:
        return int(font.size) + LINE_GAP_PX

    title_h = len(title_lines) * line_px(title_font) + 2 * PAD_PX
    heights = [sum(line_px(f) for _, f, _ in card) + 2 * PAD_PX for card in cards]
    height = title_h + sum(heights) + GAP_PX * len(cards) + MARGIN_PX
    image = Image.new("RGB", (WIDTH_PX, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH_PX, title_h), fill=HEADER_BG)
    y = PAD_PX
    for text in title_lines:
        draw.text((MARGIN_PX, y), text, font=title_font, fill=INK)
        y += line_px(title_font)
    y = title_h + GAP_PX
    for index, (card, card_h) in enumerate(zip(cards, heights, strict=True)):
        fill = CURRENT_BG if index == 0 else CARD_BG
        draw.rectangle(
            (MARGIN_PX, y, WIDTH_PX - MARGIN_PX, y + card_h), fill=fill, outline=GRID, width=2
        )
        ty = y + PAD_PX
        for text, font, colour in card:
            draw.text((MARGIN_PX + PAD_PX, ty), text, font=font, fill=colour)
            ty += line_px(font)
        y += card_h + GAP_PX
    buf = io.BytesIO()
    # Flat colours compress well even at a low level, which costs a fraction of the time.
    image.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


__all__ = ["render_table_png"]
