"""The hall config: the demo hall loads, and every refusal tells IT the file, the key path and the problem."""

from __future__ import annotations

import copy
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from broker.config import DEMO_HALL, ConfigError, HallConfig, OpeningHours, load_hall, parse_hall

TZ = ZoneInfo("Europe/Helsinki")
DEMO_TEXT = DEMO_HALL.read_text(encoding="utf-8")
DEMO_DATA = tomllib.loads(DEMO_TEXT)


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11, year: int = 2026) -> datetime:
    """A moment in the hall's zone; 2026-11-30 is a Monday."""
    return datetime(year, month, day, hour, minute, second, tzinfo=TZ)


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    """The demo file with one exact, unique piece of text replaced (so the mutation cannot silently miss)."""
    assert DEMO_TEXT.count(old) == 1, f"{old!r} occurs {DEMO_TEXT.count(old)} times in the demo hall"
    path = tmp_path / "hall.toml"
    path.write_text(DEMO_TEXT.replace(old, new), encoding="utf-8")
    return path


def refusal(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_hall(path)
    return info.value


def assert_names(error: ConfigError, path: str, key: str, *words: str) -> None:
    """The message IT reads names the file, the key path and the problem."""
    message = str(error)
    assert error.path == path
    assert error.key == key
    assert message.startswith(f"{path}: {key}: "), message
    for word in words:
        assert word in error.problem, (word, message)


def demo_data() -> dict[str, Any]:
    return copy.deepcopy(DEMO_DATA)


# ---------------------------------------------------------------- the demo hall


def test_demo_hall_loads_with_all_its_parts() -> None:
    hall = load_hall(DEMO_HALL)
    assert isinstance(hall, HallConfig)
    assert hall.id == "kvarnby"
    # se, de, ar: the demo shows a Sámi and a right-to-left visitor end to end (texts await native review)
    assert hall.languages == ("sv", "fi", "en", "se", "de", "ar")
    assert hall.main_language == "sv"
    assert hall.timezone == "Europe/Helsinki"
    assert list(hall.topics) == ["general", "permits", "parking", "social", "taxes", "appointments"]
    assert [t.letter for t in hall.topics.values()] == ["A", "B", "C", "D", "E", "F"]
    assert list(hall.counters) == ["1", "2", "3", "4", "5", "6"]
    assert list(hall.displays) == ["entrance", "upstairs"]
    assert hall.public_url is None


def test_demo_hall_values_are_read_not_defaulted() -> None:
    hall = load_hall(DEMO_HALL)
    general = hall.topics["general"]
    assert general.colour == "#1f6feb"
    assert general.target_wait_min == 10
    assert general.service_time_min == 5.0
    assert general.name["en"] == "General questions"
    assert general.description["fi"] == "Lomakkeet, todistukset, opastus"
    assert hall.topics["permits"].service_time_min == 14.0
    assert hall.counters["1"].tiers == (("general",), ("parking", "taxes"))
    assert hall.counters["6"].tier_of("taxes") == 1
    assert hall.counters["6"].tier_of("general") is None
    assert hall.counters["4"].serves("permits") and not hall.counters["4"].serves("general")
    assert hall.displays["entrance"].directions["6"] == "upstairs"
    assert hall.displays["upstairs"].directions["6"] == "ahead-right"
    assert hall.rules.noshow_after_recalls == 2
    assert hall.rules.expire_after_close_min == 60
    assert hall.hours.cutoff_min == 15
    assert hall.hours.week[2] == (time(8, 0), time(18, 0))
    assert 5 not in hall.hours.week and 6 not in hall.hours.week
    assert date(2026, 12, 24) in hall.hours.closed_dates


def test_demo_hall_helpers_find_topics_and_counters() -> None:
    hall = load_hall(DEMO_HALL)
    assert hall.topic_by_letter("B") is hall.topics["permits"]
    assert hall.topic_by_letter("Z") is None
    assert [c.id for c in hall.counters_serving("appointments")] == ["4", "5", "6"]
    assert [c.id for c in hall.counters_serving("general")] == ["1", "2", "3"]


def test_parse_hall_of_the_demo_data_equals_load_hall() -> None:
    assert parse_hall(demo_data(), str(DEMO_HALL)) == load_hall(DEMO_HALL)


@pytest.mark.parametrize(("numbers", "digits", "last"), [("refuse", 3, 999), ("wrap", 3, 999),
                                                         ("four-digits", 4, 9999)])
def test_the_numbering_after_999_is_read_from_the_rules(tmp_path: Path, numbers: str, digits: int,
                                                        last: int) -> None:
    path = write_variant(tmp_path, "max_payload_bytes = 65536", f'max_payload_bytes = 65536\nnumbers = "{numbers}"')
    rules = load_hall(path).rules
    assert (rules.numbers, rules.number_digits, rules.max_number) == (numbers, digits, last)
    assert load_hall(DEMO_HALL).rules.numbers == "refuse"  # the default, documented in the demo hall


def test_rules_table_may_be_left_out_and_gets_defaults() -> None:
    data = demo_data()
    del data["rules"]
    hall = parse_hall(data, "x.toml")
    assert hall.rules.priority_allowed is True
    assert hall.rules.noshow_after_recalls == 2
    assert hall.rules.max_payload_bytes == 65536


# ---------------------------------------------------------------- refusals from a file


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        pytest.param('colour = "#c2410c"\n', "", "topics[1].colour", ["is missing"], id="missing topic colour"),
        pytest.param('id = "kvarnby"\n', "", "hall.id", ["is missing"], id="missing hall id"),
        pytest.param('en = "City of Kvarnby · Customer Service"\n', "", "hall.name.en", ["is missing"],
                     id="missing translation"),
        pytest.param('tiers = [["general"], ["taxes", "parking"]]\n', "", "counters[1].tiers", ["is missing"],
                     id="missing tiers"),
        pytest.param("service_time_min = 14", "servce_time_min = 14", "topics[1].servce_time_min",
                     ["not a known key", "typo"], id="typo in topic key"),
        pytest.param("noshow_after_recalls = 2 ", "noshow_after_recall = 2 ", "rules.noshow_after_recall",
                     ["not a known key"], id="typo in rules key"),
        pytest.param("[rules]", "[rulez]\nx = 1\n\n[rules]", "rulez", ["not a known key"], id="unknown table"),
        pytest.param("target_wait_min = 10", 'target_wait_min = "10"', "topics[0].target_wait_min",
                     ["must be an integer", "a string", "'10'"], id="integer given as string"),
        pytest.param("service_time_min = 5", "service_time_min = true", "topics[0].service_time_min",
                     ["must be a number", "True"], id="boolean where a number goes"),
        pytest.param("priority_allowed = true", 'priority_allowed = "yes"', "rules.priority_allowed",
                     ["must be a boolean", "'yes'"], id="string where a boolean goes"),
        pytest.param('languages = ["sv", "fi", "en", "se", "de", "ar"]', 'languages = "sv"', "hall.languages",
                     ["must be an array"], id="string where an array goes"),
        pytest.param('tiers = [["general"], ["parking", "taxes"]]', 'tiers = [["general"], "parking"]',
                     "counters[0].tiers[1]", ["non-empty array of topic ids"], id="tier that is not a list"),
        pytest.param('letter = "C"', 'letter = "c"', "topics[2].letter", ["one capital letter", "'c'"],
                     id="lower-case letter"),
        pytest.param('letter = "C"', 'letter = "CC"', "topics[2].letter", ["one capital letter", "'CC'"],
                     id="two letters"),
        pytest.param('letter = "C"', 'letter = "Ä"', "topics[2].letter", ["one capital letter"],
                     id="letter outside A-Z"),
        pytest.param('letter = "C"', "letter = 3", "topics[2].letter", ["must be a string"], id="letter a number"),
        pytest.param('letter = "C"', 'letter = "B"', "topics[2].letter", ["'B'", "already", "'permits'"],
                     id="duplicate letter"),
        pytest.param('id = "parking"', 'id = "permits"', "topics[2].id", ["'permits'", "defined twice"],
                     id="duplicate topic id"),
        pytest.param('id = "2"', 'id = "1"', "counters[1].id", ["'1'", "defined twice"], id="duplicate counter id"),
        pytest.param('id = "upstairs"', 'id = "entrance"', "displays[1].id", ["defined twice"],
                     id="duplicate display id"),
        pytest.param('id = "general"', 'id = "General Questions"', "topics[0].id", ["not a valid id"],
                     id="invalid topic id"),
        pytest.param('tiers = [["social"], ["appointments"]]', 'tiers = [["social"], ["apointments"]]',
                     "counters[4].tiers[1]", ["'apointments'", "not a topic of this hall"],
                     id="tier naming an unknown topic"),
        pytest.param('tiers = [["permits"], ["appointments"]]', 'tiers = [["permits"], ["permits"]]',
                     "counters[3].tiers[1]", ["'permits'", "listed twice"], id="topic listed twice in tiers"),
        pytest.param('tiers = [["social"], ["appointments"]]', 'tiers = [["appointments"]]', "topics[3]",
                     ["'social'", "served by no counter"], id="topic served by no counter"),
        pytest.param(', "6" = "upstairs" }', " }", "displays[0].directions.6", ["is missing"],
                     id="display direction missing"),
        pytest.param('"3" = "ahead"', '"3" = "straight"', "displays[0].directions.3",
                     ["must be one of", "left", "'straight'"], id="display direction invalid"),
        pytest.param('"6" = "ahead-right"', '"6" = "ahead-right", "7" = "left"', "displays[1].directions.7",
                     ["not a known key"], id="direction for a counter that does not exist"),
        pytest.param('fri = "08:00-16:00"', 'fri = "8-16"', "hours.fri", ['"08:00-17:00"', "'8-16'"],
                     id="hours not HH:MM-HH:MM"),
        pytest.param('fri = "08:00-16:00"', 'fri = "08:00-25:00"', "hours.fri", ["'08:00-25:00'", "hour"],
                     id="hour out of range"),
        pytest.param('fri = "08:00-16:00"', "fri = 8", "hours.fri", ["must be a string"], id="hours a number"),
        pytest.param('thu = "08:00-17:00"', 'thu = "17:00-08:00"', "hours.thu", ["closes before it opens"],
                     id="closes before opens"),
        pytest.param('thu = "08:00-17:00"', 'thu = "08:00-08:00"', "hours.thu", ["closes before it opens"],
                     id="closes when it opens"),
        pytest.param('fri = "08:00-16:00"', 'fri = "08:00-08:10"', "hours.fri", ["shorter than the last-ticket"],
                     id="day shorter than the cutoff"),
        pytest.param("last_ticket_before_close_min = 15", "last_ticket_before_close_min = 300",
                     "hours.last_ticket_before_close_min", ["between 0 and 240"], id="cutoff out of range"),
        pytest.param("closed_dates = [2026-12-24,", 'closed_dates = ["2026-13-01",', "hours.closed_dates",
                     ["'2026-13-01'", "not a date"], id="bad closed date"),
        pytest.param('timezone = "Europe/Helsinki"', 'timezone = "Europe/Kvarnby"', "hall.timezone",
                     ["'Europe/Kvarnby'", "not a known time zone"], id="bad timezone"),
        pytest.param('languages = ["sv", "fi", "en", "se", "de", "ar"]',
                     'languages = ["sv", "fi", "en", "se", "de", "sv"]', "hall.languages",
                     ["twice"], id="language twice"),
        pytest.param('languages = ["sv", "fi", "en", "se", "de", "ar"]',
                     'languages = ["sv", "Finnish", "en", "se", "de", "ar"]',
                     "hall.languages",
                     ["'Finnish'"], id="bad language code"),
        pytest.param("noshow_after_recalls = 2 ", "noshow_after_recalls = -1 ", "rules.noshow_after_recalls",
                     ["must not be negative"], id="negative rule"),
        pytest.param("max_payload_bytes = 65536", "max_payload_bytes = 10", "rules.max_payload_bytes",
                     ["between 1024"], id="payload limit too small"),
        pytest.param("max_payload_bytes = 65536", 'max_payload_bytes = 65536\nnumbers = "grow"', "rules.numbers",
                     ["refuse, wrap, four-digits", "'grow'"], id="unknown numbering"),
    ],
)
def test_broken_hall_file_is_refused_naming_file_key_and_problem(
        tmp_path: Path, old: str, new: str, key: str, words: list[str]) -> None:
    path = write_variant(tmp_path, old, new)
    assert_names(refusal(path), str(path), key, *words)


