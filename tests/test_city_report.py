"""The city report reads every hall's events from the city's PostgreSQL and gives each hall exactly the figures
`vuoro report` gives from the hall's own log, and the halls side by side (city.csv, halls.png, index.html)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

from analytics import report
from analytics import simulate as sim
from broker import protocol as p
from broker.config import HallConfig
from broker.store import Store
from city.pgstore import CityStore, row_of
from city.report import is_city_db, read_city, write_city_report
from tests.support.postgres import city_dsn, postgres  # noqa: F401 -- fixtures

FIRST = date(2026, 11, 23)
DAYS = 2
SEEDS = {"north": 11, "south": 12}


def fill(dsn: str, hall: HallConfig, folder: Path) -> dict[str, Path]:
    """Each hall's simulated days into its own SQLite log and, as the collector writes them, into the city."""
    logs = {}
    store = CityStore(dsn)
    try:
        for hall_id, seed in SEEDS.items():
            events = [e for r in sim.simulate_days(replace(hall, id=hall_id), FIRST, DAYS, seed=seed)
                      for e in r.events]
            logs[hall_id] = folder / f"{hall_id}.sqlite"
            own = Store(logs[hall_id], hall_id)
            own.commit([(e, p.encode(e.payload())) for e in events], [])
            own.close()
            rows = [row_of(hall_id, json.loads(p.encode(e.payload()))) for e in events]
            store.write(rows, {hall_id: rows[-1].seq})
    finally:
        store.close()
    return logs


def test_each_hall_has_the_figures_of_its_own_log(city_dsn: str, hall: HallConfig, tmp_path: Path) -> None:  # noqa: F811
    logs = fill(city_dsn, hall, tmp_path)
    last = date(2026, 11, 24)
    city = read_city(city_dsn, hall, FIRST, last)
    assert list(city) == ["north", "south"]
    for hall_id, path in logs.items():
        own = Store(path, hall_id)
        try:
            alone = report.read_figures(own, replace(hall, id=hall_id), FIRST, last)
        finally:
            own.close()
        assert city[hall_id].days == alone.days == ["2026-11-23", "2026-11-24"]
        for _, by in report.TABLES:
            assert report.rows(city[hall_id], by) == report.rows(alone, by)
    assert read_city(city_dsn, hall, FIRST, last, only=["south"]).keys() == {"south"}


def test_the_halls_side_by_side(city_dsn: str, hall: HallConfig, tmp_path: Path) -> None:  # noqa: F811
    fill(city_dsn, hall, tmp_path)
    figures = read_city(city_dsn, hall, FIRST, date(2026, 11, 24))
    out = tmp_path / "city"
    written = write_city_report(figures, out, FIRST, date(2026, 11, 24), datetime(2026, 11, 25, 8, 0))
    with open(out / "city.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [row["hall"] for row in table] == ["north", "south"]
    for row in table:
        days = report.rows(figures[row["hall"]], ("day",))
        assert int(row["issued"]) == sum(d["issued"] for d in days) > 0
        assert int(row["days"]) == 2
    assert table[0]["wait_median_min"] != "" and table[0]["first_contact_resolution_pct"] != ""
    assert (out / "halls.png").read_bytes().startswith(b"\x89PNG")
    page = (out / "index.html").read_text()
    assert 'href="north/index.html"' in page and 'href="south/index.html"' in page
    assert (out / "north" / "index.html") in written and (out / "south" / "days.csv").exists()


def test_the_city_database_is_told_from_a_hall_log() -> None:
    assert is_city_db("postgresql://vuoro@db/city") and is_city_db("postgres://db/city")
    assert not is_city_db("var/kvarnby.sqlite") and not is_city_db(None)


def test_vuoro_report_with_a_postgresql_db_writes_the_city_report(city_dsn: str, hall: HallConfig,  # noqa: F811
                                                                  tmp_path: Path) -> None:
    """The command as IT types it: `vuoro report --db postgresql://...` goes to the city's report, and
    --city-hall keeps only the halls it names."""
    import subprocess
    import sys

    from psycopg.conninfo import conninfo_to_dict

    fill(city_dsn, hall, tmp_path)
    info = conninfo_to_dict(city_dsn)
    url = f"postgresql://{info['user']}@{info['host']}:{info.get('port', 5432)}/{info['dbname']}"
    out = tmp_path / "cmd"
    run = subprocess.run([sys.executable, "-m", "vuoro.cli", "report", "--db", url, "--from", "2026-11-23",
                          "--to", "2026-11-24", "--out", str(out), "--city-hall", "south"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "1 hall(s) from 2026-11-23 to 2026-11-24" in run.stdout
    with open(out / "city.csv", newline="", encoding="utf-8") as f:
        assert [row["hall"] for row in csv.DictReader(f)] == ["south"]
