"""`vuoro report` on a simulated week of the demo hall: CSV files, charts, one self-contained page, the purge.

The charts of the week are kept among the pictures (docs/report-example/, which the README shows, when
bin/screenshots runs this).
"""

from __future__ import annotations

import base64
import csv
import io
import re
import shutil
from collections.abc import Callable
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from analytics import simulate as sim
from broker import protocol as p
from broker import stats
from broker.config import DEMO_HALL, HallConfig, load_hall
from broker.store import Store
from vuoro import cli

WEEK = date(2026, 11, 23)  # Monday to Friday
TICKET_NUMBER = re.compile(rb"\b[A-F]\d{3}\b")


def write_week(path: Path, hall: HallConfig, first: date = WEEK, days: int = 5) -> None:
    results = sim.simulate_days(hall, first, days, seed=11)
    store = Store(path, hall.id)
    store.commit([(e, p.encode(e.payload())) for r in results for e in r.events], [])
    store.close()


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory, hall: HallConfig) -> Path:
    path = tmp_path_factory.mktemp("week") / "week.sqlite"
    write_week(path, hall)
    return path


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    hall = [] if "--hall" in args else ["--hall", str(DEMO_HALL)]  # named: the CLI's "using the demo hall" note
    code = cli.main(["report", *hall, *args])
    out, err = capsys.readouterr()
    return code, out, err


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.sources.append(values.get("src") or "")
        for name in ("href", "src"):
            if tag != "img" and values.get(name):
                self.links.append(values[name] or "")


def test_a_week_gives_csv_charts_and_one_page_that_holds_them(week: Path, hall: HallConfig, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str],
                                                              pictures: Callable[[str], Path]) -> None:
    out = tmp_path / "report"
    code, text, _ = report(capsys, "--db", str(week), "--from", "2026-11-23", "--to", "2026-11-27", "--out", str(out))
    assert code == 0 and "5 day(s) with visitors" in text
    assert {f.name for f in out.iterdir()} == {
        "days.csv", "days_topics.csv", "days_counters.csv", "days_hours.csv", "topics.csv", "counters.csv",
        "hours.csv", "hours.png", "waits.png", "first_contact.png", "promise.png", "counters.png", "index.html"}
    # the CSV figures are the statistics of the log
    store = Store(week, hall.id)
    tallies = stats.collect(store.events(), hall)
    store.close()
    days = read_csv(out / "days.csv")
    assert [row["day"] for row in days] == ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]
    for row in days:
        figures = stats.group(tallies, "day")[(row["day"],)].figures()
        assert int(row["issued"]) == figures["issued"] and int(row["served"]) == figures["served"]
        assert float(row["wait_p90_min"]) == round(figures["wait_p90_s"] / 60, 1)
        assert float(row["first_contact_resolution_pct"]) == round(100 * figures["first_contact_resolution"], 1)
    topics = read_csv(out / "topics.csv")
    assert [row["topic"] for row in topics] == list(hall.topics)  # in the hall's order
    assert sum(int(r["issued"]) for r in topics) == sum(int(r["issued"]) for r in days)
    assert sum(int(r["served"]) for r in read_csv(out / "counters.csv")) == sum(int(r["served"]) for r in days)
    assert sum(int(r["issued"]) for r in read_csv(out / "hours.csv")) == sum(int(r["issued"]) for r in days)
    assert all(r["serving_h"] == "" for r in topics)  # counter time has no topic
    # the charts are pictures, and the page carries every one of them inside itself
    for chart in out.glob("*.png"):
        with Image.open(chart) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 250
            assert len(image.getcolors(1 << 16) or range(300)) > 20  # drawn on, not blank
        shutil.copy(chart, pictures("report") / chart.name)
    page = (out / "index.html").read_text(encoding="utf-8")
    parser = Images()
    parser.feed(page)
    assert len(parser.sources) == 5 and parser.links == []  # nothing to fetch from elsewhere
    embedded = sorted(base64.b64decode(src.split(",", 1)[1]) for src in parser.sources)
    assert embedded == sorted(f.read_bytes() for f in out.glob("*.png"))
    for data in embedded:
        assert Image.open(io.BytesIO(data)).format == "PNG"
    assert hall.name["sv"] in page and "First-contact resolution per day" in page


