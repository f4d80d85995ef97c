"""The report a service manager reads: CSV files, PNG charts and one self-contained HTML page.

Figures come from `broker/stats.py`: days still in the event log are read from it, purged days
from the daily figures the store kept of them. Nothing in the output names a visitor: no ticket
numbers, no languages, no time finer than the hour; only counts and durations.

Charts are drawn with matplotlib's Agg backend (no display needed); the HTML page embeds them as
data URLs, so the page is one file that can be mailed or opened from a USB stick.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from broker import stats
from broker.config import HallConfig
from broker.store import Store

FCR_GOAL = 0.7  # the share resolved at first contact that service centres commonly aim for
PROGRESS_FROM_DAYS = 8  # ranges longer than a week show a progress bar


# ---------------------------------------------------------------- reading

@dataclass
class Figures:
    """The finest tallies of a date range and the days they cover."""

    hall: HallConfig
    first: date
    last: date
    tallies: dict[stats.Key, stats.Tally]
    days: list[str]  # days with any figures, in order
    purged_days: list[str]  # of which read from the daily figures (their ticket rows are gone)


class Progress:
    """A progress bar on a terminal (redrawn in place), or a line at each quarter elsewhere (a log)."""

    def __init__(self, stream: IO[str] | None = None, label: str = "reading the log") -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        if self.tty:
            filled = round(30 * done / total)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} days")
            if done >= total:
                self.stream.write("\n")
        else:
            quarter = 4 * done // total
            if quarter > self.shown:
                self.shown = quarter
                self.stream.write(f"{self.label}: {done}/{total} days ({100 * done // total} %)\n")
        self.stream.flush()


def read_figures(store: Store, hall: HallConfig, first: date, last: date,
                 progress: Callable[[int, int], None] | None = None) -> Figures:
    """Tallies of every day from `first` to `last`: from the log, or from the daily figures once purged."""
    lo, hi = first.isoformat(), last.isoformat()
    logged = [(day, a, b) for day, a, b in store.days() if lo <= day <= hi]
    kept = stats.from_rows(store.daily_rows(lo, hi))
    logged_days = {day for day, _, _ in logged}
    tallies = {key: tally for key, tally in kept.items() if key[0] not in logged_days}
    purged = sorted({key[0] for key in tallies})
    collector = stats.Collector(hall)
    total = len(logged)
    for index, (_, a, b) in enumerate(logged, 1):
        for event in store.events_between(a, b):
            collector.add(event)
        if progress is not None:
            progress(index, total)
    collector.finish()
    tallies.update(collector.tallies)
    days = sorted({key[0] for key in tallies})
    return Figures(hall=hall, first=first, last=last, tallies=tallies, days=days, purged_days=purged)


# ---------------------------------------------------------------- tables

COLUMNS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    # (CSV column, figure, how it is written)
    ("issued", "issued", int), ("called", "called", int), ("served", "served", int),
    ("noshows", "noshows", int), ("expired", "expired", int), ("forwarded", "forwarded", int),
    ("wait_mean_min", "wait_mean_s", lambda s: round(s / 60, 1)),
    ("wait_median_min", "wait_median_s", lambda s: round(s / 60, 1)),
    ("wait_p90_min", "wait_p90_s", lambda s: round(s / 60, 1)),
    ("within_target_pct", "within_target", lambda x: round(100 * x, 1)),
    ("service_mean_min", "service_mean_s", lambda s: round(s / 60, 1)),
    ("service_median_min", "service_median_s", lambda s: round(s / 60, 1)),
    ("first_contact_resolution_pct", "first_contact_resolution", lambda x: round(100 * x, 1)),
    ("serving_h", "serving_s", lambda s: round(s / 3600, 2)),
    ("idle_h", "idle_s", lambda s: round(s / 3600, 2)),
    ("paused_h", "paused_s", lambda s: round(s / 3600, 2)),
    ("serving_pct", "serving_share", lambda x: round(100 * x, 1)),
    ("mean_waiting", "waiting_mean", lambda x: round(x, 2)),
    ("promise_mae_min", "promise_mae_s", lambda s: round(s / 60, 1)),
    ("promise_in_range_pct", "promise_in_range", lambda x: round(100 * x, 1)),
    # the visitors' ratings from the ticket's web page (1 the worst face, 5 the best); comments are not here
    ("ratings", "ratings", int), ("rating_mean", "rating_mean", lambda x: round(x, 2)),
    *((f"rating_{score}", f"rating_{score}", int) for score in (1, 2, 3, 4, 5)),
    ("response_rate_pct", "response_rate", lambda x: round(100 * x, 1)),
)

NOT_PER = {  # figures that do not belong to a grouping: counter time has no topic, a drawn ticket no counter
    "topic": ("serving_h", "idle_h", "paused_h", "serving_pct"),
    "counter": ("issued", "expired", "mean_waiting"),
}

TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("days", ("day",)), ("days_topics", ("day", "topic")), ("days_counters", ("day", "counter")),
    ("days_hours", ("day", "hour")), ("topics", ("topic",)), ("counters", ("counter",)), ("hours", ("hour",)),
)


def rows(figures: Figures, by: Sequence[str]) -> list[dict[str, Any]]:
    """One row per group, labels first, then every figure (None where there is nothing to show)."""
    days = max(1, len(figures.days))
    hall = figures.hall
    order = {"topic": list(hall.topics), "counter": list(hall.counters)}

    def place(item: tuple[tuple[Any, ...], stats.Tally]) -> tuple[Any, ...]:
        """Topics and counters in the hall's own order (those no longer in the config last)."""
        return tuple((order[name].index(value) if value in order[name] else len(order[name]), value)
                     if name in order else (0, value) for name, value in zip(by, item[0], strict=True))

    result = []
    for label, tally in sorted(stats.group(figures.tallies, *by).items(), key=place):
        span = 1.0 if "hour" in by and "day" in by else float(days) if "hour" in by else None
        values = tally.figures(hours=span)
        row: dict[str, Any] = dict(zip(by, label, strict=True))
        if "topic" in by:
            topic = hall.topics.get(row["topic"])
            row["topic_name"] = topic.name[hall.main_language] if topic else row["topic"]
        if "counter" in by:
            counter = hall.counters.get(row["counter"])
            row["counter_name"] = counter.name[hall.main_language] if counter else row["counter"]
        for column, name, write in COLUMNS:
            value = values.get(name)
            blank = any(column in NOT_PER.get(dimension, ()) for dimension in by)
            row[column] = None if value is None or blank else write(value)
        result.append(row)
    return result


