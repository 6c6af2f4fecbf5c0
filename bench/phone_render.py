"""The Slack and Discord messages of a full run, drawn as a phone shows them (390 px wide).

Issue 23's check: drive one run through the real bot, slack-bolt and discord.py against
the loopback fakes the chat tests use (tests/fake_slack.py, tests/fake_discord.py) —
evals, a slowdown, recovery, a second slowdown that reopens the alert, a kill from that
alert, ``/probecast status`` after — then draw every message as it finally stands, one
PNG each, to look at. Layout is each app's, roughly: Slack's blocks (header, section,
two-column fields, context, buttons, a button's confirm dialog) and Discord's embeds
(colour bar, title, description, fields one per row as on a phone, footer, buttons).

Drawn at 2× (780 px) with 15 px body text and 12 px small text at 1×. Bench use only:
not part of ``make test``.

    .venv/bin/python bench/phone_render.py [OUT_DIR]     # default /tmp/phone
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import re
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.adapters.table_png import _font as table_font  # noqa: E402  (the same DejaVu)
from bot.app import App, build, start_server  # noqa: E402
from bot.core.card import action_id  # noqa: E402
from tests.conftest import SECRET, FakeClock, make_settings  # noqa: E402

T0 = 1_700_000_000.0
SLACK_KILLER = "U0KILLER"
DISCORD_KILLER = "1300000000000000001"
NAMES = {SLACK_KILLER: "kim", DISCORD_KILLER: "kim", "U0MALLORY": "mallory"}

# -- drawing ------------------------------------------------------------------------------

S = 2  # drawn at 2× a phone's 390 px
WIDTH = 390 * S
MARGIN = 14 * S
BODY = 15 * S
SMALL = 12 * S
TITLE = 17 * S
LINE_GAP = 4 * S
INK, SOFT, LINK = "#1d1c1d", "#616061", "#1264a3"
CODE_BG, MENTION_BG = "#f0f0f0", "#e8f5fa"
# DejaVu has no colour emoji: each one a phone would show becomes a glyph DejaVu has.
EMOJI = {
    ":rotating_light:": "⚠",
    ":white_check_mark:": "✔",
    ":warning:": "⚠",
    ":paperclip:": "▣",
    "🚨": "⚠",
    "✅": "✔",
    "⚠️": "⚠",
    "📎": "▣",
}


def font(size: int, *, bold: bool = False, mono: bool = False) -> ImageFont.FreeTypeFont:
    if mono:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSansMono.ttf"
        return ImageFont.truetype(str(path), size)
    return table_font(bold, size)


@dataclass
class Run_:
    """A stretch of text in one style."""

    text: str
    bold: bool = False
    italic: bool = False
    code: bool = False
    mention: bool = False
    colour: str = INK


def _font_of(run: Run_, size: int) -> ImageFont.FreeTypeFont:
    return font(size - (2 * S if run.code else 0), bold=run.bold, mono=run.code)


class Canvas:
    """A tall white page drawn top to bottom, cropped to what was drawn."""

    def __init__(self) -> None:
        self.image = Image.new("RGB", (WIDTH, 8000), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.y = MARGIN

    def rich(
        self, lines: list[list[Run_]], size: int, x: int = MARGIN, width: int | None = None
    ) -> None:
        """Word-wrapped styled lines from ``x``, ``width`` wide."""
        width = width or WIDTH - x - MARGIN
        for runs in lines:
            cx = x
            line_h = size + LINE_GAP
            if not any(r.text.strip() for r in runs):
                self.y += line_h // 2
                continue
            for run in runs:
                f = _font_of(run, size)
                for word in re.findall(r"\S+\s*|\s+", run.text):
                    w = f.getlength(word.rstrip())
                    if cx > x and cx + w > x + width:
                        cx, self.y = x, self.y + line_h
                        word = word.lstrip()
                        w = f.getlength(word.rstrip())
                    while w > width:  # a word wider than the line: cut it
                        cut = max(1, int(len(word) * width / w) - 1)
                        self._word(cx, word[:cut], run, f, size)
                        word, cx, self.y = word[cut:], x, self.y + line_h
                        w = f.getlength(word.rstrip())
                    self._word(cx, word, run, f, size)
                    cx += f.getlength(word)
            self.y += line_h

    def _word(self, x: float, word: str, run: Run_, f: ImageFont.FreeTypeFont, size: int) -> None:
        if run.code or run.mention:
            bg = CODE_BG if run.code else MENTION_BG
            self.draw.rectangle(
                (x - 1, self.y, x + f.getlength(word.rstrip()) + 1, self.y + size + 2), fill=bg
            )
        colour = LINK if run.mention else run.colour
        dy = S if run.code else 0
        if run.italic:  # DejaVu Sans Oblique is not shipped with matplotlib: shear instead
            w, h = int(f.getlength(word)) + 6 * S, size + 4 * S
            tile = Image.new("L", (w, h), 0)
            ImageDraw.Draw(tile).text((2 * S, 0), word, font=f, fill=255)
            tile = tile.transform(tile.size, Image.Transform.AFFINE, (1, 0.2, -2, 0, 1, 0))
            self.image.paste(colour, (int(x), self.y), tile)
            return
        self.draw.text((x, self.y + dy), word, font=f, fill=colour)

    def text(self, text: str, size: int, *, bold: bool = False, colour: str = INK,
             x: int = MARGIN) -> None:  # fmt: skip
        self.rich([[Run_(line, bold=bold, colour=colour)] for line in text.split("\n")], size, x)

    def gap(self, px: int) -> None:
        self.y += px * S

    def buttons(self, labels: list[tuple[str, str]]) -> None:
        """Buttons in rows, wrapping like a phone's; each (label, style)."""
        f = font(14 * S, bold=True)
        x = MARGIN
        h = 32 * S
        for label, style in labels:
            w = int(f.getlength(label)) + 24 * S
            if x > MARGIN and x + w > WIDTH - MARGIN:
                x, self.y = MARGIN, self.y + h + 6 * S
            fill, ink, outline = {
                "danger": ("#e01e5a", "white", "#e01e5a"),
                "primary": ("#007a5a", "white", "#007a5a"),
            }.get(style, ("white", INK, "#bbbbbb"))
            self.draw.rounded_rectangle(
                (x, self.y, x + w, self.y + h), 6 * S, fill=fill, outline=outline, width=S
            )
            self.draw.text((x + 12 * S, self.y + 7 * S), label, font=f, fill=ink)
            x += w + 8 * S
        self.y += h + 8 * S

    def save(self, path: Path) -> None:
        self.image.crop((0, 0, WIDTH, self.y + MARGIN)).save(path)


