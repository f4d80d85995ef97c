"""The live city overview (`vuoro overview`, a real process) on two bridged halls: staff only, every hall's
queues, waits and devices (online, paper, offline since) from the central broker, live over server-sent events,
and the same figures as Prometheus metrics, parsed by prometheus-client's own parser."""

from __future__ import annotations

import base64
import json
import select
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker import protocol as p
from broker.client import HallClient
from ops.provision import hash_password
from tests.support.brokers import ROOT, free_port
from tests.support.city import City, running_city
from tests.support.wait import CONNECT_S, REPLY_S, wait_until

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

HALLS = ["north", "south"]
BRIDGE_S = 10.0 + CONNECT_S
STAFF, PASSWORD = "anna", "correct horse battery"


@pytest.fixture
def city() -> Iterator[City]:
    with running_city(list(HALLS)) as town:
        yield town


@pytest.fixture
def overview(city: City) -> Iterator[str]:
    """`vuoro overview` on a free port; yields its URL."""
    staff = city.root / "staff.passwd"
    staff.write_text(f"{STAFF}:{hash_password(PASSWORD)}\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vuoro.cli", "overview", "--broker", city.central_address.url,
                             "--account", str(city.account("overview")), "--staff", str(staff),
                             "--listen", f"127.0.0.1:{port}", "--hall", str(city.halls["north"].file)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=open(city.root / "overview.log", "ab"),  # noqa: SIM115
                            text=True)
    try:
        assert proc.stdout is not None
        assert select.select([proc.stdout], [], [], CONNECT_S)[0], "vuoro overview said nothing"
        assert proc.stdout.readline().rstrip().endswith("ready")
        wait_until(lambda: _status(f"http://127.0.0.1:{port}/") == 401, CONNECT_S, "the overview listening")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)
        if proc.stdout is not None:
            proc.stdout.close()


def _request(url: str, auth: tuple[str, str] | None = (STAFF, PASSWORD)) -> urllib.request.Request:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    return request


