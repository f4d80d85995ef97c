"""Prometheus / OpenMetrics figures of every hall, from the live city picture (city/live.py) and, in the
collector, its own counts: queue lengths and expected waits per topic, counters by status, devices by status
and kiosks' paper, each hall server up or down, today's served and median wait, and the collector's events
written, replayed and refused. Built at each scrape from what is known then (a custom collector), so a hall or a
topic that goes away leaves no stale series. Imports prometheus_client (the `city` extra)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as _Collector

from broker import protocol as p
from city.live import CityState

PAPER_STATES = ("paper_near_end", "paper_out")


class CityCollector(_Collector):
    """`snapshot()` gives CityState.snapshot() (taken under the owner's lock); `counts()` the collector's Counts
    as a dict, or None where there is no collector (the overview)."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]],
                 counts: Callable[[], dict[str, int]] | None = None) -> None:
        self.snapshot, self.counts = snapshot, counts

    def collect(self) -> Iterator[Metric]:
        halls = self.snapshot()["halls"]
        yield from _hall_metrics(halls)
        yield from _queue_metrics(halls)
        yield from _device_metrics(halls)
        if self.counts is not None:
            yield from _collector_metrics(self.counts())


def _hall_metrics(halls: list[dict[str, Any]]) -> Iterator[Metric]:
    up = GaugeMetricFamily("vuoro_hall_server_up", "1 when the hall server says it is online", labels=["hall"])
    waiting = GaugeMetricFamily("vuoro_hall_waiting", "visitors waiting in the hall", labels=["hall"])
    counters = GaugeMetricFamily("vuoro_hall_counters", "counters by status", labels=["hall", "status"])
    served = GaugeMetricFamily("vuoro_hall_served_today", "visits served today", labels=["hall"])
    median = GaugeMetricFamily("vuoro_hall_wait_median_today_seconds", "today's median wait", labels=["hall"])
    for hall in halls:
        h = hall["hall"]
        up.add_metric([h], 1.0 if hall["server"] == p.ONLINE else 0.0)
        if isinstance(hall.get("waiting"), int | float):
            waiting.add_metric([h], float(hall["waiting"]))
        statuses: dict[str, int] = {}
        for status in hall["counters"].values():
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        for status, n in sorted(statuses.items()):
            counters.add_metric([h, status], n)
        today = hall.get("today") or {}
        if isinstance(today.get("served"), int | float):
            served.add_metric([h], float(today["served"]))
        if isinstance(today.get("wait_median_s"), int | float):
            median.add_metric([h], float(today["wait_median_s"]))
    yield from (up, waiting, counters, served, median)


def _queue_metrics(halls: list[dict[str, Any]]) -> Iterator[Metric]:
    waiting = GaugeMetricFamily("vuoro_queue_waiting", "visitors waiting for a topic", labels=["hall", "topic"])
    wait = GaugeMetricFamily("vuoro_queue_expected_wait_seconds", "the wait a new ticket of the topic is told",
                             labels=["hall", "topic"])
    for hall in halls:
        for topic, queue in hall["queues"].items():
            if isinstance(queue.get("waiting"), int | float):
                waiting.add_metric([hall["hall"], topic], float(queue["waiting"]))
            if isinstance(queue.get("expected_wait_s"), int | float):
                wait.add_metric([hall["hall"], topic], float(queue["expected_wait_s"]))
    yield from (waiting, wait)


def _device_metrics(halls: list[dict[str, Any]]) -> Iterator[Metric]:
    online = GaugeMetricFamily("vuoro_device_online", "1 when the device says it is online",
                               labels=["hall", "role", "device"])
    paper = GaugeMetricFamily("vuoro_kiosk_paper_low", "1 when a kiosk's printer is near its paper's end or out",
                              labels=["hall", "device", "state"])
    for hall in halls:
        for device in hall["devices"]:
            online.add_metric([hall["hall"], device["role"], device["device"]],
                              1.0 if device["status"] == p.ONLINE else 0.0)
            if device["role"] == "kiosk" and device.get("printer") in PAPER_STATES:
                paper.add_metric([hall["hall"], device["device"], device["printer"]], 1.0)
    yield from (online, paper)


def _collector_metrics(counts: dict[str, int]) -> Iterator[Metric]:
    for name, text in (("written", "events written into the city database"),
                       ("replayed", "events the halls replayed"), ("live", "events that came over the bridges"),
                       ("duplicates", "events that came twice (kept once)"), ("refused", "messages that were no event"),
                       ("db_errors", "failed writes to the city database")):
        family = CounterMetricFamily(f"vuoro_collector_{name}", text)
        family.add_metric([], float(counts.get(name, 0)))
        yield family


def registry_for(snapshot: Callable[[], dict[str, Any]],
                 counts: Callable[[], dict[str, int]] | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CityCollector(snapshot, counts))
    return registry


def locked_snapshot(state: CityState, lock: threading.Lock) -> Callable[[], dict[str, Any]]:
    def take() -> dict[str, Any]:
        with lock:
            return state.snapshot()

    return take


def serve_metrics(collector: Any, host: str, port: int) -> Any:
    """The collector's metrics on http://host:port/metrics; returns the HTTP server (its shutdown() stops it)."""
    registry = registry_for(locked_snapshot(collector.city, collector.city_lock),
                            lambda: dict(collector.counts.__dict__))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