def _emoji(text: str) -> str:
    for code, glyph in EMOJI.items():
        text = text.replace(code, glyph)
    return text


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%a %H:%M UTC")


def _ago(t: float, now: float) -> str:
    s = now - t
    if abs(s) < 60:
        return "now" if abs(s) < 5 else f"{abs(s):.0f} seconds {'ago' if s >= 0 else 'from now'}"
    m = abs(s) / 60
    unit = f"{m:.0f} minutes" if m < 90 else f"{m / 60:.0f} hours"
    return f"{unit} ago" if s >= 0 else f"in {unit}"


# Slack mrkdwn: *bold*, _italic_, `code`, <@U…>, <!date^…|fallback>, &amp; entities.
_SLACK = re.compile(
    r"(\*[^*\n]+\*|(?<![\w])_[^_\n]+_(?![\w])|`[^`\n]+`|<@[A-Z0-9]+>|<!date\^\d+\^[^|>]*\|[^>]*>)"
)


def _slack_line(line: str, colour: str, bold: bool = False, italic: bool = False) -> list[Run_]:
    def unescape(s: str) -> str:
        return _emoji(s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))

    runs: list[Run_] = []
    for i, part in enumerate(_SLACK.split(line)):
        if not part:
            continue
        if i % 2 == 0:
            runs.append(Run_(unescape(part), bold=bold, italic=italic, colour=colour))
        elif part.startswith("<@"):
            who = part[2:-1]
            runs.append(Run_(f"@{NAMES.get(who, who)}", bold=bold, mention=True))
        elif part.startswith("<!date"):
            stamp = int(part.split("^")[1])  # the reader's time zone: UTC here
            runs.append(Run_(_clock(stamp), bold=bold, italic=italic, colour=colour))
        elif part.startswith("*"):
            runs += _slack_line(part[1:-1], colour, True, italic)
        elif part.startswith("_"):
            runs += _slack_line(part[1:-1], colour, bold, True)
        else:
            runs.append(Run_(unescape(part[1:-1]), code=True, colour=colour))
    return runs


def slack_runs(text: str, *, colour: str = INK) -> list[list[Run_]]:
    return [_slack_line(line, colour) for line in text.split("\n")]


