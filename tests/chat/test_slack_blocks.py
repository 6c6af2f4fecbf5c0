"""Cards as Slack Block Kit: every message within Block Kit's limits, readable on a phone.

Each test builds the blocks and then rebuilds them with ``slack_sdk.models`` (``Block.parse``
and ``validate_json``), so what Slack's own SDK would reject fails here first.
"""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.chat.slack_blocks import (
    KILL_CONFIRM_TEXT,
    card_fallback_text,
    card_to_blocks,
    ephemeral_text,
)
from bot.core.card import Button, Card, CardField, Table, action_id, parse_action_id
from bot.core.estimate import Scenarios
from bot.core.options import OptionRow, OptionTable
from bot.core.render import (
    RunView,
    render_alert,
    render_alert_resolved,
    render_checkin,
    render_option_table,
    render_runs,
    render_status,
)
from bot.core.triggers import Finding

RUN = RunView(
    run_id="a1b2c3d4e5f6",
    name="llama-8b-sft",
    state="running",
    target_steps=10_000,
    gpu_label="1× RTX 4090",
    usd_per_hour=0.42,
    last_event_age_s=35,
    spent_usd=1.87,
    alerts=("throughput",),
)


def _alert() -> Card:
    finding = Finding(
        trigger="throughput",
        detail="2.1 step/s, 38% below the probe's 3.4 step/s for 10 min",
        bottleneck="input",
        evidence=("GPU util 41% (p50)", "dataloader wait 62% of step time"),
        change_first="num_workers 2 → 8, pin_memory=True",
        at_step=4_200,
    )
    return render_alert(finding, None, RUN, repeat=False)


def _status() -> Card:
    base = render_status(None, RUN)
    return Card(
        title=base.title,
        headline="ETA 2h 10m (1h 50m–3h 35m) · spent $1.87 · projected $2.78",
        fields=(
            CardField("Step", "4,200/10,000 (42%)"),
            CardField("step/s", "2.1 (observed)"),
            CardField("Elapsed", "4h 27m"),
            CardField("Probe", "200/200 clean steps ✓"),
            *base.fields,
        ),
        buttons=base.buttons,
        kind="status",
    )


def _row(name: str, decision: Any, rate: float, observed: bool, reason: str = "") -> OptionRow:
    return OptionRow(
        gpu_option=name,
        usd_per_hour=0.42 if observed else 2.49,
        vram_gib=24 if observed else 80,
        cpu_ram_gib=64,
        tflops=165 if observed else 989,
        hbm_bw_gbs=1008 if observed else 3350,
        step_per_s=rate,
        observed=observed,
        time_h=Scenarios(opt=1.2, base=1.5, pess=2.4),
        cost_usd=Scenarios(opt=0.5, base=0.63, pess=1.01),
        setup_debug_tax=0.15,
        risks=("new host: setup and debugging time",) if not observed else (),
        decision=decision,
        reason=reason,
        finish_cost_usd=0.63,
    )


def _option_table() -> Card:
    rows = (
        _row("1× RTX 4090", "keep", 2.1, True),
        _row("1× H100 SXM", "switch", 9.8, False, "4.7× faster, finishes $1.10 cheaper"),
        _row("2× A100 80GB", "keep", 7.5, False, "faster but costs more to finish"),
        _row("1× L40S", "keep", 3.0, False),
    )
    return render_option_table(OptionTable(rows, missing=()), RUN)


def _kill_confirm() -> Card:
    """As ``ProbecastService.request_kill`` builds it."""
    return Card(
        title=f"Kill {RUN.name}?",
        headline=(
            "Stops the training process (SIGTERM, 120 s grace for a checkpoint, then SIGKILL)."
        ),
        fields=(
            CardField("Spent so far", "$1.87"),
            CardField("Projected if kept", "$2.78"),
            CardField("Instance", "keeps billing until it is stopped or destroyed"),
        ),
        notes=(f"Type `/kill {RUN.name} confirm` to go ahead, or `/kill {RUN.name} cancel`.",),
        buttons=(
            Button("Confirm kill", action_id("confirm-kill", RUN.run_id), "danger"),
            Button("Cancel", action_id("cancel-kill", RUN.run_id)),
        ),
        kind="confirm",
    )