def test_toml_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write_variant(tmp_path, 'letter = "A"', 'letter = "A')
    error = refusal(path)
    assert_names(error, str(path), "(syntax)")
    line = DEMO_TEXT[:DEMO_TEXT.index('letter = "A"')].count("\n") + 1
    assert f"line {line}" in error.problem


def test_non_utf8_file_is_refused_with_the_byte_position(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(DEMO_TEXT.encode("latin-1", errors="replace"))
    first = next(i for i, ch in enumerate(DEMO_TEXT) if ord(ch) > 127)  # one byte a character before it
    assert_names(refusal(path), str(path), "(file)", "not UTF-8", f"at byte {first}")


def test_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    assert_names(refusal(path), str(path), "(file)", "no such file")


def test_a_directory_is_refused_as_unreadable(tmp_path: Path) -> None:
    assert_names(refusal(tmp_path), str(tmp_path), "(file)", "cannot be read")


# ---------------------------------------------------------------- refusals from data


@pytest.mark.parametrize("section", ["hall", "hours"])
def test_missing_required_table_is_named(section: str) -> None:
    data = demo_data()
    del data[section]
    with pytest.raises(ConfigError) as info:
        parse_hall(data, "some/hall.toml")
    assert_names(info.value, "some/hall.toml", section, "is missing")


@pytest.mark.parametrize("section", ["topics", "counters", "displays"])
def test_empty_array_of_tables_is_refused(section: str) -> None:
    data = demo_data()
    data[section] = []
    with pytest.raises(ConfigError) as info:
        parse_hall(data, "h.toml")
    assert_names(info.value, "h.toml", section, f"[[{section}]]")


def test_topic_that_is_not_a_table_is_refused_with_its_index() -> None:
    data = demo_data()
    data["topics"][4] = "taxes"
    with pytest.raises(ConfigError) as info:
        parse_hall(data, "h.toml")
    assert_names(info.value, "h.toml", "topics[4]", "must be a table", "a string")


def test_hall_closed_every_day_is_refused() -> None:
    data = demo_data()
    data["hours"] = {"last_ticket_before_close_min": 15}
    with pytest.raises(ConfigError) as info:
        parse_hall(data, "h.toml")
    assert_names(info.value, "h.toml", "hours.mon", "closed every day")


def test_unknown_top_level_key_is_refused() -> None:
    data = demo_data()
    data["hal"] = {"id": "x"}
    with pytest.raises(ConfigError) as info:
        parse_hall(data, "h.toml")
    assert_names(info.value, "h.toml", "hal", "not a known key")


def test_config_error_is_a_value_error_with_readable_text() -> None:
    error = ConfigError("a.toml", "topics[2].letter", "must be one capital letter A-Z, got 'c'")
    assert isinstance(error, ValueError)
    assert str(error) == "a.toml: topics[2].letter: must be one capital letter A-Z, got 'c'"


# ---------------------------------------------------------------- opening hours


@pytest.fixture(scope="module")
def hours() -> OpeningHours:
    return load_hall(DEMO_HALL).hours


@pytest.mark.parametrize(
    ("moment", "accepts"),
    [
        (at(30, 7, 59, 59), False),  # Monday, a second before opening
        (at(30, 8, 0), True),  # opening moment
        (at(30, 12, 0), True),
        (at(30, 16, 44, 59), True),  # last second before the 15-minute cutoff
        (at(30, 16, 45), False),  # the cutoff
        (at(30, 16, 59), False),  # still open, but no new tickets
        (at(30, 17, 0), False),  # closed
        (at(30, 23, 0), False),
        (at(2, 17, 44, month=12), True),  # Wednesday: the evening opening until 18:00
        (at(2, 17, 45, month=12), False),
        (at(4, 15, 44, month=12), True),  # Friday closes at 16:00
        (at(4, 15, 45, month=12), False),
        (at(5, 10, 0, month=12), False),  # Saturday
        (at(6, 10, 0, month=12), False),  # Sunday
        (at(24, 10, 0, month=12), False),  # Christmas Eve, a Thursday, is a closed date
        (at(23, 10, 0, month=12), True),  # the day before is normal
    ],
)
def test_accepts_tickets_around_open_cutoff_and_close(hours: OpeningHours, moment: datetime, accepts: bool) -> None:
    assert hours.accepts_tickets(moment) is accepts


def test_is_open_runs_past_the_ticket_cutoff(hours: OpeningHours) -> None:
    assert hours.is_open(at(30, 16, 50)) and not hours.accepts_tickets(at(30, 16, 50))
    assert not hours.is_open(at(30, 17, 0))
    assert not hours.is_open(at(24, 10, 0, month=12))


def test_closed_dates_have_no_window_and_no_closing_time(hours: OpeningHours) -> None:
    assert hours.window(date(2026, 12, 24)) is None
    assert hours.window(date(2027, 1, 6)) is None
    assert hours.window(date(2026, 12, 23)) == (time(8), time(18))
    assert hours.closing_time(date(2026, 12, 24), TZ) is None
    assert hours.closing_time(date(2026, 11, 30), TZ) == at(30, 17, 0)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(30, 6, 0), at(30, 8, 0)),  # early morning: today
        (at(30, 8, 0), at(1, 8, 0, month=12)),  # strictly after now
        (at(30, 16, 50), at(1, 8, 0, month=12)),  # after cutoff: tomorrow
        (at(2, 19, 0, month=12), at(3, 8, 0, month=12)),  # after the evening opening
        (at(4, 16, 30, month=12), at(7, 8, 0, month=12)),  # Friday evening: Monday
        (at(5, 12, 0, month=12), at(7, 8, 0, month=12)),  # Saturday: Monday
        (at(23, 18, 30, month=12), at(28, 8, 0, month=12)),  # Christmas: 24, 25 closed, then the weekend
        (at(31, 17, 0, month=12), datetime(2027, 1, 4, 8, 0, tzinfo=TZ)),  # New Year's Day is a Friday
    ],
)
def test_next_opening_skips_evenings_weekends_and_holidays(hours: OpeningHours, now: datetime,
                                                           expected: datetime) -> None:
    result = hours.next_opening(now)
    assert result == expected
    assert result is not None and result.tzinfo is TZ