def write_csv(path: Path, table: list[dict[str, Any]]) -> None:
    if not table:
        path.write_text("")
        return
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(table[0]))
        writer.writeheader()
        for row in table:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


# ---------------------------------------------------------------- charts

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 10, "axes.spines.top": False,
                         "axes.spines.right": False, "figure.dpi": 110})
    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return buffer.getvalue()


def chart_hours(figures: Figures) -> bytes:
    """Drawn and served per hour of the day (a day's average) and how many were waiting."""
    plt = _pyplot()
    days = max(1, len(figures.days))
    by_hour = stats.group(figures.tallies, "hour")
    hours = sorted(h for (h,) in by_hour)
    issued = [by_hour[(h,)].issued / days for h in hours]
    served = [by_hour[(h,)].served / days for h in hours]
    waiting = [by_hour[(h,)].waiting_s / 3600 / days for h in hours]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.38
    ax.bar([h - width / 2 for h in hours], issued, width, label="tickets drawn", color="#9db4d6")
    ax.bar([h + width / 2 for h in hours], served, width, label="visits served", color="#1f6feb")
    ax.set_xlabel("hour of the day")
    ax.set_ylabel("visitors per hour" + (f" (mean of {days} days)" if days > 1 else ""))
    ax.set_xticks(hours, [f"{h:02d}" for h in hours])
    right = ax.twinx()
    right.plot(hours, waiting, color="#c2410c", marker="o", label="waiting (mean number)")
    right.set_ylabel("visitors waiting, mean over the hour", color="#c2410c")
    right.set_ylim(bottom=0)
    right.spines["right"].set_visible(True)
    handles = ax.get_legend_handles_labels()
    extra = right.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncols=3, frameon=False)
    ax.set_title("Waiting and served per hour")
    return _png(fig)


