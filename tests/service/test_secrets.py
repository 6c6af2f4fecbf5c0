"""Secrets never leave where they belong (issue 10): with every credential set, a run
that registers, posts, fails auth, gets a kill through Slack and meets a Vast API that
echoes the key it was sent, the secrets appear in no log line, chat message, database
byte, error body or terminal output."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from bot.app import build, start_server
from bot.settings import Settings
from reporter.probe import Probe
from tests.fake_slack import CHANNEL_ID, FakeSlack, sign, slash_command_body
from tests.fake_vast import FakeVast
from tests.reporter.test_run import wait_for

INGEST = "ingest-SECRET-11111111"
SLACK_BOT = "xoxb-SECRET-22222222"
SIGNING = "signing-SECRET-33333333"
VAST_KEY = "vast-SECRET-44444444"
CONTAINER_KEY = "container-SECRET-55555555"
SECRETS = (INGEST, SLACK_BOT, SIGNING, VAST_KEY, CONTAINER_KEY)
KILLER = "U0KILLER"


def leaks(where: str, text: str) -> list[str]:
    return [f"{secret} in {where}" for secret in SECRETS if secret in text]


async def test_no_secret_appears_anywhere_it_could_leak(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    slack = FakeSlack(bot_token=SLACK_BOT)
    await slack.start()
    # A Vast that refuses our key and, like a careless server, echoes it back.
    vast = FakeVast({}, {}, api_key="the-real-key-is-something-else")
    await vast.start()
    for name, value in {
        "PROBECAST_DB": str(tmp_path / "bot.db"),
        "PROBECAST_INGEST_SECRET": INGEST,
        "PROBECAST_KILLERS": KILLER,
        "PROBECAST_KILL_GRACE_S": "1",
        "PROBECAST_POST_INTERVAL_S": "0.05",
        "SLACK_BOT_TOKEN": SLACK_BOT,
        "SLACK_SIGNING_SECRET": SIGNING,
        "SLACK_CHANNEL": CHANNEL_ID,
        "SLACK_API_URL": slack.api_url,
        "VAST_API_KEY": VAST_KEY,
        "VAST_API_URL": vast.url,
    }.items():
        monkeypatch.setenv(name, value)
    app = build(Settings(_env_file=None))
    server = await start_server(app)
    bodies: list[str] = []
    probe = Probe(
        "leaky", target_steps=10_000, url=server.url, spool=tmp_path / "spool.sqlite",
        sample_interval_s=None,
        environ={"PROBECAST_INGEST_SECRET": INGEST, "CONTAINER_ID": "4242",
                 "CONTAINER_API_KEY": CONTAINER_KEY, "VAST_CONTAINERLABEL": "C.4242"},
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            for n in range(1, 41):
                probe.step(n, loss=1.0)
            await wait_for(lambda: probe.acked_seq >= 40)
            run_id = app.store.list_runs()[0].id
            # Wrong credentials, each answered with an error body.
            for response in (
                await http.post("/v1/runs", json={"name": "x", "target_steps": 1},
                                headers={"Authorization": f"Bearer {INGEST}x"}),
                await http.post(f"/v1/runs/{run_id}/events", json={"seq_from": 1, "events": []},
                                headers={"Authorization": f"Bearer {SLACK_BOT}"}),
                await http.post("/slack/events", content=b"command=/kill&text=leaky",
                                headers={"X-Slack-Signature": "v0=" + "0" * 64,
                                         "X-Slack-Request-Timestamp": "1"}),
            ):  # fmt: skip
                assert response.status_code in (400, 401, 422), response.text
                bodies.append(response.text)
            await app.service.post_table(run_id)  # searches Vast: refused, key echoed
            body = slash_command_body(
                "/kill", "leaky confirm", user_id=KILLER, response_url=slack.response_url("k")
            )
            killed = await http.post(
                "/slack/events",
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         **sign(body, SIGNING)},
            )  # fmt: skip
            bodies.append(killed.text)
            probe.step(41)  # the kill rides back on this post's answer
            await wait_for(probe.kill_requested.is_set)
            await wait_for(lambda: (k := app.store.latest_kill(run_id)) and k.terminal)
            kill = app.store.latest_kill(run_id)
            assert kill is not None and kill.state == "failed"  # Vast refused the key
            assert "HTTP 401" in str(kill.failure)
            bodies.append((await http.get("/healthz")).text)
            bodies.append((await http.get("/metrics")).text)
    finally:
        probe.close(0, 10)
        await server.stop()
        app.store.close()
        await slack.stop()
        await vast.stop()
    sent_to_slack = json.dumps(
        [slack.posted, slack.updated, slack.ephemeral, slack.response_url_posts],
        default=repr,
        ensure_ascii=False,
    ) + repr(slack.uploads)
    assert "Kill failed · leaky" in sent_to_slack  # the failure did reach the phone
    logged = caplog.text + "\n".join(
        repr(r.args) + repr(r.exc_info) + (r.exc_text or "") for r in caplog.records
    )
    captured = capsys.readouterr()
    database = b"".join(p.read_bytes() for p in tmp_path.glob("bot.db*"))
    found = (
        leaks("a log line", logged)
        + leaks("a chat message", sent_to_slack)
        + leaks("an error body", "\n".join(bodies))
        + leaks("the terminal", captured.out + captured.err)
        + leaks("the database", database.decode("latin-1"))
    )
    assert found == []
    assert any(
        (r.authorization or "").endswith(VAST_KEY) for r in vast.received
    )  # the key was really used, so its absence above means something