def _status(url: str, auth: tuple[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(_request(url, auth), timeout=REPLY_S) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def _get(url: str) -> bytes:
    with urllib.request.urlopen(_request(url), timeout=REPLY_S) as response:
        return bytes(response.read())


def _state(base: str) -> dict[str, Any]:
    return {h["hall"]: h for h in json.loads(_get(f"{base}/state.json"))["halls"]}


def _metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(_get(f"{base}/metrics").decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_staff_only(overview: str) -> None:
    assert _status(f"{overview}/") == 401
    assert _status(f"{overview}/state.json", (STAFF, "wrong")) == 401
    assert _status(f"{overview}/state.json", ("mallory", PASSWORD)) == 401
    assert _status(f"{overview}/", (STAFF, PASSWORD)) == 200
    page = _get(f"{overview}/").decode()
    assert "EventSource" in page and "textContent" in page


def test_every_halls_queues_waits_and_devices_live(city: City, overview: str) -> None:
    def both_online() -> bool:
        state = _state(overview)
        return all(state.get(h, {}).get("server") == p.ONLINE and state[h]["queues"] for h in HALLS)

    wait_until(both_online, BRIDGE_S, lambda: f"both halls online with queues: {_state(overview)}")
    before = _state(overview)["north"]["queues"]["general"]["waiting"]
    north = city.halls["north"]
    kiosk = HallClient(north.address("kiosk-K1"), "north", "kiosk", "K1",
                       presence_fields={"printer": {"state": "paper_near_end"}})
    try:
        assert kiosk.start(CONNECT_S)
        kiosk.request("issue", topic="general")
        wait_until(lambda: _state(overview)["north"]["queues"]["general"]["waiting"] == before + 1, REPLY_S,
                   "the new ticket in north's queue on the overview")
        kiosk_row = wait_until(lambda: _device(_state(overview)["north"], "kiosk", "K1"), REPLY_S, "north's kiosk")
        assert kiosk_row["status"] == p.ONLINE and kiosk_row["printer"] == "paper_near_end"
        metrics = _metrics(overview)
        assert metrics[("vuoro_queue_waiting", (("hall", "north"), ("topic", "general")))] == before + 1
        assert metrics[("vuoro_hall_server_up", (("hall", "south"),))] == 1.0
        assert metrics[("vuoro_kiosk_paper_low", (("device", "K1"), ("hall", "north"),
                                                 ("state", "paper_near_end")))] == 1.0
        assert ("vuoro_queue_expected_wait_seconds", (("hall", "north"), ("topic", "general"))) in metrics
        # the live stream: its first message is the whole picture
        with urllib.request.urlopen(_request(f"{overview}/events"), timeout=REPLY_S) as stream:
            line = stream.readline()
        assert line.startswith(b"data: ")
        assert {h["hall"] for h in json.loads(line[6:])["halls"]} == set(HALLS)
    finally:
        kiosk.close()
    gone = wait_until(lambda: _device_not_online(_state(overview)["north"]), REPLY_S,
                      "north's kiosk stopped on the overview")
    assert gone["status"] == p.STOPPED and gone["since"] >= kiosk_row["since"]  # since when


def _device_not_online(hall: dict[str, Any]) -> dict[str, Any] | None:
    found = _device(hall, "kiosk", "K1")
    return found if found is not None and found["status"] != p.ONLINE else None


def _device(hall: dict[str, Any], role: str, device: str) -> dict[str, Any] | None:
    return next((d for d in hall["devices"] if d["role"] == role and d["device"] == device), None)


def test_a_hall_going_dark_shows(city: City, overview: str) -> None:
    wait_until(lambda: _state(overview).get("south", {}).get("server") == p.ONLINE, BRIDGE_S, "south online")
    south = city.halls["south"]
    assert south.server is not None
    south.server.stop()  # the hall server stops: its last will / goodbye says offline
    wait_until(lambda: _state(overview)["south"]["server"] != p.ONLINE, BRIDGE_S, "south offline on the overview")
    assert _metrics(overview)[("vuoro_hall_server_up", (("hall", "south"),))] == 0.0


def test_the_page_is_served_from_the_package() -> None:
    page = Path(ROOT / "city" / "overview.html").read_text()
    assert "innerHTML" not in page  # a hall's data is never markup


def test_the_page_in_the_staffs_language_in_a_browser(city: City, overview: str, tmp_path: Path) -> None:
    """Chromium, as staff open it: Finnish by ?lang=fi, every header and state in Finnish (a kiosk's paper low too),
    live without a reload, no console error; Arabic is right to left. Screenshots in the test's folder."""
    from tests.web_support import chromium, close_chromium, console_errors, screenshot_dir

    wait_until(lambda: all(_state(overview).get(h, {}).get("server") == p.ONLINE for h in HALLS), BRIDGE_S,
               "both halls online")
    kiosk = HallClient(city.halls["north"].address("kiosk-K1"), "north", "kiosk", "K1",
                       presence_fields={"printer": {"state": "paper_near_end"}})
    driver = chromium()
    try:
        assert kiosk.start(CONNECT_S)
        driver.set_window_size(1280, 800)
        login = base64.b64encode(f"{STAFF}:{PASSWORD}".encode()).decode()
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {login}"}})
        driver.get(f"{overview}/?lang=fi")
        body = lambda: driver.find_element("tag name", "body").text  # noqa: E731
        wait_until(lambda: "numeroautomaatti K1" in body() and "paperi vähissä" in body(), REPLY_S,
                   lambda: f"north's kiosk with its paper low, in Finnish: {body()!r}")
        text = body()
        assert text.startswith("Kaupungin asiointipisteet") and "ajantasainen" in text, text
        assert "uuden vuoronumeron odotus" in text and "toiminnassa" in text, text
        assert driver.find_element("tag name", "html").get_attribute("lang") == "fi"
        driver.save_screenshot(str(screenshot_dir(tmp_path) / "overview-fi.png"))
        kiosk.request("issue", topic="general")  # live: the count moves without a reload
        marker = driver.execute_script("window.still_here = 1; return 1;")
        wait_until(lambda: _state(overview)["north"]["queues"]["general"]["waiting"] >= 1, REPLY_S, "the ticket")
        assert driver.execute_script("return window.still_here;") == marker
        driver.get(f"{overview}/?lang=ar")
        wait_until(lambda: "الكشك K1" in body(), REPLY_S, lambda: f"the page in Arabic: {body()!r}")
        assert driver.find_element("tag name", "html").get_attribute("dir") == "rtl"
        driver.save_screenshot(str(screenshot_dir(tmp_path) / "overview-ar.png"))
        assert not console_errors(driver)
    finally:
        close_chromium(driver)
        kiosk.close()


def test_every_shipped_language_has_every_overview_text() -> None:
    from city.overview_texts import MESSAGE_IDS, page_language, render_page
    from ui.i18n import available_languages, load

    for lang in available_languages():
        missing = MESSAGE_IDS - set(load(lang).ids)
        assert not missing, f"{lang}: {sorted(missing)}"
    assert page_language("fi", "sv;q=0.9", "en") == "fi"
    assert page_language("xx", "de-DE,sv;q=0.9,en;q=0.8", "en") == "de"
    assert page_language(None, "nb;q=1, sv;q=0.5, en;q=0.7", "fi") == "en"
    assert page_language(None, "q=;;,,x", "fi") == "fi"
    page = render_page("ar")
    assert '<html lang="ar" dir="rtl">' in page and "<title>Vuoro · مراكز خدمة المدينة</title>" in page
    data = page.split('<script id="texts" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data)["overview.title"] == "مراكز خدمة المدينة" and "<" not in data