def chart_waits(figures: Figures) -> bytes:
    """The spread of waits per topic, with each topic's target."""
    plt = _pyplot()
    hall = figures.hall
    by_topic = stats.group(figures.tallies, "topic")
    topics = [t for t in hall.topics if (t,) in by_topic and by_topic[(t,)].waits]
    topics += sorted(t for (t,) in by_topic if t not in hall.topics and by_topic[(t,)].waits)
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.55 * max(1, len(topics))))
    if topics:
        data = [[w / 60 for w in by_topic[(t,)].waits] for t in topics]
        parts = ax.boxplot(data, orientation="horizontal", whis=(10, 90), showfliers=False, patch_artist=True,
                           widths=0.55, medianprops={"color": "black"})
        for patch, topic in zip(parts["boxes"], topics, strict=True):
            patch.set_facecolor(hall.topics[topic].colour if topic in hall.topics else "#888888")
            patch.set_alpha(0.75)
        for index, topic in enumerate(topics, 1):
            if topic in hall.topics:
                target = hall.topics[topic].target_wait_min
                ax.plot([target, target], [index - 0.38, index + 0.38], color="#111111", linewidth=2)
            share = by_topic[(topic,)].figures()["within_target"]
            if share is not None:
                ax.annotate(f"{100 * share:.0f} % within target", (1.0, index), xycoords=("axes fraction", "data"),
                            xytext=(4, 0), textcoords="offset points", va="center", fontsize=9)
        names = [hall.topics[t].name[hall.main_language] if t in hall.topics else t for t in topics]
        ax.set_yticks(range(1, len(topics) + 1), names)
        ax.invert_yaxis()
    ax.set_xlabel("wait from drawing the ticket to the first call, minutes "
                  "(box: middle half, whiskers: 10th-90th percentile, black bar: target)")
    ax.set_xlim(left=0)
    ax.set_title("Waits per topic")
    return _png(fig)


def chart_fcr(figures: Figures) -> bytes:
    """The share of visits resolved at the first counter, day by day, against the common 70 % goal."""
    plt = _pyplot()
    by_day = stats.group(figures.tallies, "day")
    days = [d for (d,) in by_day if by_day[(d,)].first_contacts]
    shares = [100 * by_day[(d,)].resolved_first / by_day[(d,)].first_contacts for d in days]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    labels = [date.fromisoformat(d).strftime("%a %d.%m") for d in days]
    ax.plot(range(len(days)), shares, marker="o", color="#15803d", label="resolved at first contact")
    if len(days) <= 12:
        for x, y in enumerate(shares):
            ax.annotate(f"{y:.0f} %", (x, y), xytext=(0, 6), textcoords="offset points", ha="center", fontsize=8)
    ax.axhline(100 * FCR_GOAL, color="#6b7280", linestyle="--", label=f"goal {100 * FCR_GOAL:.0f} %")
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of visitors")
    _day_ticks(ax, labels)
    ax.legend(loc="lower right", frameon=False)
    ax.set_title("First-contact resolution per day")
    return _png(fig)


def chart_promise(figures: Figures) -> bytes:
    """How good the printed expected wait was: its mean error and the share within the printed range."""
    plt = _pyplot()
    by_day = stats.group(figures.tallies, "day")
    days = [d for (d,) in by_day if by_day[(d,)].promised]
    mae = [by_day[(d,)].promise_error_s / by_day[(d,)].promised / 60 for d in days]
    within = [100 * by_day[(d,)].in_range / by_day[(d,)].ranged if by_day[(d,)].ranged else float("nan")
              for d in days]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar(range(len(days)), mae, color="#6d28d9", alpha=0.8, label="mean error of the printed wait, min")
    ax.set_ylabel("minutes")
    right = ax.twinx()
    right.plot(range(len(days)), within, color="#0e7490", marker="o", label="real wait within the printed range")
    right.set_ylim(0, 105)
    right.set_ylabel("% of tickets", color="#0e7490")
    right.spines["right"].set_visible(True)
    labels = [date.fromisoformat(d).strftime("%a %d.%m") for d in days]
    _day_ticks(ax, labels)
    handles = ax.get_legend_handles_labels()
    extra = right.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper center", bbox_to_anchor=(0.5, -0.12 if
              len(days) <= 6 else -0.25), ncols=2, frameon=False)
    ax.set_title("How good the expected wait on the ticket was")
    return _png(fig)


