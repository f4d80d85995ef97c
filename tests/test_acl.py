"""The production broker refuses what each role may not do: a real Mosquitto on the config from
assets/mosquitto, with the accounts and ACL `vuoro provision` wrote, for two halls at once.

No test waits for a while to see that nothing came: Mosquitto routes a publish before it acknowledges
it, and delivers to one client in order, so once a client's own *sentinel* (a message it may send
and read) has come back to it, anything routed to it before has come too.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker import protocol as p
from broker.client import CommandError, HallClient
from broker.config import HallConfig
from broker.credentials import Credentials
from broker.mqtt import BrokerAddress, session_client_id
from broker.service import HallService
from tests.support.brokers import mosquitto_binary
from tests.support.secured import SecuredBroker, broker_dir, hall_named, start_secured
from tests.support.wait import CONNECT_S, REPLY_S

pytestmark = pytest.mark.mosquitto

NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87
ACCEPTED = (0, 16)  # success, or 0x10 "no matching subscribers"
HALL, OTHER = "kvarnby", "annexe"
T, A = p.Topics(HALL), p.Topics(OTHER)  # A: the annexe


@pytest.fixture(scope="module")
def provisioned(hall: HallConfig) -> Iterator[Path]:
    """Both halls in one folder: kvarnby hashed by mosquitto_passwd, the annexe by our own PBKDF2."""
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run bin/test, which installs it")
    directory = broker_dir()
    start_secured(directory, [hall, hall_named(hall, OTHER)], hashers=["auto", "python"]).close()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def secured(provisioned: Path, hall: HallConfig) -> Iterator[SecuredBroker]:
    """A fresh broker (no retained leftovers) on the provisioned files."""
    broker = start_secured(provisioned, [hall, hall_named(hall, OTHER)], hashers=["auto", "python"])
    yield broker
    broker.close()


class Account:
    """One account's MQTT client, speaking MQTT 5 (reason codes) or 3.1.1, recording what it gets."""

    def __init__(self, secured: SecuredBroker, hall_id: str, name: str, *, version: int = mqtt.MQTTv5,
                 tls: bool = False, password: str | None = None, username: str | None = None,
                 client_id: str = "") -> None:
        self.creds: Credentials | None = secured.credentials(hall_id, name) if name else None
        self.topics = p.Topics(hall_id)
        self.version = version
        self.messages: list[tuple[str, bytes]] = []
        self.sentinels: set[tuple[str, bytes]] = set()
        self.arrived = threading.Condition()
        self.connack: Any = None
        self.connected = threading.Event()
        self.acks: dict[int, Any] = {}
        self.subacks: dict[int, list[Any]] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"acl-{uuid.uuid4().hex[:8]}",
                                  protocol=version)
        user = username if username is not None else self.creds.username if self.creds else None
        if user is not None:
            self.client.username_pw_set(user, password if password is not None else
                                        self.creds.password if self.creds else None)
        if tls:
            assert self.creds is not None and self.creds.ca_file
            self.client.tls_set(ca_certs=self.creds.ca_file)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_ack
        self.client.on_subscribe = self._on_suback
        self.port = secured.tls_port if tls else secured.port

    def connect(self) -> Any:
        """Connect and return the CONNACK reason (paho's ReasonCode)."""
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.connected.wait(CONNECT_S), "no CONNACK"
        return self.connack

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connack = reason
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.arrived:
            self.messages.append((message.topic, bytes(message.payload)))
            self.arrived.notify_all()

    def _on_ack(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self.arrived:
            self.acks[mid] = reason
            self.arrived.notify_all()

    def _on_suback(self, client: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        with self.arrived:
            self.subacks[mid] = list(reasons)
            self.arrived.notify_all()

    def _wait(self, predicate: Any) -> None:
        with self.arrived:
            assert self.arrived.wait_for(predicate, timeout=REPLY_S), "the broker did not answer"

    def publish(self, topic: str, payload: bytes = b"{}", *, retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code (always 0 on MQTT 3.1.1)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self._wait(lambda: info.mid in self.acks)
        return int(self.acks[info.mid].value)

    def subscribe(self, *filters: str) -> list[int]:
        """Subscribe and return the SUBACK's reason codes (granted QoS, or 128 / 0x87 for a refusal)."""
        _, mid = self.client.subscribe([(f, 1) for f in filters])
        self._wait(lambda: mid in self.subacks)
        return [int(r.value) for r in self.subacks[mid]]

    def settle(self) -> None:
        """Send a sentinel this account may send and read, and wait for it: all routed before it is here."""
        assert self.creds is not None
        if self.creds.role == "server":
            topic = self.topics.state("test-sentinel")
        else:
            topic = self.topics.device(self.creds.role, self.creds.device)
        self.subscribe(topic)
        token = uuid.uuid4().hex.encode()
        self.sentinels.add((topic, token))
        self.publish(topic, token)
        self._wait(lambda: (topic, token) in self.messages)

    def got(self, topic_filter: str) -> list[tuple[str, bytes]]:
        with self.arrived:
            return [(t, b) for t, b in self.messages
                    if mqtt.topic_matches_sub(topic_filter, t) and (t, b) not in self.sentinels]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def accounts(secured: SecuredBroker) -> Iterator[Any]:
    made: list[Account] = []

    def make(hall_id: str, name: str, **kw: Any) -> Account:
        account = Account(secured, hall_id, name, **kw)
        reason = account.connect()
        assert not reason.is_failure, f"{name} of {hall_id} was refused: {reason}"
        made.append(account)
        return account

    yield make
    for account in made:
        account.close()


# ---------------------------------------------------------------- forbidden publishes

# (account, topic it must not publish on): every way of posing as someone else
FORBIDDEN_PUBLISH = [
    ("kiosk-K1", T.cmd("kiosk", "K2")),              # another kiosk
    ("kiosk-K1", T.cmd("counter", "1")),             # a counter: call a number
    ("kiosk-K1", T.cmd("admin", "K1")),              # IT
    ("kiosk-K1", T.reply("kiosk", "K1")),            # the server's answer to itself
    ("kiosk-K1", T.state_calls()),                   # the calls board
    ("kiosk-K1", T.event(p.TICKET_CALLED)),          # the event log
    ("kiosk-K1", T.server()),                        # the server's presence
    ("kiosk-K1", T.device("counter", "1")),          # another device's presence
    ("kiosk-K1", A.cmd("kiosk", "K1")),              # the same kiosk id in another hall
    ("counter-1", T.cmd("counter", "2")),            # another counter
    ("counter-1", T.cmd("kiosk", "K1")),             # draw tickets
    ("counter-1", T.cmd("admin", "1")),
    ("counter-1", T.reply("counter", "2")),
    ("counter-1", T.state_counter("1")),             # its own state: only the server writes state
    ("counter-1", T.event(p.TICKET_DONE)),
    ("counter-1", T.device("display", "entrance")),
    ("counter-1", A.cmd("counter", "1")),
    ("display-entrance", T.cmd("kiosk", "entrance")),
    ("display-entrance", T.cmd("counter", "1")),
    ("display-entrance", T.cmd("admin", "entrance")),
    ("display-entrance", T.reply("counter", "1")),
    ("display-entrance", T.state_calls()),
    ("display-entrance", T.event(p.TICKET_CALLED)),
    ("display-entrance", T.server()),
    ("display-entrance", T.device("display", "upstairs")),
    ("display-entrance", A.device("display", "entrance")),
    ("web-web", T.cmd("kiosk", "web")),              # the visitors' web server: no tickets,
    ("web-web", T.cmd("counter", "1")),              # no calls,
    ("web-web", T.cmd("admin", "web")),              # no IT commands,
    ("web-web", T.cmd("web", "other")),              # no other web server's commands
    ("web-web", T.reply("web", "web")),
    ("web-web", T.event(p.TICKET_FEEDBACK)),         # feedback reaches the log only through the server
    ("web-web", T.state_stats()),
    ("web-web", T.device("display", "entrance")),
    ("web-web", A.cmd("web", "web")),
    ("admin-it", T.reply("kiosk", "K1")),            # IT may command, not answer as the server
    ("admin-it", T.state_hall()),
    ("admin-it", T.event(p.TICKET_ISSUED)),
    ("admin-it", T.server()),
    ("admin-it", A.cmd("admin", "it")),
    ("server", A.cmd("kiosk", "K1")),                # a hall server acts for its own hall only
    ("server", A.state_calls()),
    ("server", A.server()),
    ("server", "vuoro/annexe2/state/hall"),          # nor for a hall whose id merely starts alike
    ("server", "elsewhere/entirely"),
]


@pytest.mark.parametrize(("name", "topic"), FORBIDDEN_PUBLISH, ids=[f"{n}->{t}" for n, t in FORBIDDEN_PUBLISH])
def test_forbidden_publish_is_refused_and_never_delivered(accounts, name, topic):
    observer_hall = OTHER if topic.startswith(A.root) else HALL
    observer = accounts(observer_hall, "server")
    observer.subscribe("#")
    account = accounts(HALL, name)
    assert account.publish(topic, b'{"v":1,"id":"x","op":"next"}') == NOT_AUTHORIZED
    assert account.publish(topic, b'{"v":1}', retain=True) == NOT_AUTHORIZED
    observer.settle()
    assert observer.got(topic) == []
    late = accounts(observer_hall, "server")  # nothing was retained either
    late.subscribe(topic)
    late.settle()
    assert late.got(topic) == []


@pytest.mark.parametrize(("name", "topic"), [
    ("kiosk-K1", T.cmd("counter", "1")), ("counter-1", T.cmd("counter", "2")), ("display-entrance", T.state_calls()),
])
def test_forbidden_publish_over_mqtt_311_is_dropped(accounts, name, topic):
    """MQTT 3.1.1 has no reason codes: the broker acknowledges and drops; nobody receives it."""
    observer = accounts(HALL, "server")
    observer.subscribe("#")
    account = accounts(HALL, name, version=mqtt.MQTTv311)
    assert account.publish(topic) == 0
    observer.settle()
    assert observer.got(topic) == []


# ---------------------------------------------------------------- forbidden reading

# (account, filter it subscribes to, a topic under it the account must not read)
FORBIDDEN_READ = [
    ("kiosk-K1", T.all_commands(), T.cmd("counter", "1")),
    ("kiosk-K1", T.reply("kiosk", "K2"), T.reply("kiosk", "K2")),
    ("kiosk-K1", T.all_replies(), T.reply("counter", "1")),
    ("kiosk-K1", "vuoro/#", A.state_calls()),
    ("kiosk-K1", "#", A.event(p.TICKET_CALLED)),
    ("counter-1", T.all_commands(), T.cmd("counter", "2")),
    ("counter-1", T.reply("counter", "2"), T.reply("counter", "2")),
    ("counter-1", A.everything(), A.reply("counter", "1")),
    ("display-entrance", T.all_commands(), T.cmd("kiosk", "K1")),
    ("display-entrance", T.all_replies(), T.reply("kiosk", "K1")),
    ("display-entrance", A.everything(), A.state_hall()),
    ("web-web", T.all_commands(), T.cmd("kiosk", "K1")),
    ("web-web", T.all_replies(), T.reply("kiosk", "K1")),
    ("web-web", A.everything(), A.event(p.TICKET_ISSUED)),
    ("admin-it", T.all_commands(), T.cmd("kiosk", "K1")),
    ("admin-it", A.everything(), A.reply("admin", "it")),
    ("server", A.everything(), A.cmd("counter", "1")),
    ("server", "#", A.state_calls()),
]


@pytest.mark.parametrize(("name", "topic_filter", "topic"), FORBIDDEN_READ,
                         ids=[f"{n}<-{f}" for n, f, _ in FORBIDDEN_READ])
def test_forbidden_subscription_delivers_nothing(accounts, name, topic_filter, topic):
    """Mosquitto 2.0 grants a subscription and filters each message by the ACL at delivery: so the
    proof is that nothing arrives, neither live nor retained. (A SUBACK refusal would do as well.)"""
    owner = accounts(OTHER if topic.startswith(A.root) else HALL, "server")
    assert owner.publish(topic, b'{"v":1,"retained":true}', retain=True) in ACCEPTED
    account = accounts(HALL, name)
    codes = account.subscribe(topic_filter)
    assert owner.publish(topic, b'{"v":1,"live":true}') in ACCEPTED
    account.settle()
    assert account.got(topic) == [], f"{name} read {topic} (SUBACK {codes})"
    assert all(code in (0, 1, NOT_AUTHORIZED) for code in codes)


def test_other_hall_traffic_is_invisible_to_a_whole_hall(accounts):
    """Everything the annexe says, live and retained, reaches no account of kvarnby."""
    annexe = accounts(OTHER, "server")
    for topic in (A.state_hall(), A.state_calls(), A.server(), A.device("kiosk", "K1")):
        annexe.publish(topic, b'{"v":1}', retain=True)
    readers = [accounts(HALL, name) for name in ("server", "admin-it", "kiosk-K1", "counter-1", "display-entrance")]
    for reader in readers:
        reader.subscribe("#")
    for topic in (A.cmd("kiosk", "K1"), A.reply("kiosk", "K1"), A.event(p.TICKET_ISSUED)):
        annexe.publish(topic, b'{"v":1}')
    for reader in readers:
        reader.settle()
        assert reader.got(A.everything()) == []


# ---------------------------------------------------------------- logging in

@pytest.mark.parametrize("version", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_anonymous_client_is_refused(secured, version):
    anonymous = Account(secured, HALL, "", version=version)
    reason = anonymous.connect()
    anonymous.close()
    assert reason.is_failure and "authori" in str(reason).lower()


@pytest.mark.parametrize(("hall_id", "name", "password", "username"), [
    (HALL, "kiosk-K1", "not-the-password", None),        # wrong password (mosquitto_passwd's hash)
    (OTHER, "kiosk-K1", "not-the-password", None),       # wrong password (our PBKDF2 hash)
    (HALL, "kiosk-K1", None, "kvarnby/kiosk/K9"),        # an account that does not exist
    (HALL, "counter-1", None, "annexe/counter/1"),       # kvarnby's password under the annexe's account
])
def test_wrong_credentials_are_refused(secured, hall_id, name, password, username):
    account = Account(secured, hall_id, name, password=password, username=username)
    reason = account.connect()
    account.close()
    assert reason.is_failure


def test_both_password_formats_log_in_over_tls(secured):
    for hall_id in (HALL, OTHER):
        account = Account(secured, hall_id, "counter-1", tls=True)
        assert not account.connect().is_failure
        account.close()


def test_tls_refuses_a_broker_signed_by_another_ca(secured, tmp_path):
    from ops.provision import make_ca

    _, cert = make_ca("someone else's CA")
    (tmp_path / "ca.crt").write_bytes(cert)
    creds = secured.credentials(HALL, "kiosk-K1")
    address = BrokerAddress("127.0.0.1", secured.tls_port, tls=True).with_login(
        creds.username, creds.password, str(tmp_path / "ca.crt"))
    client = HallClient(address, HALL, "kiosk", "K1", presence=False)
    try:
        assert not client.start(timeout=CONNECT_S)  # as long as a device waits: it never gets in
        assert client.link.refusal is None  # never got as far as sending the password
    finally:
        client.close()


def test_kiosk_credentials_cannot_take_over_the_hall_servers_session(secured, hall, tmp_path):
    """A kiosk's credentials sit on a machine in a public hall. With the hall server's well-known client
    id they could knock the server off and take its queued commands; the server's id carries a suffix
    derived from its password, so the well-known id is just another client's."""
    address = secured.address(HALL, "server")
    service = HallService(hall, tmp_path / "hall.sqlite", address, always_open=True, version="5")
    assert service.start()
    try:
        assert service.link.client._client_id.decode() == session_client_id(f"vuoro-server-{HALL}", address)
        thief = Account(secured, HALL, "kiosk-K1", client_id=f"vuoro-server-{HALL}")
        reason = thief.connect()
        assert not reason.is_failure
        with HallClient(secured.address(HALL, "kiosk-K1"), HALL, "kiosk", "K1") as kiosk:
            assert kiosk.start()
            assert kiosk.request("issue", topic="general")["ticket"]["number"] == "A001"
        assert service.link.connects == 1  # never knocked off
        thief.close()
    finally:
        service.stop()


# ---------------------------------------------------------------- what is allowed works

@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_real_hall_works_through_the_acl(secured, hall, tmp_path, tls):
    """The hall server with its credentials; a kiosk draws a ticket, a counter calls it, a display sees
    the call, IT's terminal reads the state: every allowed path of the ACL, on the real server."""
    service = HallService(hall, tmp_path / "hall.sqlite", secured.address(HALL, "server"), always_open=True)
    assert service.start()
    clients: list[HallClient] = []

    def client(name: str, role: str, device: str, **kw: Any) -> HallClient:
        made = HallClient(secured.address(HALL, name, tls=tls), HALL, role, device, **kw)
        clients.append(made)
        assert made.start(), f"{name} could not connect"
        return made

    try:
        display = client("display-entrance", "display", "entrance", watch=True)
        kiosk = client("kiosk-K1", "kiosk", "K1", watch=True)
        counter = client("counter-1", "counter", "1", watch=True)
        it = client("admin-it", "admin", "it", watch=True)
        web = client("web-web", "web", "web", watch=True)
        ticket = kiosk.request("issue", topic="general", lang="fi")["ticket"]
        assert ticket["number"] == "A001"
        counter.request("open")
        called = counter.request("next")["ticket"]
        assert called["number"] == "A001"
        assert display.wait_for(lambda s: (s.get(p.CALLS_PART, {}).get("calls") or [{}])[0].get("number") == "A001")
        assert it.request("ping")["pong"] is True
        issued = web.request("replay", since=0)["events"]  # the web learns tokens from the log
        assert [e["ticket"]["token"] for e in issued if e["type"] == p.TICKET_ISSUED] == [ticket["token"]]
        with pytest.raises(CommandError) as early:  # the visit is still open
            web.request("feedback", token=ticket["token"], score=5)
        assert early.value.code == p.Err.VISIT_NOT_DONE
        counter.request("done", outcome="resolved")
        assert web.request("feedback", token=ticket["token"], score=5)["ticket"]["rated"] is True
        assert web.wait_for(lambda s: s.get(p.STATS_PART, {}).get("feedback", {}).get("hall", {}).get("ratings") == 1)
        assert display.wait_for(lambda s: s.get(p.device_part("kiosk", "K1"), {}).get("status") == p.ONLINE)
        with pytest.raises(CommandError) as refused:  # the server's own check, behind the broker's
            it.request("next")
        assert refused.value.code == p.Err.UNKNOWN_OP
    finally:
        for made in clients:
            made.close()
        service.stop()


def test_provisioned_acl_file_is_what_the_broker_enforces(provisioned):
    """The ACL the broker ran with is the one provision wrote, with both halls' blocks."""
    text = (provisioned / "acl").read_text()
    assert "user kvarnby/kiosk/K1\ntopic write vuoro/kvarnby/cmd/kiosk/K1\n" in text
    assert "user annexe/server\ntopic readwrite vuoro/annexe/#\n" in text
    users = [line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("user ")]
    assert "user kvarnby/web/web\ntopic write vuoro/kvarnby/cmd/web/web\n" in text
    assert len(users) == len(set(users)) == 2 * 12
    passwd = (provisioned / "passwd").read_text().splitlines()
    assert sorted(line.split(":")[0] for line in passwd) == sorted(users)
