"""A display's own settings in the hall config: read from the demo hall, defaulted, and strictly refused when wrong."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest

from broker.config import DEFAULT_HALL_COLOUR, DEMO_HALL, ConfigError, parse_hall

DEMO = tomllib.loads(DEMO_HALL.read_text(encoding="utf-8"))


def variant(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(DEMO)
    change(data)
    return data


def refused(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_hall(data, "hall.toml")
    return info.value


def test_the_demo_displays_settings_are_read() -> None:
    hall = parse_hall(copy.deepcopy(DEMO), "demo")
    entrance, upstairs = hall.displays["entrance"], hall.displays["upstairs"]
    assert (entrance.announce, entrance.rotate_languages_s, entrance.history, entrance.counters) == (True, 10, 6, ())
    assert upstairs.history == 4
    assert upstairs.wayfinding["6"]["en"] == "Here on the 2nd floor, to the right"
    assert set(upstairs.wayfinding) == set(hall.counters) and entrance.wayfinding == {}
    assert hall.colour == "#14365d"


def test_a_display_with_nothing_but_directions_gets_the_defaults() -> None:
    def strip(data: dict[str, Any]) -> None:
        for display in data["displays"]:
            for key in ("announce", "rotate_languages_s", "history", "wayfinding"):
                display.pop(key, None)
        data["hall"].pop("colour")

    hall = parse_hall(variant(strip), "hall.toml")
    display = hall.displays["upstairs"]
    assert (display.announce, display.counters, display.rotate_languages_s, display.history,
            display.highlight_s, dict(display.wayfinding)) == (True, (), 10, 6, 10, {})
    assert display.shows("1") and hall.colour == DEFAULT_HALL_COLOUR


def test_a_counter_filter_names_real_counters() -> None:
    hall = parse_hall(variant(lambda d: d["displays"][1].update(counters=["6", "4"])), "hall.toml")
    display = hall.displays["upstairs"]
    assert display.counters == ("6", "4") and display.shows("6") and not display.shows("1")


@pytest.mark.parametrize(("key", "value", "path", "words"), [
    ("counters", ["9"], "displays[0].counters", ["'9'", "not a counter"]),
    ("counters", ["1", "1"], "displays[0].counters", ["twice"]),
    ("counters", [1], "displays[0].counters", ["strings"]),
    ("counters", "1", "displays[0].counters", ["array"]),
    ("announce", "yes", "displays[0].announce", ["boolean"]),
    ("rotate_languages_s", 2, "displays[0].rotate_languages_s", ["between 3 and 3600", "or 0"]),
    ("rotate_languages_s", -1, "displays[0].rotate_languages_s", ["between"]),
    ("history", 21, "displays[0].history", ["between 0 and 20"]),
    ("highlight_s", 0, "displays[0].highlight_s", ["between 1 and 300"]),
    ("wayfinding", {"9": {"sv": "x", "fi": "x", "en": "x", "se": "x"}}, "displays[0].wayfinding.9", ["not a counter"]),
    ("wayfinding", {"1": {"sv": "x", "fi": "x", "en": "x"}}, "displays[0].wayfinding.1.se", ["missing"]),
    ("wayfinding", {"1": {"sv": "x", "fi": "x", "en": "x", "se": " "}}, "displays[0].wayfinding.1.se", ["empty"]),
    ("orientation", "portrait", "displays[0].orientation", ["not a known key"]),
])
def test_a_wrong_display_setting_is_refused_naming_the_key(key: str, value: Any, path: str,
                                                           words: list[str]) -> None:
    error = refused(variant(lambda d: d["displays"][0].update({key: value})))
    assert error.key == path, str(error)
    for word in words:
        assert word in error.problem, str(error)


def test_the_hall_colour_must_be_a_colour() -> None:
    error = refused(variant(lambda d: d["hall"].update(colour="navy")))
    assert error.key == "hall.colour" and "#14365d" in error.problem
