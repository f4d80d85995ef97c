"""The visitor's phone, for real: a headless Chromium on a ticket's page, served by a real `vuoro web` that reads
a real hall server through a real Mosquitto, while the terminal tools draw tickets and call them.

The page must change to "your turn" by itself (Server-Sent Events, no reload), say each state of a visit in
the visitor's language, and take the visitor's rating, which then shows in `vuoro report`. A screenshot of
each state in two languages goes to $VUORO_SCREENSHOTS/web (or the test's folder) and is looked at by people.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.brokers import ROOT
from tests.test_web_server import web_over_a_hall
from tests.web_support import WebProcess, chromium, close_chromium, console_errors, screenshot_dir, vuoro

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

PAGE_S = 20.0  # a page's wait for its change: SSE is instant, but the machine is shared and loaded
TEXTS = {  # what the page must say, per language (from web.po)
    "en": {"waiting": "Please wait", "called": "It's your turn: Counter 1", "recalled": "You are called again",
           "forwarded": "Please go to Counter 2", "done": "Thank you for your visit",
           "thanks": "Thank you for your feedback!", "noshow": "You missed your turn"},
    "sv": {"waiting": "Vänligen vänta", "called": "Det är din tur: Disk 1", "recalled": "Du ropas upp igen",
           "forwarded": "Gå till Disk 2", "done": "Tack för ditt besök",
           "thanks": "Tack för din återkoppling!", "noshow": "Du missade din tur"},
}


@pytest.fixture
def hall_running(mosquitto: Any, tmp_path: Path) -> Iterator[tuple[Any, WebProcess, Path]]:
    with web_over_a_hall(mosquitto, tmp_path) as (web, _):
        yield mosquitto.address, web, tmp_path / "hall.sqlite"


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = chromium()
    try:
        yield driver
    finally:
        close_chromium(driver)


def _title(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, "[data-field=title]").text)


def _wait_title(driver: Any, text: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, PAGE_S).until(lambda d: text in _title(d), f"the page never said {text!r}")


def _not_reloaded(driver: Any) -> bool:
    return bool(driver.execute_script("return window.__vuoroMark === 42;"))


def _shoot(driver: Any, folder: Path, name: str, size: tuple[int, int] = (412, 915)) -> Path:
    """The whole page at a phone's width (or a TV's `size`), saved as `name`.png."""
    path = folder / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight;")
    driver.set_window_size(size[0], max(size[1], int(height) + 40))
    driver.save_screenshot(str(path))
    driver.set_window_size(*size)
    assert path.stat().st_size > 5000
    return path


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_a_visit_on_the_phone_live_from_ticket_to_rating(hall_running, browser, tmp_path, lang):
    from selenium.webdriver.common.by import By

    broker, web, db = hall_running
    folder = screenshot_dir(tmp_path / "shots")
    words = TEXTS[lang]
    vuoro(broker, "ticket", "A", "--lang", "fi")  # someone ahead
    mine = vuoro(broker, "ticket", "A", "--lang", lang)["result"]["ticket"]
    browser.get(f"{web.url}/t/{mine['token']}")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang
    _wait_title(browser, words["waiting"])
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, PAGE_S).until(lambda d: d.find_element(By.ID, "live").is_displayed())
    before = browser.find_element(By.CSS_SELECTOR, "[data-field=ahead]").text
    assert "1" in before
    _shoot(browser, folder, f"waiting-{lang}")
    browser.execute_script("window.__vuoroMark = 42;")  # gone if the page reloads

    vuoro(broker, "call", "1", "open")
    vuoro(broker, "call", "2", "open")
    assert vuoro(broker, "call", "1", "next")["result"]["ticket"]["number"] == "A001"
    WebDriverWait(browser, PAGE_S).until(  # one fewer ahead: live too
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-field=ahead]").text not in ("", before))
    assert vuoro(broker, "call", "1", "next")["result"]["ticket"]["number"] == mine["number"]
    _wait_title(browser, words["called"])
    assert _not_reloaded(browser), "the page reloaded instead of changing live"
    assert browser.find_element(By.CSS_SELECTOR, "[data-field=way]").text  # the way there, in words
    assert console_errors(browser) == []  # no CSP refusal, no script error, nothing fetched that is not there
    _shoot(browser, folder, f"called-{lang}")

    vuoro(broker, "call", "1", "recall")
    _wait_title(browser, words["recalled"])
    _shoot(browser, folder, f"recalled-{lang}")

    vuoro(broker, "call", "1", "forward", "--to-counter", "2")
    _wait_title(browser, words["forwarded"])
    _shoot(browser, folder, f"forwarded-{lang}")

    vuoro(broker, "call", "2", "next")
    vuoro(broker, "call", "2", "done")
    _wait_title(browser, words["done"])
    form = browser.find_element(By.ID, "feedback")
    WebDriverWait(browser, PAGE_S).until(lambda d: form.is_displayed())
    assert _not_reloaded(browser)
    _shoot(browser, folder, f"done-{lang}")
    browser.find_element(By.ID, "comment").send_keys("Snabbt och vänligt" if lang == "sv" else "Quick and kind")
    browser.find_element(By.CSS_SELECTOR, "button.face-4").click()
    _wait_main(browser, words["thanks"])  # the post's reply
    assert not browser.find_element(By.ID, "feedback").is_displayed()  # once per ticket
    _shoot(browser, folder, f"thanks-{lang}")

    # another visitor who never came
    gone = vuoro(broker, "ticket", "B", "--lang", lang)["result"]["ticket"]
    browser.get(f"{web.url}/t/{gone['token']}")
    _wait_title(browser, words["waiting"])
    vuoro(broker, "call", "4", "open")
    for action in ("next", "recall", "recall", "noshow"):
        answer = vuoro(broker, "call", "4", action)
        assert answer["ok"], answer
    _wait_title(browser, words["noshow"])
    _shoot(browser, folder, f"noshow-{lang}")

    report = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "vuoro.cli", "report", "--db", str(db), "--out", str(report),
                           "--quiet"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    topics = (report / "topics.csv").read_text(encoding="utf-8").splitlines()
    header = topics[0].split(",")
    general = next(line.split(",") for line in topics[1:] if line.startswith("general,"))
    assert general[header.index("ratings")] == "1" and general[header.index("rating_4")] == "1"
    assert "Visitors&#x27; ratings" in (report / "index.html").read_text() or \
        "Visitors' ratings" in (report / "index.html").read_text()


@pytest.fixture
def plain_browser() -> Iterator[Any]:
    driver = chromium(javascript=False)
    try:
        yield driver
    finally:
        close_chromium(driver)


def test_without_javascript_the_page_shows_each_state_on_reload_and_takes_the_rating(hall_running, plain_browser,
                                                                                      tmp_path):
    """A phone that runs no scripts (or a right-to-left language): the server's own HTML says it all."""
    from selenium.webdriver.common.by import By

    broker, web, _ = hall_running
    folder = screenshot_dir(tmp_path / "shots")
    browser = plain_browser
    mine = vuoro(broker, "ticket", "A", "--lang", "ar")["result"]["ticket"]
    browser.get(f"{web.url}/t/{mine['token']}")
    html = browser.find_element(By.TAG_NAME, "html")
    assert (html.get_attribute("lang"), html.get_attribute("dir")) == ("ar", "rtl")
    assert _title(browser) == "يرجى الانتظار"
    assert not browser.find_element(By.ID, "live").is_displayed()  # "live" is the script's word to say
    assert browser.find_element(By.CSS_SELECTOR, "main noscript p").is_displayed()  # "reload to see..."
    _shoot(browser, folder, "nojs-waiting-ar")
    vuoro(broker, "call", "1", "open")
    vuoro(broker, "call", "1", "next")
    _reload_until(browser, "حان دورك")
    _shoot(browser, folder, "nojs-called-ar")
    vuoro(broker, "call", "1", "done")
    _reload_until(browser, "شكرًا لزيارتك")
    assert browser.find_element(By.ID, "feedback").is_displayed()
    _shoot(browser, folder, "nojs-done-ar")
    browser.find_element(By.CSS_SELECTOR, "button.face-5").click()  # a plain form post, answered 303
    _wait_main(browser, "شكرًا على ملاحظاتك!")
    assert not browser.find_element(By.ID, "feedback").is_displayed()
    _shoot(browser, folder, "nojs-thanks-ar")
    browser.get(f"{web.url}/t/{mine['token']}?lang=en")  # switched among the hall's languages, by a link
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("dir") == "ltr"
    assert _title(browser) == "Thank you for your visit"