def chart_counters(figures: Figures) -> bytes:
    """Each counter's open time: serving, idle and paused."""
    plt = _pyplot()
    hall = figures.hall
    by_counter = stats.group(figures.tallies, "counter")
    counters = [c for c in hall.counters if (c,) in by_counter] + sorted(
        c for (c,) in by_counter if c not in hall.counters)
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.45 * max(1, len(counters))))
    left = [0.0] * len(counters)
    for name, colour, label in (("serving_s", "#1f6feb", "serving"), ("idle_s", "#d1d5db", "idle"),
                                ("paused_s", "#f59e0b", "paused")):
        values = [getattr(by_counter[(c,)], name) / 3600 for c in counters]
        ax.barh(range(len(counters)), values, left=left, color=colour, label=label)
        left = [a + b for a, b in zip(left, values, strict=True)]
    names = [hall.counters[c].name[hall.main_language] if c in hall.counters else c for c in counters]
    ax.set_yticks(range(len(counters)), names)
    ax.invert_yaxis()
    ax.set_xlabel("hours open")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5 / max(1, len(counters)) - 0.12), frameon=False,
              ncols=3)
    ax.set_title("Counter time")
    return _png(fig)


def chart_ratings(figures: Figures) -> bytes:
    """How many visitors gave each face, per topic: the distribution behind the mean."""
    plt = _pyplot()
    hall = figures.hall
    by_topic = {label: tally for label, tally in stats.group(figures.tallies, "topic").items() if tally.ratings}
    topics = [t for t in hall.topics if (t,) in by_topic] + sorted(t for (t,) in by_topic if t not in hall.topics)
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.45 * max(1, len(topics))))
    left = [0.0] * len(topics)
    colours = ("#b91c1c", "#f97316", "#d1d5db", "#60a5fa", "#1d4ed8")
    for score, colour in zip((1, 2, 3, 4, 5), colours, strict=True):
        values = [float(sum(1 for r in by_topic[(t,)].ratings if r == score)) for t in topics]
        ax.barh(range(len(topics)), values, left=left, color=colour, label=str(score))
        left = [a + b for a, b in zip(left, values, strict=True)]
    names = [hall.topics[t].name[hall.main_language] if t in hall.topics else t for t in topics]
    ax.set_yticks(range(len(topics)), names)
    ax.invert_yaxis()
    ax.set_xlabel("ratings (1 the worst, 5 the best)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5 / max(1, len(topics)) - 0.12), frameon=False, ncols=5)
    ax.set_title("Visitors' ratings")
    return _png(fig)


def _day_ticks(ax: Any, labels: list[str]) -> None:
    """Day labels under a chart: all of a week, every few of a month, slanted when there are many."""
    step = max(1, math.ceil(len(labels) / 10))
    ax.set_xticks(range(0, len(labels), step), labels[::step], rotation=30 if len(labels) > 6 else 0,
                  ha="right" if len(labels) > 6 else "center")


CHARTS: tuple[tuple[str, str, Callable[[Figures], bytes]], ...] = (
    ("hours.png", "Waiting and served per hour", chart_hours),
    ("waits.png", "Waits per topic", chart_waits),
    ("first_contact.png", "First-contact resolution per day", chart_fcr),
    ("promise.png", "How good the expected wait on the ticket was", chart_promise),
    ("counters.png", "Counter time", chart_counters),
    ("ratings.png", "Visitors' ratings", chart_ratings),  # drawn only when someone rated
)


# ---------------------------------------------------------------- the page

def _cell(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


def _table(table: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(key))}</td>" for key, _ in columns) + "</tr>"
                   for row in table)
    return f"<div class=\"wide\"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


SUMMARY = (("issued", "drawn"), ("served", "served"), ("forwarded", "forwarded"), ("noshows", "no-shows"),
           ("expired", "expired"), ("wait_mean_min", "wait, mean min"), ("wait_median_min", "median"),
           ("wait_p90_min", "90th pct"), ("within_target_pct", "% within target"),
           ("service_mean_min", "visit, mean min"), ("first_contact_resolution_pct", "% resolved at first contact"),
           ("promise_mae_min", "printed wait off by, min"), ("promise_in_range_pct", "% within printed range"))
COUNTER_COLUMNS = (("served", "served"), ("forwarded", "forwarded"), ("noshows", "no-shows"),
                   ("service_mean_min", "visit, mean min"), ("first_contact_resolution_pct", "% resolved first"),
                   ("serving_h", "serving h"), ("idle_h", "idle h"), ("paused_h", "paused h"),
                   ("serving_pct", "% of open time serving"))