def test_next_opening_is_none_when_never_open_within_a_year() -> None:
    start = date(2026, 11, 30)
    every_day = frozenset(date.fromordinal(start.toordinal() + i) for i in range(400))
    hours = OpeningHours(week={0: (time(8), time(17))}, cutoff_min=0, closed_dates=every_day)
    assert hours.next_opening(at(30, 9, 0)) is None


def test_closed_date_written_as_a_datetime_is_refused_not_ignored(tmp_path: Path) -> None:
    """A TOML datetime is a `date` subclass that never equals a day: taken as is, the holiday would be open."""
    path = write_variant(tmp_path, "closed_dates = [2026-12-24,", "closed_dates = [2026-12-24T00:00:00,")
    assert_names(refusal(path), str(path), "hours.closed_dates", "not a date like 2026-12-24")


def test_kiosks_name_their_printer_and_a_bad_uri_is_refused(tmp_path: Path) -> None:
    hall = load_hall(DEMO_HALL)
    assert hall.kiosks["K1"].printer == "preview://var/tickets"
    bad = tmp_path / "hall.toml"
    bad.write_text(DEMO_HALL.read_text(encoding="utf-8").replace('printer = "preview://var/tickets"',
                                                                  'printer = "lpt1"'), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_hall(bad)
    assert refused.value.key == "kiosks[0].printer" and "printer URI" in refused.value.problem


# ---------------------------------------------------------------- which hall file a command uses

def test_the_hall_file_is_the_given_one_then_the_environment_then_the_installed_one(tmp_path):
    """--hall, else $VUORO_HALL, else /etc/vuoro/hall.toml when it exists (here a file of the test standing in
    for it); the demo hall only for `vuoro demo` or when none exists, and then with a note to show."""
    from broker.config import find_hall_file

    given, env_hall, installed = tmp_path / "given.toml", tmp_path / "env.toml", tmp_path / "installed.toml"
    environ = {"VUORO_HALL": str(env_hall)}
    assert find_hall_file(str(given), environ, installed=installed) == (given, None)
    assert find_hall_file(None, environ, installed=installed) == (env_hall, None)
    assert find_hall_file(None, {}, installed=installed)[0] == DEMO_HALL  # nothing installed yet
    installed.write_text("")
    assert find_hall_file(None, {}, installed=installed) == (installed, None)
    assert find_hall_file(None, environ, demo=True, installed=installed) == (DEMO_HALL, None)
    assert find_hall_file(str(given), {}, demo=True, installed=installed) == (given, None)
    installed.unlink()
    path, note = find_hall_file(None, {"VUORO_HALL": ""}, installed=installed)
    assert path == DEMO_HALL and note is not None and "using the demo hall" in note and str(installed) in note


def test_the_demo_hall_is_package_data_not_a_path_into_the_repository():
    import assets

    assert assets.path("halls", "demo.toml") == DEMO_HALL and DEMO_HALL.is_file()
    assert assets.files("halls", "demo.toml").read_text(encoding="utf-8") == DEMO_TEXT
