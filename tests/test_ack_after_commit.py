"""A QoS 1 command is acknowledged to the broker only after its batch is committed (DESIGN.md, rules of the house).

A real Mosquitto, real `vuoro server` processes sharing one SQLite file, and a kiosk that publishes each command
once with QoS 1 and never resends it, so that only the broker's redelivery can bring back a lost command. The
server is made to hold what it has received before its commit (VUORO_TEST_COMMIT_DELAY_S, broker/service.py)
and is killed with SIGKILL inside that window, twice; a third server without the hold must then answer every
command exactly once. A server that let paho acknowledge on arrival loses the held commands here: the broker
has forgotten them and the kiosk does not resend.
"""

from __future__ import annotations

import json
import re
import sqlite3
from functools import partial
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from broker import protocol as p
from tests.support.brokers import ServerProcess
from tests.support.mqtt_probe import Probe
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow
COMMANDS = 40
HOLD_S = 600  # longer than the test: the held batch is only ever ended by the kill
HOOK_LINE = re.compile(r"test hook: holding (\d+) received messages")
DEADLINE_S = 60.0  # a loaded machine starts a server and replays its log slowly; a passing test never waits this


def _issued(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT body FROM events WHERE type = 'ticket.issued' ORDER BY seq").fetchall()
    return [json.loads(body)["ticket"]["number"] for (body,) in rows]


def _holds(log: Path) -> list[int]:
    """How many messages each server writing to this log has held before a commit, in order."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return [int(m.group(1)) for m in HOOK_LINE.finditer(text)]


def _held_batches(log: Path, count: int) -> bool:
    return len(_holds(log)) >= count


@pytest.mark.parametrize("version", ["3.1.1", "5"])
def test_commands_received_but_not_committed_come_back_after_sigkill(mosquitto, hall, tmp_path, monkeypatch,
                                                                      version):
    db = tmp_path / "hall.sqlite"
    topics = p.Topics(hall.id)
    args = ["--mqtt-version", version]
    monkeypatch.setenv("VUORO_TEST_COMMIT_DELAY_S", str(HOLD_S))
    server = ServerProcess(db, mosquitto.address, extra=args).start()  # its persistent session now exists
    log = server.log  # every server on this database appends to it
    kiosk = Probe(mosquitto.address, topics.reply("kiosk", "K1"), version=mqtt.MQTTv311)
    try:
        ids = [p.new_command_id() for _ in range(COMMANDS)]
        for index, command_id in enumerate(ids):  # each waits for the broker's PUBACK: the broker has it
            kiosk.publish(topics.cmd("kiosk", "K1"), p.command_payload(
                "issue", command_id, topic=["general", "permits", "parking"][index % 3], lang="en"))

        for kill in (1, 2):  # the second server gets the commands again from the session, and is killed too
            wait_until(partial(_held_batches, log, kill), DEADLINE_S,
                       f"server {kill} to receive commands and hold them before the commit")
            server.kill()
            assert _issued(db) == [], "a held batch reached the log: the kill came after the commit"
            assert kiosk.received(topics.reply("kiosk", "K1")) == [], "a reply left before the commit"
            server = ServerProcess(db, mosquitto.address, extra=args)
            if kill == 2:
                monkeypatch.delenv("VUORO_TEST_COMMIT_DELAY_S")
            # the second server is held before its first commit, so it never gets to say "ready" (ready means
            # its online presence is acknowledged, which the hold delays): it is waited for through the hook
            server.start(wait_ready=kill == 2)

        # the third server answers each command once; a last command, sent after all that, shows that the
        # broker has nothing older left for the server (it sends a session's messages in order)
        reply_topic = topics.reply("kiosk", "K1")
        wait_until(lambda: {r["id"] for r in kiosk.received(reply_topic)} >= set(ids), DEADLINE_S,
                   lambda: f"replies to all {COMMANDS} commands, got "
                           f"{len({r['id'] for r in kiosk.received(reply_topic)} & set(ids))}")
        last = p.new_command_id()
        kiosk.publish(topics.cmd("kiosk", "K1"), p.command_payload("issue", last, topic="general", lang="en"))
        wait_until(lambda: any(r["id"] == last for r in kiosk.received(reply_topic)), DEADLINE_S,
                   "the reply to the last command")

        replies = [r for r in kiosk.received(reply_topic) if r["id"] != last]
        assert sorted(r["id"] for r in replies) == sorted(ids), "a command was answered twice or not at all"
        assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:3]
        numbers = [r["result"]["ticket"]["number"] for r in replies]
        logged = _issued(db)
        assert len(logged) == COMMANDS + 1 and len(set(logged)) == len(logged), "a command made two tickets"
        assert set(numbers) <= set(logged)
        assert len(_holds(log)) == 2, "the hook never held a batch: the window was not tested"
    finally:
        kiosk.close()
        server.kill()