RATING_COLUMNS = (("ratings", "ratings"), ("rating_mean", "mean (1–5)"), *((f"rating_{s}", str(s)) for s in
                                                                           (1, 2, 3, 4, 5)),
                  ("response_rate_pct", "% of served who rated"))

_STYLE = """
body { font-family: "DejaVu Sans", Verdana, sans-serif; margin: 2em auto; max-width: 60em; color: #111827; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #d1d5db; }
p.lead { color: #4b5563; margin-top: 0; } img { max-width: 100%; display: block; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; white-space: nowrap; } th { background: #f3f4f6; }
div.wide { overflow-x: auto; }
footer { margin-top: 2em; color: #6b7280; font-size: 0.8em; }
"""


def render_html(figures: Figures, charts: Mapping[str, bytes], tables: Mapping[str, list[dict[str, Any]]],
                generated: datetime) -> str:
    hall = figures.hall
    name = html.escape(hall.name[hall.main_language])
    span = f"{figures.first.isoformat()} – {figures.last.isoformat()}"
    whole = rows(figures, ())
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name}: {span}</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>{name}</h1><p class=\"lead\">Statistics {span}: {len(figures.days)} day(s) with visitors"
             + (f", {len(figures.purged_days)} of them from the kept daily figures" if figures.purged_days else "")
             + ".</p>"]
    if not figures.days:
        parts.append("<p>No visitors in this range.</p>")
    else:
        parts.append("<h2>The range</h2>" + _table(whole, SUMMARY))
        for file, title, _ in CHARTS:
            if file in charts:
                data = base64.b64encode(charts[file]).decode("ascii")
                parts.append(f"<h2>{html.escape(title)}</h2><img alt=\"{html.escape(title)}\" "
                             f"src=\"data:image/png;base64,{data}\">")
                if file == "waits.png":
                    parts.append(_table(tables["topics"], (("topic_name", "topic"), *SUMMARY)))
                elif file == "counters.png":
                    parts.append(_table(tables["counters"], (("counter_name", "counter"), *COUNTER_COLUMNS)))
                elif file == "ratings.png":
                    parts.append("<p>What visitors said on their ticket's page when their visit was done. "
                                 "Comments are not shown here: they stay in the hall's log only as long as its "
                                 "tickets (statistics.keep_ticket_days).</p>")
                    for key, label in (("topics", "topic"), ("counters", "counter"), ("days", "day")):
                        first = ("day", "day") if key == "days" else (f"{label}_name", label)
                        parts.append(_table([r for r in tables[key] if r.get("ratings")], (first, *RATING_COLUMNS)))
                elif file == "hours.png":
                    parts.append(_table(tables["hours"], (("hour", "hour"), ("issued", "drawn"),
                                                          ("served", "served"), ("mean_waiting", "waiting, mean"),
                                                          ("wait_mean_min", "wait, mean min"),
                                                          ("within_target_pct", "% within target"))))
        parts.append("<h2>Day by day</h2>" + _table(tables["days"], (("day", "day"), *SUMMARY)))
    parts.append(f"<footer>Made by Vuoro on {generated.strftime('%Y-%m-%d %H:%M')}. Visits are anonymous: "
                 "these are counts and durations only. Waits run from drawing the ticket to the first call; a "
                 "visit from the call to done or forward. The 90th percentile is the nearest rank. "
                 "The CSV files beside this page hold every figure per day, topic, counter and hour.</footer>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(figures: Figures, out: Path, generated: datetime) -> list[Path]:
    """CSV files, PNG charts and index.html into `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tables = {name: rows(figures, by) for name, by in TABLES}
    for name, table in tables.items():
        path = out / f"{name}.csv"
        write_csv(path, table)
        written.append(path)
    charts: dict[str, bytes] = {}
    if figures.days:
        rated = any(tally.ratings for tally in figures.tallies.values())
        for file, _, draw in CHARTS:
            if file == "ratings.png" and not rated:
                continue
            charts[file] = draw(figures)
            (out / file).write_bytes(charts[file])
            written.append(out / file)
    page = out / "index.html"
    page.write_text(render_html(figures, charts, tables, generated), encoding="utf-8")
    written.append(page)
    return written