# Discord markdown: **bold**, *italic*, `code`, <@id>, <t:…:R>.
_DISCORD = re.compile(r"(\*\*[^*\n]+\*\*|\*[^*\n]+\*|`[^`\n]+`|<@!?\d+>|<t:\d+(?::\w)?>)")


def _discord_line(
    line: str, now: float, colour: str, bold: bool = False, italic: bool = False
) -> list[Run_]:
    runs: list[Run_] = []
    for i, part in enumerate(_DISCORD.split(line)):
        if not part:
            continue
        if i % 2 == 0:
            runs.append(Run_(_emoji(part), bold=bold, italic=italic, colour=colour))
        elif part.startswith("<@"):
            who = part.strip("<@!>")
            runs.append(Run_(f"@{NAMES.get(who, who)}", bold=bold, mention=True))
        elif part.startswith("<t:"):
            stamp = int(part[3:-1].split(":")[0])
            shown = _ago(stamp, now) if part.endswith(":R>") else _clock(stamp)
            runs.append(Run_(shown, bold=bold, colour=colour, mention=True))
        elif part.startswith("**"):
            runs += _discord_line(part[2:-2], now, colour, True, italic)
        elif part.startswith("*"):
            runs += _discord_line(part[1:-1], now, colour, bold, True)
        else:
            runs.append(Run_(part[1:-1], code=True, colour=colour))
    return runs


def discord_runs(text: str, now: float, *, colour: str = INK) -> list[list[Run_]]:
    return [_discord_line(line, now, colour) for line in text.split("\n")]


def _app_line(canvas: Canvas, name: str, note: str) -> None:
    canvas.draw.rounded_rectangle(
        (MARGIN, canvas.y, MARGIN + 30 * S, canvas.y + 30 * S), 6 * S, fill="#4a154b"
    )
    f = font(BODY, bold=True)
    canvas.draw.text((MARGIN + 38 * S, canvas.y + 5 * S), name, font=f, fill=INK)
    x = MARGIN + 38 * S + f.getlength(name) + 8 * S
    canvas.draw.text((x, canvas.y + 8 * S), note, font=font(SMALL), fill=SOFT)
    canvas.y += 38 * S


def draw_slack(message: dict[str, Any], path: Path, note: str) -> None:
    """One Slack message as the phone app lays it out."""
    canvas = Canvas()
    _app_line(canvas, "probecast", note)
    blocks = message.get("blocks") or []
    if not blocks:
        canvas.rich(slack_runs(message.get("text") or ""), BODY)
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            canvas.text(_emoji(block["text"]["text"]), TITLE, bold=True)
            canvas.gap(4)
        elif kind == "section":
            if block.get("text"):
                canvas.rich(slack_runs(block["text"]["text"]), BODY)
            fields = block.get("fields") or []
            half = (WIDTH - 2 * MARGIN - 12 * S) // 2
            for i in range(0, len(fields), 2):  # Slack's two columns, on a phone too
                top, bottom = canvas.y, canvas.y
                for j, field in enumerate(fields[i : i + 2]):
                    canvas.y = top
                    canvas.rich(slack_runs(field["text"]), BODY, MARGIN + j * (half + 12 * S), half)
                    bottom = max(bottom, canvas.y)
                canvas.y = bottom + 4 * S
            canvas.gap(6)
        elif kind == "context":
            for element in block["elements"]:
                canvas.rich(slack_runs(element.get("text", ""), colour=SOFT), SMALL)
            canvas.gap(6)
        elif kind == "actions":
            canvas.buttons(
                [(e["text"]["text"], e.get("style", "default")) for e in block["elements"]]
            )
        elif kind == "image":
            canvas.text(f"[image: {block.get('alt_text', '')}]", SMALL, colour=SOFT)
    canvas.save(path)


def draw_slack_confirm(confirm: dict[str, Any], path: Path) -> None:
    """A button's confirm dialog: Slack's own modal over the message."""
    canvas = Canvas()
    canvas.image.paste("#5e5e5e", (0, 0, WIDTH, 8000))
    top = canvas.y = 40 * S
    box = (MARGIN, top, WIDTH - MARGIN, 0)
    inner = MARGIN + 16 * S
    canvas.y += 16 * S
    canvas.draw.rectangle((box[0], top, box[2], 8000), fill="white")
    canvas.text(confirm["title"]["text"], TITLE, bold=True, x=inner)
    canvas.gap(6)
    canvas.rich([[Run_(line)] for line in confirm["text"]["text"].split("\n")], BODY, inner,
                WIDTH - 2 * inner)  # fmt: skip
    canvas.gap(10)
    canvas.buttons([(confirm["deny"]["text"], "default"), (confirm["confirm"]["text"], "danger")])
    bottom = canvas.y + 8 * S
    canvas.image.paste("#5e5e5e", (0, bottom, WIDTH, 8000))
    canvas.y = bottom + 20 * S
    canvas.save(path)


