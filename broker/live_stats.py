"""Today's figures for the retained `state/stats` message: the hall, each topic and counter, and the visitors'
ratings, rounded so that the message changes only when a figure does. Pure: a Collector in, values out.

May import stats and protocol only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from broker import stats


def _brief(tally: stats.Tally) -> dict[str, Any]:
    """Today's figures of a topic or the hall, rounded so that a retained message changes only when they do."""
    f = tally.figures()
    return {
        "issued": f["issued"], "called": f["called"], "served": f["served"], "forwarded": f["forwarded"],
        "noshows": f["noshows"], "expired": f["expired"],
        "wait_mean_s": _round(f["wait_mean_s"]), "wait_median_s": _round(f["wait_median_s"]),
        "wait_p90_s": _round(f["wait_p90_s"]), "within_target": _round(f["within_target"], 2),
        "service_mean_s": _round(f["service_mean_s"]),
        "first_contact_resolution": _round(f["first_contact_resolution"], 2),
        "promise_mae_s": _round(f["promise_mae_s"]), "promise_in_range": _round(f["promise_in_range"], 2),
    }


def _feedback(tally: stats.Tally) -> dict[str, Any]:
    """Today's visitor ratings of a topic, counter or the hall."""
    f = tally.figures()
    return {"ratings": f["ratings"], "rating_mean": _round(f["rating_mean"], 2),
            "rating_counts": f["rating_counts"], "response_rate": _round(f["response_rate"], 2)}


def _round(value: float | None, digits: int = 0) -> float | int | None:
    if value is None:
        return None
    return round(value) if digits == 0 else round(value, digits)


def live_figures(collector: stats.Collector, now: datetime) -> dict[str, Any]:
    """The body of the retained `state/stats` message: today so far, for the hall, each topic and counter."""
    today = {key: tally for key, tally in collector.tallies.items() if key[0] == collector.day}
    topics = {topic: _brief(tally) for (topic,), tally in stats.group(today, "topic").items()}
    by_counter = stats.group(today, "counter")
    for (_, _, counter, _), tally in collector.open_spans(now).items():  # the counters' time up to now
        if counter:
            by_counter.setdefault((counter,), stats.Tally()).merge(tally)
    counters = {}
    for (counter,), tally in sorted(by_counter.items()):
        f = tally.figures()
        counters[counter] = {
            "served": f["served"], "forwarded": f["forwarded"], "noshows": f["noshows"],
            "service_mean_s": _round(f["service_mean_s"]),
            "first_contact_resolution": _round(f["first_contact_resolution"], 2),
            "serving_min": round(tally.serving_s / 60), "idle_min": round(tally.idle_s / 60),
            "paused_min": round(tally.paused_s / 60),
        }
    feedback = {"hall": _feedback(stats.total(today.values())),
                "topics": {topic: _feedback(tally) for (topic,), tally in stats.group(today, "topic").items()},
                "counters": {counter: _feedback(tally) for (counter,), tally in stats.group(today, "counter").items()}}
    return {"day": collector.day, "hall": _brief(stats.total(today.values())), "topics": topics, "counters": counters,
            "feedback": feedback}