def _reload_until(driver: Any, text: str) -> None:
    """Reload as the visitor would (the page also refreshes itself without scripts) until it says `text`."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def reloaded(d: Any) -> bool:
        d.refresh()
        return text in _title(d)

    # a reload's old elements go stale (see _wait_main): asked again until the deadline
    WebDriverWait(driver, PAGE_S, poll_frequency=0.5, ignored_exceptions=[WebDriverException]).until(
        reloaded, f"the page never said {text!r}")


def _wait_main(driver: Any, text: str) -> None:
    """Until the page's main part says `text`: across a navigation (a form's post, its redirect), whose old
    elements go stale under the test's hands (chromedriver says so as a stale element, or as "Node with given id
    does not belong to the document", or finds no <main> yet): each is asked again until the deadline."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, PAGE_S, ignored_exceptions=[WebDriverException]).until(
        lambda d: text in d.find_element(By.TAG_NAME, "main").text, f"the page never said {text!r}")


def test_the_web_hall_display_on_a_tv_shows_a_call_live(hall_running, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    broker, web, _ = hall_running
    folder = screenshot_dir(tmp_path / "shots")
    browser.set_window_size(1280, 720)  # a TV
    browser.get(f"{web.url}/display/entrance")
    browser.execute_script("window.__vuoroMark = 42;")
    ticket = vuoro(broker, "ticket", "A", "--lang", "fi")["result"]["ticket"]
    vuoro(broker, "call", "1", "open")
    vuoro(broker, "call", "1", "next")
    WebDriverWait(browser, PAGE_S).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-field=hero-number]").text == ticket["number"])
    assert _not_reloaded(browser)
    assert browser.find_element(By.CSS_SELECTOR, "[data-field=hero-way]").text  # the way from this display
    assert not browser.find_element(By.CSS_SELECTOR, "[data-part=notice]").is_displayed()  # synced: no notice
    assert console_errors(browser) == []
    _shoot(browser, folder, "display-entrance", (1280, 720))