def draw_discord(message: dict[str, Any], path: Path, note: str, now: float) -> None:
    """One Discord message as the phone app lays it out: fields one per row."""
    canvas = Canvas()
    _app_line(canvas, "probecast", note)
    if message.get("content"):
        canvas.rich(discord_runs(message["content"], now), BODY)
        canvas.gap(4)
    for embed in message.get("embeds") or []:
        top = canvas.y
        x = MARGIN + 12 * S
        canvas.y += 10 * S
        if embed.get("title"):
            canvas.rich(discord_runs(f"**{embed['title']}**", now), BODY + S, x)
            canvas.gap(4)
        if embed.get("description"):
            canvas.rich(discord_runs(embed["description"], now), BODY - S, x)
            canvas.gap(6)
        for item in embed.get("fields") or []:  # one per row: a phone stacks them
            canvas.rich(discord_runs(f"**{item['name']}**", now), BODY - S, x)
            canvas.rich(discord_runs(item["value"], now), BODY - S, x)
            canvas.gap(4)
        if embed.get("image"):
            canvas.text(f"[image: {embed['image'].get('url')}]", SMALL, colour=SOFT, x=x)
        if embed.get("footer"):
            canvas.rich(discord_runs(embed["footer"]["text"], now, colour=SOFT), SMALL, x)
        canvas.y += 10 * S
        colour = f"#{int(embed.get('color', 0x5865F2)):06x}"
        canvas.draw.rectangle((MARGIN, top, MARGIN + 3 * S, canvas.y), fill=colour)
        canvas.draw.rectangle((MARGIN + 3 * S, top, WIDTH - MARGIN, canvas.y), outline="#dddddd")
        canvas.gap(6)
    for row in message.get("components") or []:
        styles = {1: "primary", 2: "default", 4: "danger"}
        canvas.buttons([(c["label"], styles.get(c["style"], "default")) for c in row["components"]])
    for attachment in message.get("attachments") or []:
        canvas.text(f"▣ {attachment.get('filename')}", SMALL, colour=SOFT)
    canvas.save(path)


# -- the run ------------------------------------------------------------------------------