def test_the_report_names_no_visitor(week: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert report(capsys, "--db", str(week), "--from", "2026-11-23", "--to", "2026-11-27", "--out", str(out))[0] == 0
    store_bytes = week.read_bytes()
    assert TICKET_NUMBER.search(store_bytes)  # the log has ticket numbers...
    for path in out.iterdir():
        if path.suffix == ".png":
            continue  # pixels only (no text chunks): the page carries the same pictures, checked below
        data = path.read_bytes()
        if path.suffix == ".html":  # the page's images are base64: look at its text only
            data = re.sub(rb'src="data:image/png;base64,[^"]*"', b"", data)
        assert not TICKET_NUMBER.search(data), path.name  # ...the report has none
        assert b'"lang"' not in data and b"issued_at" not in data


def test_a_long_range_shows_its_progress_and_an_empty_one_says_so(week: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = report(capsys, "--db", str(week), "--from", "2026-11-01", "--to", "2026-11-30",
                          "--out", str(tmp_path / "month"))
    assert code == 0
    assert "reading the log: 5/5 days (100 %)" in err
    code, _, err = report(capsys, "--db", str(week), "--from", "2026-11-24", "--to", "2026-11-24",
                            "--out", str(tmp_path / "day"))
    assert code == 0 and err == ""  # one day: no progress bar
    code, _, _ = report(capsys, "--db", str(week), "--from", "2026-10-01", "--to", "2026-10-07",
                          "--out", str(tmp_path / "empty"))
    assert code == 0 and "No visitors in this range" in (tmp_path / "empty" / "index.html").read_text()
    code, _, err = report(capsys, "--db", str(week), "--from", "2026-11-30", "--to", "2026-11-01")
    assert code == 2 and "is after" in err
    code, _, err = report(capsys, "--db", str(tmp_path / "missing.sqlite"))
    assert code == 2 and "no such event log" in err


def test_purged_days_report_the_same_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hall_file = tmp_path / "hall.toml"
    hall_file.write_text(DEMO_HALL.read_text(encoding="utf-8").replace("keep_ticket_days = 90",
                                                                       "keep_ticket_days = 30"))
    hall = load_hall(hall_file)
    db = tmp_path / "old.sqlite"
    write_week(db, hall, date(2026, 1, 12), 3)  # long ago: older than 30 days
    args = ["--hall", str(hall_file), "--db", str(db), "--from", "2026-01-12", "--to", "2026-01-14"]
    assert report(capsys, *args, "--out", str(tmp_path / "before"))[0] == 0
    code, _, err = report(capsys, *args, "--out", str(tmp_path / "after"), "--purge")
    assert code == 0 and "purged the ticket rows of 2 day(s)" in err  # the log's last day stays whole
    store = Store(db, hall.id)
    assert [d for d, _, _ in store.days()] == ["2026-01-14"]
    store.close()
    for name in ("days.csv", "days_topics.csv", "days_counters.csv", "days_hours.csv", "topics.csv", "hours.csv"):
        assert (tmp_path / "after" / name).read_text() == (tmp_path / "before" / name).read_text(), name
    assert "2 of them from the kept daily figures" in (tmp_path / "after" / "index.html").read_text()


def test_visitors_ratings_per_topic_counter_and_day_without_their_comments(
        hall: HallConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        pictures: Callable[[str], Path]) -> None:
    from tests.test_stats import DAY, rated_morning

    db = tmp_path / "rated.sqlite"
    store = Store(db, hall.id)
    store.commit([(e, p.encode(e.payload())) for e in rated_morning(hall)], [])
    store.close()
    out = tmp_path / "report"
    assert report(capsys, "--db", str(db), "--from", DAY, "--to", DAY, "--out", str(out))[0] == 0
    assert (out / "ratings.png").exists()
    shutil.copy(out / "ratings.png", pictures("report") / "ratings.png")
    general = next(r for r in read_csv(out / "topics.csv") if r["topic"] == "general")
    assert (general["ratings"], general["rating_mean"], general["rating_2"], general["rating_5"],
            general["response_rate_pct"]) == ("2", "3.5", "1", "1", "100.0")
    counters = {r["counter"]: r for r in read_csv(out / "counters.csv")}
    assert (counters["1"]["ratings"], counters["1"]["rating_5"]) == ("1", "1")
    assert (counters["2"]["ratings"], counters["2"]["rating_mean"]) == ("1", "2.0")
    (day,) = read_csv(out / "days.csv")
    assert (day["ratings"], day["response_rate_pct"]) == ("2", "100.0")
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Visitors&#x27; ratings" in page or "Visitors' ratings" in page
    assert "% of served who rated" in page
    for path in out.iterdir():
        if path.suffix in (".csv", ".html"):
            assert "Maija" not in path.read_text(encoding="utf-8"), path.name  # comments stay in the log only
