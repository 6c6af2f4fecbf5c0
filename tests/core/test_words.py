"""Words people read name no environment variable (#23 P7): every card kind the core
builds without a run's estimate, each way it can go. The full Slack run in
tests/chat/test_slack.py covers the cards built from a live run."""

from __future__ import annotations

import itertools
import re

import pytest

from bot.core import kill as k
from bot.core import slash
from bot.core.card import Card
from bot.core.instance import render_disk_reminder
from bot.core.render import (
    TRIGGER_LABELS,
    RunView,
    after_kill_billing,
    ending_text,
    how_kill_stops,
    kill_confirm_text,
    render_alert_resolved,
)

ENV_NAME = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")
VIEW = RunView("r1", "llm", "running", 1000, "1× A100", 1.2, spent_usd=0.5, instance_id="7")


def card_text(card: Card) -> str:
    parts = [card.title, card.headline, *card.notes, card.footer]
    parts += [f"{f.label} {f.value}" for f in card.fields]
    parts += [f"{b.label} {b.confirm or ''}" for b in card.buttons]
    return "\n".join(parts)


def every_text() -> list[str]:
    texts = [slash.help_text()]
    for on_kill, instance, bot_key, reporter_key in itertools.product(
        ("stop", "destroy", "none"), ("7", None), (True, False), (True, False)
    ):
        via, why = k.plan_instance(on_kill, instance, bot_key, reporter_key)
        after = after_kill_billing(via, on_kill, instance, 1.2, 0.02)
        for kill_by in ("signal", "flag", None):
            how = how_kill_stops(kill_by, 60)
            texts += [why, kill_confirm_text(VIEW, projected_usd=3.0, how=how, after=after)]
    for trigger, how in itertools.product(
        TRIGGER_LABELS, ("finished", "failed", "killed", "new-normal")
    ):
        ending = ending_text(trigger, how, by="<@U1>", kept="kept by <@U2>")
        texts.append(card_text(render_alert_resolved(trigger, "detail", VIEW, 60.0, ending)))
    for can_destroy, usd_per_day in itertools.product((True, False), (0.5, None)):
        card = render_disk_reminder(
            "llm", "r1", "7", usd_per_day, stopped_for_s=86400, can_destroy=can_destroy
        )
        texts.append(card_text(card))
    return texts


@pytest.mark.parametrize("text", every_text())
def test_no_environment_variable_is_named(text: str) -> None:
    assert ENV_NAME.findall(text) == [], text
