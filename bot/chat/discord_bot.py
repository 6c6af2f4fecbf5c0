"""Discord's gateway bot: app commands, persistent buttons, and the runtime that runs it.

``ProbecastBot`` is a ``commands.Bot`` with one cog per feature: ``DecisionsCog``
(``/kill run:``, ``/keep run: duration:``) and ``ProbecastCog`` (``/probecast
status|table|runs|audit|compare|help``), synced to ``DISCORD_GUILD_ID`` so they appear at once.
Every button on our messages is one ``DynamicItem`` (``ProbecastButton``, custom_id
``probecast:<verb>:<run_id>``) registered in ``setup_hook``: buttons keep working on
messages posted before a restart, with no view stored anywhere.

Each handler is a translation: the interaction becomes one service call
(``handle_command`` / ``handle_action``, with the kill-role verdict as ``can_kill``) and
the returned `Card` becomes an embed and buttons. Answers only the caller needs are
ephemeral; an alert someone acted on is edited to say who decided what, and when.

``DiscordRuntime`` starts and stops the bot (or the webhook session) in the service's
event loop; ``discord_runtime_from(settings)`` builds it without starting anything.

Exceptions: ``DiscordStartError`` — Discord refused the bot token, or could not be
reached at start-up (one line to show).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.chat.base import decided_line, mention
from bot.chat.discord import BotSender, DiscordChat, WebhookSender
from bot.chat.discord_embeds import (
    ButtonSpec,
    button_style,
    card_buttons,
    card_content,
    card_to_embeds,
    with_decision,
)
from bot.core.card import Card, parse_action_id

log = logging.getLogger(__name__)

MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
# Decisions that close an alert: the message then says who decided what, and when.
DECIDED = {
    "confirm-kill": "Kill confirmed",
    "keep": "Kept",
    "snooze": "Snoozed",
    "new-normal": "Accepted as the new pace",
}
NOT_DECIDED_KINDS = frozenset({"refused", "usage", "kill-info"})
# Buttons on an ephemeral Confirm / Cancel question (Kill and Destroy both ask first).
ANSWERS_TO_A_QUESTION = frozenset(
    {"confirm-kill", "cancel-kill", "confirm-destroy", "cancel-destroy"}
)
MAX_ASKED = 512  # open Kill questions remembered, to mark their alert when confirmed
FAILED_TEXT = "something went wrong answering that; the bot's log says what"
Clock = Callable[[], float]


class Handlers(Protocol):
    """What the bot asks of the service (`bot.service.Service` is one)."""

    async def handle_command(
        self, text: str, user: str, *, can_kill: bool | None = None
    ) -> Card: ...

    async def handle_action(
        self, action: str, user: str, *, can_kill: bool | None = None
    ) -> Card: ...


class DiscordStartError(RuntimeError):
    """Discord refused to let the bot start; the message says what to fix."""


def user_label(user: discord.abc.User) -> str:
    """How a member appears in answers and the audit: a mention Discord renders as a name."""
    return mention(str(user.id))


def view_for(card: Card) -> discord.ui.View | None:
    """The card's buttons as a persistent view (no timeout), or None without buttons."""
    specs = card_buttons(card)
    if not specs:
        return None
    view = discord.ui.View(timeout=None)
    for spec in specs:
        view.add_item(ProbecastButton(spec))
    return view


def _message(card: Card) -> dict[str, Any]:
    return {"content": card_content(card), "embeds": card_to_embeds(card), "view": view_for(card)}


class ProbecastButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"probecast:(?P<verb>[a-z-]+):(?P<run_id>[^:]+)",
):
    """Every probecast button, whatever message carries it, before or after a restart."""

    def __init__(self, spec: ButtonSpec) -> None:
        super().__init__(
            discord.ui.Button(label=spec.label, custom_id=spec.custom_id, style=button_style(spec))
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ProbecastButton:
        label = getattr(item, "label", None) or match["verb"]
        return cls(ButtonSpec(str(label), match.string, "secondary"))

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        client = interaction.client
        if isinstance(client, ProbecastBot):
            await client.handle_button(interaction, self.custom_id)


class ProbecastBot(commands.Bot):
    def __init__(
        self,
        *,
        guild_id: int | None,
        kill_role: str | None,
        killer_ids: frozenset[str] = frozenset(),
        clock: Clock = time.time,
    ) -> None:
        # Slash commands and buttons arrive as interactions: no message content needed.
        intents = discord.Intents.none()
        intents.guilds = True  # roles, so the kill role can be checked by name
        # No voice here: discord.py's start-up warnings about voice libraries are noise.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, help_command=None)
        self.guild_id = guild_id
        self.kill_role = kill_role.strip().lstrip("@") if kill_role else None
        self.killer_ids = killer_ids
        self.clock = clock
        self.handlers: Handlers | None = None
        self.run_names: Callable[[], list[str]] = list
        # ephemeral question id -> (channel, message) of the alert whose Kill opened it
        self._asked: dict[int, tuple[int, int]] = {}
        self._marking = asyncio.Lock()

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ProbecastButton)
        await self.add_cog(DecisionsCog(self))
        await self.add_cog(ProbecastCog(self))
        try:
            if self.guild_id is not None:
                # Guild commands appear at once; global ones can take an hour to spread.
                guild = discord.Object(id=self.guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
            else:
                await self.tree.sync()
        except discord.HTTPException as exc:
            log.error(
                "Discord refused our slash commands (%s %s): invite the bot with the "
                "applications.commands scope; buttons still work",
                exc.status,
                exc.text,
            )

    # --- who may do what --------------------------------------------------------------

    def can_kill(self, user: discord.abc.User) -> bool:
        """The kill role decides; without one, PROBECAST_KILLERS may list Discord user ids."""
        if self.kill_role is None:
            return str(user.id) in self.killer_ids
        if not isinstance(user, discord.Member):
            return False  # outside a server there are no roles
        return any(self.kill_role in (str(role.id), role.name) for role in user.roles)

    def _explain_refusal(self, card: Card) -> Card:
        if card.kind != "refused":
            return card
        who = f"members with the role {self.kill_role}" if self.kill_role else "no one here"
        return replace(card, notes=(*card.notes, f"On Discord, {who} may confirm a kill."))

    def run_choices(self, current: str) -> list[app_commands.Choice[str]]:
        names = list(dict.fromkeys(reversed(self.run_names())))  # newest first, once each
        typed = current.strip().lower()
        matches = [n for n in names if n.lower().startswith(typed)]
        matches += [n for n in names if typed in n.lower() and n not in matches]
        return [app_commands.Choice(name=n[:100], value=n[:100]) for n in matches[:MAX_CHOICES]]

    # --- commands and buttons -----------------------------------------------------------

    def _service(self) -> Handlers:
        if self.handlers is None:
            raise RuntimeError("the Discord bot has no service bound")
        return self.handlers

    async def answer_command(self, interaction: discord.Interaction[Any], text: str) -> None:
        """A slash command: one service call, the answer only to whoever asked."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        user = interaction.user
        card = await self._ask(
            interaction,
            self._service().handle_command(text, user_label(user), can_kill=self.can_kill(user)),
        )
        await interaction.edit_original_response(**_message(card))

    async def _ask(self, interaction: discord.Interaction[Any], call: Awaitable[Card]) -> Card:
        """The service's answer; a bug becomes a short answer, never an endless "thinking…"."""
        try:
            return self._explain_refusal(await call)
        except Exception:
            log.exception("discord: answering interaction %s failed", interaction.id)
            return Card(title="probecast", headline=FAILED_TEXT, kind="usage")

    async def handle_button(self, interaction: discord.Interaction[Any], custom_id: str) -> None:
        parsed = parse_action_id(custom_id)
        verb = parsed[0] if parsed else ""
        clicked = interaction.message
        if verb in ANSWERS_TO_A_QUESTION:
            # On the ephemeral question: its buttons give way to the answer, so a second
            # press has nothing left to press.
            await interaction.response.defer()
        else:
            await interaction.response.defer(ephemeral=True, thinking=True)
        user = interaction.user
        card = await self._ask(
            interaction,
            self._service().handle_action(
                custom_id, user_label(user), can_kill=self.can_kill(user)
            ),
        )
        answer = await interaction.edit_original_response(**_message(card))
        if clicked is None:
            return
        if verb == "kill" and not clicked.flags.ephemeral:
            self._asked[answer.id] = (clicked.channel.id, clicked.id)
            while len(self._asked) > MAX_ASKED:  # questions nobody answered
                self._asked.pop(next(iter(self._asked)))
        asked = None
        if verb in ("confirm-kill", "cancel-kill"):
            asked = self._asked.pop(clicked.id, None)
        if verb not in DECIDED or card.kind in NOT_DECIDED_KINDS:
            return
        alert = asked or _alert_of(clicked)
        if alert is not None:
            when = datetime.fromtimestamp(self.clock(), UTC).strftime("%H:%M UTC")
            line = decided_line(DECIDED[verb], user_label(user), when, card.headline)
            await self._mark_decided(*alert, line)

    async def _mark_decided(self, channel_id: int, message_id: int, line: str) -> None:
        """Edit the alert: its buttons give way to who decided what, and when.

        The first decision stands: an alert without buttons was decided already (a second
        Confirm, a Keep pressed a moment after a Kill), so it is left as it is.
        """
        channel = self.get_partial_messageable(channel_id, guild_id=self.guild_id)
        async with self._marking:  # one at a time, so the second sees the first's edit
            try:
                alert = await channel.fetch_message(message_id)
                if not alert.components or not _has_snooze(alert):
                    return  # decided already, or not an alert (the status, the table)
                embeds = with_decision([dict(e.to_dict()) for e in alert.embeds], line)
                await alert.edit(embeds=[discord.Embed.from_dict(e) for e in embeds], view=None)
            except discord.HTTPException as exc:
                log.error("could not mark the alert decided: %s %s", exc.status, exc.text)


def _has_snooze(message: discord.Message) -> bool:
    """An alert is the message with a Snooze button."""
    return any(
        str(getattr(child, "custom_id", "") or "").startswith("probecast:snooze:")
        for row in message.components
        for child in getattr(row, "children", ())
    )


def _alert_of(clicked: discord.Message) -> tuple[int, int] | None:
    """The alert a decision closes: the clicked message itself, or the one whose Kill
    button opened the ephemeral question (Discord says which, even after a restart)."""
    if not clicked.flags.ephemeral:
        return clicked.channel.id, clicked.id
    meta = clicked.interaction_metadata
    if meta is None or meta.interacted_message_id is None:
        return None  # asked with /kill: there is no alert to close
    return clicked.channel.id, meta.interacted_message_id


class DecisionsCog(commands.Cog):
    """``/kill`` and ``/keep``: the two decisions about a run."""

    def __init__(self, bot: ProbecastBot) -> None:
        self.bot = bot

    @app_commands.command(name="kill", description="Stop a run's training and its instance")
    @app_commands.describe(run="the run (a unique prefix is enough)")
    @app_commands.guild_only()
    async def kill(self, interaction: discord.Interaction[Any], run: str) -> None:
        await self.bot.answer_command(interaction, f"/kill {run}")

    @app_commands.command(name="keep", description="Keep a run and silence its alerts")
    @app_commands.describe(run="the run (a unique prefix is enough)", duration="e.g. 30m, 2h, 1d")
    @app_commands.guild_only()
    async def keep(
        self, interaction: discord.Interaction[Any], run: str, duration: str | None = None
    ) -> None:
        await self.bot.answer_command(interaction, f"/keep {run} {duration or ''}".strip())

    @kill.autocomplete("run")
    @keep.autocomplete("run")
    async def _runs(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return self.bot.run_choices(current)


@app_commands.guild_only()
class ProbecastCog(commands.GroupCog, group_name="probecast", group_description="probecast"):
    """``/probecast status|table|runs|audit|compare|help``: reading, never deciding."""

    def __init__(self, bot: ProbecastBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="status", description="A run's status: ETA, spend, cost")
    @app_commands.describe(run="the run; the only active one when left out")
    async def status(self, interaction: discord.Interaction[Any], run: str | None = None) -> None:
        await self.bot.answer_command(interaction, f"/probecast status {run or ''}".strip())

    @app_commands.command(name="table", description="The option table: keep, switch or kill")
    @app_commands.describe(run="the run")
    async def table(self, interaction: discord.Interaction[Any], run: str) -> None:
        await self.bot.answer_command(interaction, f"/probecast table {run}")

    @app_commands.command(name="runs", description="Every run and where it stands")
    async def runs(self, interaction: discord.Interaction[Any]) -> None:
        await self.bot.answer_command(interaction, "/probecast runs")

    @app_commands.command(name="audit", description="Every decision on a run: who, when")
    @app_commands.describe(run="the run")
    async def audit(self, interaction: discord.Interaction[Any], run: str) -> None:
        await self.bot.answer_command(interaction, f"/probecast audit {run}")

    @app_commands.command(name="compare", description="A run against an earlier attempt")
    @app_commands.describe(run="the run", attempt="the earlier attempt's number (default: last)")
    async def compare(
        self, interaction: discord.Interaction[Any], run: str, attempt: int | None = None
    ) -> None:
        text = f"/probecast compare {run}" + (f" {attempt}" if attempt else "")
        await self.bot.answer_command(interaction, text)

    @app_commands.command(name="help", description="What probecast can do")
    async def help(self, interaction: discord.Interaction[Any]) -> None:
        await self.bot.answer_command(interaction, "/probecast help")

    @status.autocomplete("run")
    @table.autocomplete("run")
    @audit.autocomplete("run")
    @compare.autocomplete("run")
    async def _runs(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return self.bot.run_choices(current)


# --- the runtime: start, stop ------------------------------------------------------------


def point_discord_py_at(api_url: str, gateway_url: str) -> Callable[[], None]:
    """discord.py keeps its REST base and first gateway URL in class attributes, for the
    whole process; set them, and return how to put them back."""
    before = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    Route.BASE = api_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)

    def restore() -> None:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = before

    return restore


@dataclass
class DiscordRuntime:
    """The Discord side of one bot process: the chat, and the bot or webhook behind it."""

    chat: DiscordChat
    api_url: str
    gateway_url: str
    bot: ProbecastBot | None = None
    token: str | None = None
    webhook: WebhookSender | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None
    _restore: Callable[[], None] | None = None

    def bind(self, handlers: Handlers, run_names: Callable[[], list[str]]) -> None:
        """Give the bot the service it answers from (built after the chat it needs)."""
        if self.bot is not None:
            self.bot.handlers = handlers
            self.bot.run_names = run_names

    async def start(self) -> None:
        """Log in and connect in the background (or open the webhook's session).

        Raises `DiscordStartError` when Discord refuses the token or cannot be reached;
        nothing is left open.
        """
        self._restore = point_discord_py_at(self.api_url, self.gateway_url)
        if self.bot is not None:
            assert self.token is not None
            try:
                await self.bot.login(self.token)
            except discord.LoginFailure:
                await self.close()
                raise DiscordStartError(
                    "Discord refused DISCORD_BOT_TOKEN (401 Unauthorized): copy the token "
                    "again from the Developer Portal → your application → Bot → Reset Token"
                ) from None
            except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
                await self.close()
                raise DiscordStartError(
                    f"could not log in to Discord at {self.api_url} ({type(exc).__name__}: "
                    f"{exc}); restart the bot once Discord is reachable"
                ) from None
            self._tasks.append(asyncio.create_task(self._connect(self.bot)))
        if self.webhook is not None:
            self._session = aiohttp.ClientSession()
            self.webhook.open(self._session)
        self._tasks.append(asyncio.create_task(self.chat.retry_forever()))
        await self.chat.flush()  # what was posted before we could talk to Discord

    async def _connect(self, bot: ProbecastBot) -> None:
        """The gateway loop: discord.py reconnects and resumes on its own; this only
        reports the drops it gives up on (a revoked token, a missing intent)."""
        try:
            await bot.connect(reconnect=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.chat.warning = (
                f"Discord gateway closed ({type(exc).__name__}: {exc}); "
                "slash commands and buttons will not arrive"
            )
            log.error("%s", self.chat.warning)

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        if self.bot is not None:
            await asyncio.wait_for(self.bot.wait_until_ready(), timeout_s)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.bot is not None and not self.bot.is_closed():
            await self.bot.close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._restore is not None:
            self._restore()
            self._restore = None


def discord_runtime_from(
    *,
    bot_token: str | None,
    channel_id: int | None,
    guild_id: int | None,
    webhook_url: str | None,
    kill_role: str | None,
    killer_ids: frozenset[str],
    api_url: str,
    gateway_url: str,
    clock: Clock = time.time,
) -> DiscordRuntime | None:
    """The gateway bot when there is a token and a channel; else post-only through the
    webhook; else None. Nothing is started or connected here."""
    if bot_token is not None:
        if channel_id is None:
            raise ValueError(
                "DISCORD_BOT_TOKEN is set but DISCORD_CHANNEL_ID is not: which channel?"
            )
        bot = ProbecastBot(
            guild_id=guild_id, kill_role=kill_role, killer_ids=killer_ids, clock=clock
        )
        sender = BotSender(bot, channel_id, guild_id=guild_id, view_for=view_for)
        chat = DiscordChat(sender, f"channel {channel_id}")
        return DiscordRuntime(chat, api_url, gateway_url, bot=bot, token=bot_token)
    if webhook_url is not None:
        webhook = WebhookSender.from_url(webhook_url)
        chat = DiscordChat(webhook, "the webhook's channel")
        return DiscordRuntime(chat, api_url, gateway_url, webhook=webhook)
    return None


__all__ = [
    "DecisionsCog",
    "DiscordRuntime",
    "DiscordStartError",
    "Handlers",
    "ProbecastBot",
    "ProbecastButton",
    "ProbecastCog",
    "discord_runtime_from",
    "point_discord_py_at",
    "view_for",
]
