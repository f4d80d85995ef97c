"""Statistics from the event log (broker/stats.py): a hand-made morning with a known answer for every figure.

The morning, on Monday 2026-11-30 (open 08:00-17:00), through the real engine on a fake clock:

    08:00  counters 1 and 4 open
    08:10  A001 drawn            08:12  A002 drawn
    08:15  1 calls A001 (waited 300 s)          08:25  A001 done, resolved (a visit of 600 s)
    08:25  1 calls A002 (waited 780 s)          08:30  A002 forwarded to permits (a visit of 300 s)
    08:40  4 calls A002 (forwarded: no first wait)
    08:50  B001 drawn            09:05  A002 done, resolved at 4 (1500 s)
    09:10  4 calls B001 (waited 1200 s), recalls twice, 09:12 no-show
    09:20  1 pauses              09:30  1 opens again
    09:40  A003 drawn            09:41  1 calls A003 (waited 60 s)   09:50  done, handed on (540 s)
    09:55  A004 drawn; nobody calls it       10:00  counter 1 closes
    next morning: A004 expires and counter 4 is closed for the day's end, taken as 17:00.

General questions have a target wait of 10 min, permits 20 min.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from broker import live_stats, stats
from broker import protocol as p
from broker.config import HallConfig
from broker.store import Store
from tests.test_engine import Desk

TZ = ZoneInfo("Europe/Helsinki")
EIGHT = datetime(2026, 11, 30, 8, 0, tzinfo=TZ)
DAY = "2026-11-30"


def at(desk: Desk, hh: int, mm: int, ss: int = 0) -> None:
    desk.clock.set(EIGHT.replace(hour=hh, minute=mm, second=ss))


def the_morning(hall: HallConfig, *, next_day: bool = True) -> list[p.Event]:
    desk = Desk(hall, start=EIGHT)
    desk.at("1", "open")
    desk.at("4", "open")
    at(desk, 8, 10)
    desk.issue()
    at(desk, 8, 12)
    desk.issue()
    at(desk, 8, 15)
    desk.call("1")
    at(desk, 8, 25)
    desk.at("1", "done", outcome="resolved")
    desk.call("1")
    at(desk, 8, 30)
    desk.at("1", "forward", topic="permits")
    at(desk, 8, 40)
    assert desk.call("4") == "A002"
    at(desk, 8, 50)
    desk.issue("permits")
    at(desk, 9, 5)
    desk.at("4", "done", outcome="resolved")
    at(desk, 9, 10)
    assert desk.call("4") == "B001"
    at(desk, 9, 11)
    desk.at("4", "recall")
    at(desk, 9, 11, 30)
    desk.at("4", "recall")
    at(desk, 9, 12)
    desk.at("4", "noshow")
    at(desk, 9, 20)
    desk.at("1", "pause")
    at(desk, 9, 30)
    desk.at("1", "open")
    at(desk, 9, 40)
    desk.issue()
    at(desk, 9, 41)
    desk.call("1")
    at(desk, 9, 50)
    desk.at("1", "done", outcome="handed_on")
    at(desk, 9, 55)
    desk.issue()
    at(desk, 10, 0)
    desk.at("1", "close")
    if next_day:
        desk.clock.set(EIGHT + timedelta(days=1))
        desk.send("admin", "cli", "ping")
    return desk.events


@pytest.fixture(scope="module")
def morning(hall: HallConfig) -> list[p.Event]:
    return the_morning(hall)


@pytest.fixture(scope="module")
def tallies(morning: list[p.Event], hall: HallConfig) -> dict[stats.Key, stats.Tally]:
    return stats.collect(morning, hall)


def one(tallies: dict[stats.Key, stats.Tally], *by: str) -> dict[object, dict[str, object]]:
    return {label if len(label) > 1 else label[0]: t.figures() for label, t in stats.group(tallies, *by).items()}


def promises(morning: list[p.Event]) -> dict[str, tuple[int, list[int]]]:
    """What each ticket was promised, as its ticket.issued event says."""
    return {e.data["ticket"]["number"]: (e.data["ticket"]["expected_wait_s"], e.data["ticket"]["expected_wait_range_s"])
            for e in morning if e.type == p.TICKET_ISSUED}


def test_the_day(tallies: dict[stats.Key, stats.Tally], morning: list[p.Event]) -> None:
    days = one(tallies, "day")
    assert set(days) == {DAY}  # the next day has begun but has no visitors yet
    day = days[DAY]
    assert {k: day[k] for k in ("issued", "called", "served", "noshows", "expired", "forwarded")} == \
        {"issued": 5, "called": 4, "served": 3, "noshows": 1, "expired": 1, "forwarded": 1}
    assert (day["wait_mean_s"], day["wait_median_s"], day["wait_p90_s"]) == (585.0, 540.0, 1200.0)
    assert day["within_target"] == 3 / 4  # A002 waited 13 min for a 10-minute target; B001 exactly 20 of 20
    assert (day["service_mean_s"], day["service_median_s"]) == (735.0, 570.0)  # 600, 300, 1500, 540
    assert day["first_contact_resolution"] == 1 / 3  # A001 yes; A002 forwarded; A003 handed on; B001 never seen
    assert (day["serving_s"], day["idle_s"], day["paused_s"]) == (1440 + 1620, 5160 + 30780, 600)
    assert day["serving_share"] == pytest.approx(3060 / (3060 + 35940 + 600))
    promised = promises(morning)
    real = {"A001": 300, "A002": 780, "B001": 1200, "A003": 60}
    assert day["promise_mae_s"] == pytest.approx(sum(abs(real[n] - promised[n][0]) for n in real) / 4)
    assert day["promise_in_range"] == sum(promised[n][1][0] <= real[n] <= promised[n][1][1] for n in real) / 4
    assert stats.total(tallies.values()).waiting_s == 300 + 780 + 600 + 1200 + 60 + 25500


def test_per_topic(tallies: dict[stats.Key, stats.Tally]) -> None:
    topics = one(tallies, "topic")
    assert set(topics) == {"general", "permits"}
    general, permits = topics["general"], topics["permits"]
    assert (general["issued"], general["expired"], general["served"], general["forwarded"], general["noshows"]) == \
        (4, 1, 2, 1, 0)
    assert (general["wait_mean_s"], general["wait_median_s"], general["wait_p90_s"]) == (380.0, 300.0, 780.0)
    assert general["within_target"] == 2 / 3
    assert (general["service_mean_s"], general["first_contact_resolution"]) == (480.0, 1 / 3)
    # A002 was served for permits at counter 4 after its forward; B001 left
    assert (permits["issued"], permits["served"], permits["noshows"], permits["called"]) == (1, 1, 1, 1)
    assert (permits["wait_mean_s"], permits["within_target"], permits["service_mean_s"]) == (1200.0, 1.0, 1500.0)
    assert permits["first_contact_resolution"] is None
    assert general["serving_s"] == 0 and general["idle_s"] == 0  # counter time has no topic


def test_per_counter(tallies: dict[stats.Key, stats.Tally]) -> None:
    counters = one(tallies, "counter")
    assert set(counters) == {"1", "4"}
    first, fourth = counters["1"], counters["4"]
    assert (first["called"], first["served"], first["forwarded"], first["noshows"]) == (3, 2, 1, 0)
    assert (first["wait_mean_s"], first["service_mean_s"], first["first_contact_resolution"]) == (380.0, 480.0, 1 / 3)
    assert (first["serving_s"], first["idle_s"], first["paused_s"]) == (1440, 5160, 600)
    assert (fourth["called"], fourth["served"], fourth["noshows"], fourth["wait_mean_s"]) == (1, 1, 1, 1200.0)
    assert (fourth["serving_s"], fourth["idle_s"], fourth["paused_s"]) == (1500 + 120, 9 * 3600 - 1620, 0)
    assert fourth["first_contact_resolution"] is None
    assert first["issued"] == 0  # a drawn ticket has no counter


def test_per_hour(tallies: dict[stats.Key, stats.Tally]) -> None:
    hours = one(tallies, "hour")
    eight, nine = hours[8], hours[9]
    assert (eight["issued"], eight["called"], eight["served"], eight["forwarded"], eight["noshows"]) == (3, 3, 2, 1, 0)
    assert (eight["wait_mean_s"], eight["first_contact_resolution"]) == (760.0, 0.5)
    assert eight["service_mean_s"] == 800.0  # 600, 300 and A002's 1500 at counter 4, called at 08:40
    assert (nine["issued"], nine["expired"], nine["called"], nine["served"], nine["noshows"]) == (2, 1, 1, 1, 1)
    assert (nine["wait_mean_s"], nine["service_mean_s"], nine["first_contact_resolution"]) == (60.0, 540.0, 0.0)
    assert (eight["serving_s"], eight["idle_s"], eight["paused_s"]) == (900 + 1200, 2700 + 2400, 0)
    assert (nine["serving_s"], nine["idle_s"], nine["paused_s"]) == (540 + 420, 2460 + 3180, 600)
    for hour in range(10, 17):  # counter 4 open and idle until 17:00, A004 waiting
        assert (hours[hour]["idle_s"], hours[hour]["serving_s"]) == (3600, 0)
    assert 17 not in hours
    waiting = {h: t.waiting_s for (h,), t in stats.group(tallies, "hour").items()}
    assert waiting == {8: 2280, 9: 960, **{h: 3600 for h in range(10, 17)}}


def test_per_day_and_topic_and_hour_at_once(tallies: dict[stats.Key, stats.Tally]) -> None:
    cells = one(tallies, "day", "topic", "hour")
    assert cells[(DAY, "general", 8)]["issued"] == 2 and cells[(DAY, "permits", 8)]["issued"] == 1
    assert cells[(DAY, "general", 9)]["expired"] == 1


def test_a_counter_left_open_overnight_counts_until_closing_time_not_until_morning(hall: HallConfig) -> None:
    events = the_morning(hall)
    rollover = [e for e in events if e.data.get("reason") == "day_end"]
    assert {e.type for e in rollover} == {p.TICKET_EXPIRED, p.COUNTER_CLOSED}
    assert rollover[0].at.startswith("2026-12-01T08:00")  # logged the next morning...
    counters = one(stats.collect(events, hall), "counter")
    assert counters["4"]["idle_s"] + counters["4"]["serving_s"] == 9 * 3600  # ...counted until 17:00


def test_a_day_still_running_counts_its_open_spans_until_its_last_event_or_closing(hall: HallConfig) -> None:
    events = the_morning(hall, next_day=False)
    counters = one(stats.collect(events, hall), "counter")
    assert counters["4"]["idle_s"] + counters["4"]["serving_s"] == 9 * 3600


def test_live_figures_count_what_is_going_on_up_to_now(hall: HallConfig, morning: list[p.Event]) -> None:
    collector = stats.Collector(hall, today_only=True)
    for event in morning:
        if event.at >= "2026-11-30T09:00":
            break
        collector.add(event)
    live = live_stats.live_figures(collector, EIGHT.replace(hour=9))
    assert live["day"] == DAY
    assert live["hall"]["issued"] == 3 and live["hall"]["wait_mean_s"] == 540  # B001 is still waiting
    assert live["topics"]["general"]["first_contact_resolution"] == 0.5
    assert live["counters"]["1"] == {"served": 1, "forwarded": 1, "noshows": 0, "service_mean_s": 450,
                                     "first_contact_resolution": 0.5, "serving_min": 15, "idle_min": 45,
                                     "paused_min": 0}
    assert live["counters"]["4"]["serving_min"] == 20  # A002 since 08:40, still under way
    again = live_stats.live_figures(collector, EIGHT.replace(hour=9))
    assert again == live  # looking does not change the figures
    for event in morning:  # and the next day starts from nothing
        if event.at >= "2026-11-30T09:00":
            collector.add(event)
    assert live_stats.live_figures(collector, EIGHT + timedelta(days=1))["hall"]["issued"] == 0


def test_purged_days_keep_their_figures(hall: HallConfig, morning: list[p.Event], tmp_path) -> None:
    store = Store(tmp_path / "h.sqlite", hall.id)
    store.commit([(e, p.encode(e.payload())) for e in morning], [])
    before = stats.collect(store.events(), hall)
    assert store.purge_before("2026-12-01", lambda events: stats.day_rows(events, hall)) == [DAY]
    assert [day for day, _, _ in store.days()] == ["2026-12-01"]
    assert not any(e.type == p.TICKET_ISSUED for e in store.events())
    kept = stats.from_rows(store.daily_rows(DAY, DAY))
    assert set(kept) == {k for k in before if k[0] == DAY}
    for key, tally in kept.items():
        assert tally.figures() == before[key].figures()
    assert store.purge_before("2027-01-01", lambda events: stats.day_rows(events, hall)) == []  # never today
    store.close()


def test_json_of_a_tally_holds_no_ticket_number_or_language(tallies: dict[stats.Key, stats.Tally]) -> None:
    text = repr([t.to_json() for t in tallies.values()])
    assert "A00" not in text and "B00" not in text and "'sv'" not in text


def rated_morning(hall: HallConfig) -> list[p.Event]:
    """Three visits at two counters: A001 at 1 rated 5 with a comment, A002 at 2 rated 2, A003 a no-show
    (cannot be rated); then the next day starts."""
    desk = Desk(hall, start=EIGHT)
    desk.at("1", "open")
    desk.at("2", "open")
    at(desk, 8, 10)
    for n in (1, 2, 3):
        desk.issue(token=f"token-{n}-" + "x" * 14)
    at(desk, 8, 15)
    desk.call("1")
    desk.call("2")
    at(desk, 8, 25)
    desk.at("1", "done", outcome="resolved")
    desk.at("2", "done", outcome="resolved")
    assert desk.send("web", "web", "feedback", token="token-1-" + "x" * 14, score=5, comment="Kiitos, Maija!").ok
    assert desk.send("web", "web", "feedback", token="token-2-" + "x" * 14, score=2).ok
    at(desk, 8, 30)
    desk.call("1")
    desk.at("1", "recall")
    desk.at("1", "recall")
    desk.at("1", "noshow")
    assert not desk.send("web", "web", "feedback", token="token-3-" + "x" * 14, score=1).ok
    desk.clock.set(EIGHT + timedelta(days=1))
    desk.send("admin", "cli", "ping")
    return desk.events


def test_ratings_are_filed_per_topic_counter_and_day_with_mean_distribution_and_response_rate(
        hall: HallConfig) -> None:
    tallies = stats.collect(rated_morning(hall), hall)
    hall_figures = stats.total(tallies.values()).figures()
    assert hall_figures["ratings"] == 2 and hall_figures["rating_mean"] == 3.5
    assert hall_figures["rating_counts"] == [0, 1, 0, 0, 1]
    assert hall_figures["response_rate"] == 1.0  # both visits that ended done were rated
    counters = one(tallies, "counter")
    assert (counters["1"]["ratings"], counters["1"]["rating_5"], counters["1"]["noshows"]) == (1, 1, 1)
    assert (counters["2"]["ratings"], counters["2"]["rating_2"]) == (1, 1)
    assert one(tallies, "day")[DAY]["ratings"] == 2
    assert one(tallies, "topic")["general"]["rating_mean"] == 3.5
    assert "Maija" not in repr([t.to_json() for t in tallies.values()])  # a comment is never filed


def test_live_figures_carry_todays_ratings(hall: HallConfig) -> None:
    collector = stats.Collector(hall, today_only=True)
    for event in rated_morning(hall):
        if event.at >= "2026-12-01":
            break
        collector.add(event)
    feedback = live_stats.live_figures(collector, EIGHT.replace(hour=9))["feedback"]
    assert feedback["hall"] == {"ratings": 2, "rating_mean": 3.5, "rating_counts": [0, 1, 0, 0, 1],
                                "response_rate": 1.0}
    assert feedback["counters"]["1"]["rating_counts"] == [0, 0, 0, 0, 1]
    assert feedback["counters"]["2"]["rating_mean"] == 2.0 and feedback["topics"]["general"]["ratings"] == 2


def test_a_purged_day_keeps_its_ratings_and_loses_its_comments(hall: HallConfig, tmp_path) -> None:
    store = Store(tmp_path / "h.sqlite", hall.id)
    store.commit([(e, p.encode(e.payload())) for e in rated_morning(hall)], [])
    assert any("Maija" in str(e.payload()) for e in store.events())
    assert store.purge_before("2026-12-01", lambda events: stats.day_rows(events, hall)) == [DAY]
    assert not any("Maija" in str(e.payload()) for e in store.events())
    kept = stats.total(stats.from_rows(store.daily_rows(DAY, DAY)).values()).figures()
    assert (kept["ratings"], kept["rating_mean"], kept["response_rate"]) == (2, 3.5, 1.0)
    store.close()