def _huge() -> Card:
    """Everything too long at once: the limits must hold without losing the buttons."""
    long = "x" * 5000
    return Card(
        title="T" * 400,
        headline="<big> & " + "h" * 6000,
        fields=tuple(CardField(f"field {i} " + "L" * 300, f"{i}: " + long) for i in range(30)),
        table=Table(("a", "b"), (("1", "2"),)),
        notes=tuple(f"note {i} " + "n" * 900 for i in range(40)),
        buttons=(
            Button("K" * 100, action_id("kill", "r" * 40), "danger"),
            Button("Keep", action_id("keep", "r" * 40), "primary"),
            Button("bad id", action_id("kill", "z" * 300)),
        ),
        footer="f" * 4000,
        kind="alert",
    )


CARDS: dict[str, Card] = {
    "status": _status(),
    "status-bare": render_status(None, RUN),
    "checkin": render_checkin(None, RUN),
    "alert": _alert(),
    "alert-resolved": render_alert_resolved("throughput", "2.1 step/s", RUN, 1800),
    "option-table": _option_table(),
    "kill-confirm": _kill_confirm(),
    "runs-60": render_runs([(RUN, None)] * 60),
    "thirty-fields": Card(
        title="Many",
        headline="thirty short fields",
        fields=tuple(CardField(f"f{i}", f"v{i}") for i in range(30)),
    ),
    "huge": _huge(),
    "overflow": Card(
        title="Overflow",
        headline="more long fields than fifty blocks can hold",
        fields=tuple(CardField(f"f{i}", "v" * 2500) for i in range(80)),
        notes=("a note",),
        buttons=(Button("Kill…", action_id("kill", "r1"), "danger"),),
        footer="footer",
    ),
    "empty": Card(title="", headline=""),
}


def _texts(block: dict[str, Any]) -> list[str]:
    out = []
    if "text" in block:
        out.append(block["text"]["text"])
    out += [f["text"] for f in block.get("fields", [])]
    out += [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
    return out


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        # slack_sdk rebuilds and validates each block; raises SlackObjectFormationError
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
        assert parsed.to_dict() == block
        kind = block["type"]
        if kind == "header":
            assert block["text"]["type"] == "plain_text"
            assert 1 <= len(block["text"]["text"]) <= 150
        elif kind == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert 1 <= len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            for f in block.get("fields", []):
                assert 1 <= len(f["text"]) <= 2000
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= 10
            for e in block["elements"]:
                assert 1 <= len(e["text"]) <= 3000
        elif kind == "actions":
            assert 1 <= len(block["elements"]) <= 25
            for button in block["elements"]:
                assert button["type"] == "button"
                assert 1 <= len(button["text"]["text"]) <= 30
                assert len(button["action_id"]) <= 255
                assert parse_action_id(button["action_id"]) is not None
                assert len(button.get("value", "")) <= 2000
                assert button.get("style") in (None, "primary", "danger")
                confirm = button.get("confirm")
                if confirm:
                    assert len(confirm["title"]["text"]) <= 100
                    assert len(confirm["text"]["text"]) <= 300
                    assert len(confirm["confirm"]["text"]) <= 30
                    assert len(confirm["deny"]["text"]) <= 30
        else:
            pytest.fail(f"unexpected block type {kind}")
        for text in _texts(block):
            assert "```" not in text  # no monospace tables
    ids = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", list(CARDS))
def test_every_card_is_within_block_kit_limits(name: str) -> None:
    card = CARDS[name]
    assert_within_limits(card_to_blocks(card))
    assert_within_limits(card_to_blocks(card, decided="Kill confirmed by <@U123> at 14:05 UTC"))
    text = card_fallback_text(card)
    assert 1 <= len(text) <= 3000
    eph = ephemeral_text(card)
    assert 1 <= len(eph) <= 3000


def test_headline_comes_first_in_bold_then_fields() -> None:
    blocks = card_to_blocks(CARDS["status"])
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "llama-8b-sft", "emoji": True},
    }
    assert blocks[1]["type"] == "section"
    assert blocks[1]["text"]["text"].startswith("*ETA 2h 10m")
    assert blocks[1]["text"]["text"].endswith("*")
    grid = blocks[2]
    assert grid["type"] == "section"
    assert grid["fields"][0]["text"] == "*Step*\n4,200/10,000 (42%)"
    assert blocks[-1]["type"] == "actions"


