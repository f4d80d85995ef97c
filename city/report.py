"""The city report: `vuoro report --db postgresql://...` reads every hall's events from the city database and
gives each hall the same figures, CSV files and charts as `vuoro report` gives one hall (analytics/report.py, fed
through pgstore.HallEvents, which reads like a hall's own log), and the halls side by side: one table
(city.csv), one chart (halls.png) and one page (index.html) linking to each hall's own report.

Each hall's figures need its hall file (its topics, counters and target waits): `halls_dir` holds the city's
hall files; a hall with none is read with the default hall file's settings under its own id. Imports broker's
report and statistics, and psycopg through pgstore.
"""

from __future__ import annotations

import argparse
import html
import io
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from analytics import report
from broker import stats
from broker.config import ConfigError, HallConfig, load_hall

# (column, figure of stats.Tally.figures, how it is written): what a city compares its halls by
SIDE_BY_SIDE: tuple[tuple[str, str, Any], ...] = (
    ("issued", "issued", int), ("served", "served", int), ("forwarded", "forwarded", int),
    ("noshows", "noshows", int),
    ("wait_median_min", "wait_median_s", lambda s: round(s / 60, 1)),
    ("wait_p90_min", "wait_p90_s", lambda s: round(s / 60, 1)),
    ("within_target_pct", "within_target", lambda x: round(100 * x, 1)),
    ("first_contact_resolution_pct", "first_contact_resolution", lambda x: round(100 * x, 1)),
    ("ratings", "ratings", int), ("rating_mean", "rating_mean", lambda x: round(x, 2)),
    ("serving_pct", "serving_share", lambda x: round(100 * x, 1)),
)


def is_city_db(db: str | None) -> bool:
    """Is `--db` the city's PostgreSQL rather than a hall's SQLite file?"""
    return bool(db) and str(db).startswith(("postgresql://", "postgres://"))


def hall_configs(halls: Iterable[str], template: HallConfig, halls_dir: str | Path | None) -> dict[str, HallConfig]:
    """Each hall's config: its own file from `halls_dir` (found by the id inside), else the template's settings."""
    found: dict[str, HallConfig] = {}
    if halls_dir is not None:
        for path in sorted(Path(halls_dir).glob("*.toml")):
            try:
                config = load_hall(path)
            except ConfigError as exc:
                print(f"vuoro report: {path}: skipped: {exc}", file=sys.stderr)
                continue
            found[config.id] = config
    return {h: found.get(h) or (template if template.id == h else replace(template, id=h)) for h in halls}


def read_city(dsn: str, template: HallConfig, first: date, last: date, *, only: Sequence[str] = (),
              halls_dir: str | Path | None = None) -> dict[str, report.Figures]:
    """Every hall's figures from `first` to `last` (or only the halls named), in hall order."""
    from city.pgstore import CityStore

    store = CityStore(dsn, migrate_schema=False)
    try:
        halls = [h for h in store.halls() if not only or h in only]
        configs = hall_configs(halls, template, halls_dir)
        # report.read_figures reads any stats.EventSource: HallEvents reads the city's copy of a hall's log
        return {h: report.read_figures(cast(Any, store.source(h)), configs[h], first, last) for h in halls}
    finally:
        store.close()


def side_by_side(figures: Mapping[str, report.Figures]) -> list[dict[str, Any]]:
    """One row per hall: its figures over the whole range."""
    table = []
    for hall, fig in figures.items():
        values = stats.total(fig.tallies.values()).figures()
        row: dict[str, Any] = {"hall": hall, "name": fig.hall.name.get(fig.hall.main_language, hall),
                               "days": len(fig.days)}
        for column, name, write in SIDE_BY_SIDE:
            value = values.get(name)
            row[column] = None if value is None else write(value)
        table.append(row)
    return table


def chart_halls(table: list[dict[str, Any]]) -> bytes:
    """Median and 90th-percentile waits and first-contact resolution, hall beside hall."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (waits, fcr) = plt.subplots(1, 2, figsize=(10, 3.6))
    x = range(len(table))
    labels = [row["hall"] for row in table]
    waits.bar([i - 0.2 for i in x], [row["wait_median_min"] or 0 for row in table], 0.4, label="median")
    waits.bar([i + 0.2 for i in x], [row["wait_p90_min"] or 0 for row in table], 0.4, label="90th percentile")
    waits.set_title("Wait (min)")
    waits.legend()
    fcr.bar(list(x), [row["first_contact_resolution_pct"] or 0 for row in table], 0.6, color="#2a7a3b")
    fcr.set_title("First-contact resolution (%)")
    fcr.set_ylim(0, 100)
    for ax in (waits, fcr):
        ax.set_xticks(list(x), labels)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def render_city_html(table: list[dict[str, Any]], first: date, last: date, generated: datetime) -> str:
    columns = ["hall", "name", "days", *(c for c, _, _ in SIDE_BY_SIDE)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in table:
        cells = []
        for c in columns:
            value = "" if row.get(c) is None else html.escape(str(row[c]))
            cells.append(f'<td><a href="{html.escape(row["hall"])}/index.html">{value}</a></td>' if c == "hall"
                         else f"<td>{value}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    chart = '<img src="halls.png" alt="waits and first-contact resolution per hall">' if table else ""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Vuoro city report</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:.3em .6em;text-align:right}</style></head><body>"
            f"<h1>City report {first} – {last}</h1><p>Generated {generated:%Y-%m-%d %H:%M}. Each hall's own "
            "report (the same figures and charts as for one hall) is linked from its id.</p>"
            f"{chart}<table><tr>{head}</tr>{''.join(body)}</table></body></html>")


def write_city_report(figures: Mapping[str, report.Figures], out: Path, first: date, last: date,
                      generated: datetime) -> list[Path]:
    """Each hall's report in out/<hall>/, and the halls side by side in out/: city.csv, halls.png, index.html."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for hall, fig in figures.items():
        written += report.write_report(fig, out / hall, generated)
    table = side_by_side(figures)
    report.write_csv(out / "city.csv", table)
    written.append(out / "city.csv")
    if table:
        (out / "halls.png").write_bytes(chart_halls(table))
        written.append(out / "halls.png")
    (out / "index.html").write_text(render_city_html(table, first, last, generated), encoding="utf-8")
    written.append(out / "index.html")
    return written


def run(args: argparse.Namespace, hall: HallConfig) -> int:
    """`vuoro report --db postgresql://...`: what analytics/report_cli.py hands over when --db is the city's."""
    today = datetime.now(hall.tz).date()
    last = getattr(args, "last", None) or today
    first = getattr(args, "first", None) or last - timedelta(days=6)
    if first > last:
        print(f"vuoro report: --from {first} is after --to {last}", file=sys.stderr)
        return 2
    out = Path(getattr(args, "out", None) or Path("var") / f"city-report-{first}-{last}")
    try:
        figures = read_city(args.db, hall, first, last, only=getattr(args, "city_hall", None) or (),
                            halls_dir=getattr(args, "halls", None))
    except Exception as exc:  # psycopg.Error: the database is away or not a city database
        print(f"vuoro report: the city database: {exc}", file=sys.stderr)
        return 2
    written = write_city_report(figures, out, first, last, datetime.now(hall.tz))
    print(f"{len(figures)} hall(s) from {first} to {last}; wrote {len(written)} files to {out}/ "
          f"(open {out / 'index.html'})")
    return 0