@dataclass
class Reporter:
    """Posts a training run's events the way the reporter does: numbered, on a clock."""

    http: httpx.AsyncClient
    clock: FakeClock
    run_id: str = ""
    token: str = ""
    seq: int = 0
    step: int = 0
    t: float = 0.0
    pending: list[dict[str, Any]] = field(default_factory=list)

    async def register(self) -> str:
        response = await self.http.post(
            "/v1/runs",
            json={
                "name": "llm",
                "target_steps": 20_000,
                "eval_every": 1_200,
                "usd_per_hour": 0.4,
                "kill_by": "signal",
                "gpus": [{"name": "NVIDIA GeForce RTX 4090", "count": 1, "vram_mib": 24564}],
            },
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        run = response.json()
        self.run_id, self.token = run["run_id"], run["run_token"]
        return self.run_id

    async def post(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        for event in events:
            self.seq += 1
            event["seq"] = self.seq
        response = await self.http.post(
            f"/v1/runs/{self.run_id}/events",
            json={"seq_from": events[0]["seq"], "sent_at": self.clock.now, "events": events},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def minute(self, step_s: float, eval_s: float = 40.0) -> None:
        """A minute of training at ``step_s`` a step, with an eval every 1,200 steps; an
        eval that runs past the minute ends in the next one (no event from the future)."""
        end = self.clock.advance(60)
        self.t = max(self.t, end - 60)
        while self.t + step_s <= end:
            self.t += step_s
            self.step += 1
            self.pending.append(
                {"kind": "step", "t": self.t, "step": self.step, "loss": 3 / self.step**0.3}
            )
            if self.step % 1_200 == 0:
                mark = {"kind": "phase", "phase": "eval"}
                self.pending.append({**mark, "t": self.t, "edge": "start"})
                self.t += eval_s
                self.pending.append({**mark, "t": self.t, "edge": "end"})
        due = [e for e in self.pending if e["t"] <= end]
        self.pending = [e for e in self.pending if e["t"] > end]
        await self.post([*due, {"kind": "sample", "t": end, "host": {"cpu_pct": 40.0}}])


async def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


Kill = Callable[[], Awaitable[None]]
Moment = Callable[[str], None]


async def full_run(app: App, reporter: Reporter, kill_from_alert: Kill, moment: Moment) -> None:
    """Evals, a slowdown, recovery, a second slowdown (the alert reopens), a kill;
    ``moment`` keeps the channel's messages as they stand mid-run, before later edits."""
    run_id = await reporter.register()
    for minute in range(43):
        if minute in (17, 26):
            moment(f"minute-{minute}")
        step_s = 1.5 if 14 <= minute < 20 or 36 <= minute < 43 else 0.5
        await reporter.minute(step_s)
        await app.service.check(run_id)
        if minute in (29, 41):  # the half-hourly check-in, in the status message's thread
            await app.service.checkin(run_id)
    moment("before-kill")
    await kill_from_alert()
    reporter.clock.advance(2)  # the reporter's next post takes the kill; its child exits
    ack = await reporter.post([{"kind": "sample", "t": reporter.clock.now}])
    (command,) = ack["commands"]
    reporter.clock.advance(3)
    await reporter.post([{"kind": "exit", "t": reporter.clock.now, "return_code": -15}])
    outcome = await reporter.http.post(
        f"/v1/runs/{run_id}/commands/{command['id']}",
        json={"state": "done", "detail": "SIGTERM sent; exited in 3 s", "t": reporter.clock.now},
        headers={"Authorization": f"Bearer {reporter.token}"},
    )
    assert outcome.status_code == 200, outcome.text
    await wait_for(lambda: app.store.get_run(run_id).final_posted_at is not None)  # type: ignore[union-attr]
    await app.service.check(run_id)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "message"


async def render_slack(out: Path, tmp: Path) -> list[Path]:
    from tests.fake_slack import (
        BOT_TOKEN,
        CHANNEL_ID,
        SIGNING_SECRET,
        FakeSlack,
        block_action_body,
        sign,
        slash_command_body,
    )

    fake = FakeSlack()
    await fake.start()
    clock = FakeClock(T0)
    settings = make_settings(
        tmp, killers=SLACK_KILLER, table_deadline_s=600, checkin_interval_s=1800,
        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_CHANNEL=CHANNEL_ID, SLACK_API_URL=fake.api_url,
    )  # fmt: skip
    app = build(settings, clock=clock)
    server = await start_server(app)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:

            async def slack_post(body: bytes) -> None:
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    **sign(body, SIGNING_SECRET),
                }
                assert (await http.post("/slack/events", content=body, headers=headers)).is_success

            async def kill_from_alert() -> None:
                alert = next(
                    m for m in fake.messages.values()
                    if m["text"].startswith(("Back: Throughput", "Throughput"))
                )  # fmt: skip
                before = len(fake.response_url_posts)
                await slack_post(
                    block_action_body(
                        action_id("kill", reporter.run_id),
                        reporter.run_id,
                        user_id=SLACK_KILLER,
                        message_ts=alert["ts"],
                        response_url=fake.response_url("kill"),
                        message=alert,
                    )  # fmt: skip
                )
                await wait_for(lambda: len(fake.response_url_posts) > before)

            moments: list[tuple[str, dict[str, Any]]] = []

            def moment(label: str) -> None:
                for m in sorted(fake.messages.values(), key=lambda m: float(m["ts"])):
                    if m.get("thread_ts") is None:  # the status message and the alerts
                        moments.append((label, copy.deepcopy(m)))

            reporter = Reporter(http, clock)
            await full_run(app, reporter, kill_from_alert, moment)
            for text in ("status", "runs"):
                before = len(fake.response_url_posts)
                await slack_post(
                    slash_command_body(
                        "/probecast",
                        text,
                        user_id=SLACK_KILLER,
                        response_url=fake.response_url(text),
                    )  # fmt: skip
                )
                await wait_for(lambda b=before: len(fake.response_url_posts) > b)  # type: ignore[misc]
    finally:
        await server.stop()
        app.store.close()
        await fake.stop()
    folder = out / "slack"
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    messages = sorted(fake.messages.values(), key=lambda m: float(m["ts"]))
    for message in messages:
        where = "in thread" if message.get("thread_ts") else "in #channel"
        path = folder / f"{len(paths) + 1:02d}-{_slug(message['text'])}.png"
        draw_slack(message, path, where)
        paths.append(path)
        for block in message.get("blocks") or []:
            for element in block.get("elements") or []:
                if element.get("type") == "button" and element.get("confirm"):
                    path = folder / f"{len(paths) + 1:02d}-confirm-{_slug(message['text'])}.png"
                    draw_slack_confirm(element["confirm"], path)
                    paths.append(path)
    for label, message in moments:
        path = folder / f"{len(paths) + 1:02d}-{label}-{_slug(message['text'])}.png"
        draw_slack(message, path, f"in #channel, {label.replace('-', ' ')}")
        paths.append(path)
    for answer in fake.response_url_posts:
        path = folder / f"{len(paths) + 1:02d}-only-you-{_slug(answer.get('text') or '')}.png"
        draw_slack(answer, path, "only visible to you")
        paths.append(path)
    return paths


async def render_discord(out: Path, tmp: Path) -> list[Path]:
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    from tests.fake_discord import (
        BOT_TOKEN,
        CHANNEL_ID,
        EPHEMERAL,
        GUILD_ID,
        KILL_ROLE_ID,
        KILL_ROLE_NAME,
        FakeDiscord,
    )

    fake = FakeDiscord()
    await fake.start()
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    clock = FakeClock(T0)
    settings = make_settings(
        tmp, table_deadline_s=600, checkin_interval_s=1800, DISCORD_BOT_TOKEN=BOT_TOKEN,
        DISCORD_CHANNEL_ID=CHANNEL_ID, DISCORD_GUILD_ID=GUILD_ID,
        DISCORD_API_URL=fake.api_url, DISCORD_GATEWAY_URL=fake.gateway_url,
        discord_kill_role=KILL_ROLE_NAME,
    )  # fmt: skip
    app = build(settings, clock=clock)
    server = await start_server(app)
    try:
        await fake.wait_ready()
        fake.members[DISCORD_KILLER] = [KILL_ROLE_ID]
        async with httpx.AsyncClient(base_url=server.url) as http:
            reporter = Reporter(http, clock)

            async def kill_from_alert() -> None:
                alert = next(
                    m for m in fake.messages.values()
                    if m["embeds"] and "Throughput" in m["embeds"][0].get("title", "")
                )  # fmt: skip
                pressed = await fake.click(
                    alert["id"], action_id("kill", reporter.run_id), user_id=DISCORD_KILLER
                )
                (question,) = await fake.wait_answer(pressed)
                confirm = await fake.click(
                    question["id"], action_id("confirm-kill", reporter.run_id),
                    user_id=DISCORD_KILLER,
                )  # fmt: skip
                await fake.wait_answer(confirm)

            moments: list[tuple[str, dict[str, Any]]] = []

            def moment(label: str) -> None:
                for m in sorted(fake.messages.values(), key=lambda m: int(m["id"])):
                    if m["channel_id"] == CHANNEL_ID and not int(m.get("flags") or 0) & EPHEMERAL:
                        moments.append((label, copy.deepcopy(m)))

            await full_run(app, reporter, kill_from_alert, moment)
            asked = await fake.slash(
                "probecast", [{"type": 1, "name": "status", "options": []}], user_id=DISCORD_KILLER
            )
            await fake.wait_answer(asked)
    finally:
        await server.stop()
        app.store.close()
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved
        await fake.stop()
    folder = out / "discord"
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for message in sorted(fake.messages.values(), key=lambda m: int(m["id"])):
        title = (message.get("embeds") or [{}])[0].get("title") or message.get("content") or ""
        where = "only you can see this" if int(message.get("flags") or 0) & EPHEMERAL else (
            "#channel" if message["channel_id"] == CHANNEL_ID else "in thread"
        )  # fmt: skip
        path = folder / f"{len(paths) + 1:02d}-{_slug(title)}.png"
        draw_discord(message, path, where, clock.now)
        paths.append(path)
    for label, message in moments:
        title = (message.get("embeds") or [{}])[0].get("title") or ""
        path = folder / f"{len(paths) + 1:02d}-{label}-{_slug(title)}.png"
        draw_discord(message, path, f"#channel, {label.replace('-', ' ')}", clock.now)
        paths.append(path)
    return paths


async def main_async(out: Path) -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "s").mkdir()
        (Path(tmp) / "d").mkdir()
        return [
            *await render_slack(out, Path(tmp) / "s"),
            *await render_discord(out, Path(tmp) / "d"),
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="/tmp/phone", type=Path)
    args = parser.parse_args(argv)
    paths = asyncio.run(main_async(args.out))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