def test_alert_buttons_kill_has_confirm_dialog() -> None:
    blocks = card_to_blocks(CARDS["alert"])
    assert blocks[0]["text"]["text"].startswith(":rotating_light: Throughput below expected")
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    kill, new_normal, keep, snooze = actions["elements"]
    # A throughput alert offers to adopt the pace (#22), with its own confirm dialog.
    assert new_normal["action_id"] == "probecast:new-normal:a1b2c3d4e5f6"
    assert new_normal["text"]["text"] == "New normal"
    assert new_normal["confirm"]["title"]["text"] == "New normal?"
    assert "(audited)" in new_normal["confirm"]["text"]["text"]
    assert kill["action_id"] == "probecast:kill:a1b2c3d4e5f6"
    assert kill["value"] == "a1b2c3d4e5f6"
    assert kill["style"] == "danger"
    assert kill["text"]["text"] == "Kill…"
    assert kill["confirm"]["text"]["text"] == KILL_CONFIRM_TEXT
    assert kill["confirm"]["confirm"]["text"] == "Kill"
    assert kill["confirm"]["deny"]["text"] == "Cancel"
    assert kill["confirm"]["style"] == "danger"
    assert keep["style"] == "primary" and "confirm" not in keep
    assert keep["text"]["text"] == "Keep (silence 2h)"
    assert "style" not in snooze and "confirm" not in snooze
    notes = [b for b in blocks if b["type"] == "context"]
    assert "dataloader wait 62%" in notes[0]["elements"][0]["text"]


def test_kill_confirm_card_buttons_do_not_ask_twice() -> None:
    blocks = card_to_blocks(CARDS["kill-confirm"])
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    confirm, cancel = actions["elements"]
    assert confirm["action_id"] == "probecast:confirm-kill:a1b2c3d4e5f6"
    assert confirm["style"] == "danger" and "confirm" not in confirm
    assert cancel["action_id"] == "probecast:cancel-kill:a1b2c3d4e5f6"
    # "keeps billing until it is stopped or destroyed" is too long for half a phone: stacked
    fields = blocks[2]
    assert "fields" not in fields
    assert "*Instance*\nkeeps billing until it is stopped or destroyed" in fields["text"]["text"]


def test_decided_replaces_the_buttons() -> None:
    decided = "Kill confirmed by <@U123> at 14:05 UTC"
    blocks = card_to_blocks(CARDS["alert"], decided=decided)
    assert not [b for b in blocks if b["type"] == "actions"]
    assert blocks[-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": decided}],  # the mention is not escaped
    }


def test_option_table_is_three_short_lines_and_no_monospace_table() -> None:
    card = CARDS["option-table"]
    blocks = card_to_blocks(card)
    sections = [b for b in blocks if b["type"] == "section"]
    headline = sections[0]["text"]["text"]
    assert headline.startswith("*SWITCH TO 1× H100 SXM · whole run")
    # the switch's own figures first; this run's are labelled, never read as the switch's
    assert "(staying: " in headline and headline.index("(staying: ") > headline.index("for $")
    lines = sections[1]["text"]["text"]
    assert lines.count("\n*") + 1 == 3  # this run and the two best alternatives
    assert "switch to 1× H100 SXM" in lines
    assert "HBM BW" not in str(blocks)  # the wide table is attached, not drawn
    text = str(blocks)
    assert "full table is attached (PNG, CSV)" in text  # said once, by the card's own note
    assert "full table attached (PNG, CSV)" not in text


def test_table_line_when_notes_do_not_mention_it() -> None:
    card = Card(title="t", headline="h", table=Table(("a", "b"), (("1", "2"), ("3", "4"))))
    blocks = card_to_blocks(card)
    assert blocks[-1]["type"] == "context"
    assert (
        "full table attached (PNG, CSV) · 2 rows × 2 columns" in blocks[-1]["elements"][0]["text"]
    )


def test_thirty_short_fields_split_into_sections_of_ten() -> None:
    blocks = card_to_blocks(CARDS["thirty-fields"])
    grids = [b for b in blocks if b["type"] == "section" and "fields" in b]
    assert [len(b["fields"]) for b in grids] == [10, 10, 10]
    assert grids[2]["fields"][-1]["text"] == "*f29*\nv29"


def test_many_fields_stay_under_fifty_blocks_and_keep_the_buttons() -> None:
    blocks = card_to_blocks(CARDS["runs-60"])
    assert len(blocks) <= 50
    blocks = card_to_blocks(CARDS["overflow"])
    assert len(blocks) == 50
    assert blocks[-4] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "… 36 more fields not shown"}],
    }
    assert [b["type"] for b in blocks[-3:]] == ["context", "context", "actions"]
    blocks = card_to_blocks(CARDS["huge"])
    assert len([b for b in blocks if b["type"] == "section"]) == 1 + 30
    actions = [b for b in blocks if b["type"] == "actions"]
    (kill, keep) = actions[0]["elements"]  # the button with a 300-char run id is left out
    assert kill["text"]["text"] == "K" * 29 + "…"
    assert keep["text"]["text"] == "Keep"


def test_long_text_is_clipped_and_escaped() -> None:
    blocks = card_to_blocks(CARDS["huge"])
    assert blocks[0]["text"]["text"].endswith("…")
    assert len(blocks[0]["text"]["text"]) == 150
    headline = blocks[1]["text"]["text"]
    assert headline.startswith("*&lt;big&gt; &amp; hhh")
    assert len(headline) <= 3000 and headline.endswith("…*")


def test_escaping_never_splits_an_entity() -> None:
    card = Card(title="t", headline="&" * 5000)
    headline = card_to_blocks(card)[1]["text"]["text"]
    assert headline[1:-2].replace("&amp;", "") == ""
    assert len(card_fallback_text(card)) <= 3000
    assert card_fallback_text(card).replace("&amp;", "").endswith("…")
    assert ephemeral_text(card).replace("&amp;", "").endswith("…")


def test_fallback_text_is_title_and_headline_and_never_empty() -> None:
    assert card_fallback_text(CARDS["alert"]).startswith(
        "Throughput below expected · llama-8b-sft: "
        "2.1 step/s, 38% below the probe's 3.4 step/s for 10 min · Spent $"
    )  # the lock screen shows what it costs too
    assert card_fallback_text(CARDS["empty"]) == "probecast update"
    assert card_to_blocks(CARDS["empty"]) == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "probecast update"}}
    ]


def test_ephemeral_text_lists_fields_and_how_to_confirm() -> None:
    text = ephemeral_text(CARDS["kill-confirm"])
    assert text.splitlines()[0] == "*Kill llama-8b-sft?*"
    assert "• *Spent so far*: $1.87" in text
    assert "`/kill llama-8b-sft confirm`" in text
    assert "Confirm kill" not in text  # buttons cannot work in a plain-text reply


def test_button_confirm_text_from_card_wins() -> None:
    """A button's own ``confirm`` text (what this kill does to this run) beats the default."""
    own = "Stops the process, then destroys instance 12345. Spent $1.87; nothing keeps billing."
    card = Card(
        title="t",
        headline="h",
        buttons=(Button("Kill…", action_id("kill", "r1"), "danger", own),),
    )
    (actions,) = [b for b in card_to_blocks(card) if b["type"] == "actions"]
    assert actions["elements"][0]["confirm"]["text"]["text"].startswith("Stops the process")
