"""Real bytes to a fake ESC/POS printer over a pty (pyserial) and TCP, status and faults, and every URI."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from broker.config import DEMO_HALL, HallConfig, load_hall
from kiosk import escpos_render
from kiosk.fake_printer import Command, FakeEscposPrinter, parse_escpos
from kiosk.printer import (
    PaperOut,
    Printer,
    PrinterOffline,
    PrinterState,
    PrinterStatus,
    StatusMonitor,
    decode_status,
    parse_printer_uri,
    preview_dir,
    ticket_bytes,
)
from kiosk.ticket import PAPER_58, PAPER_80, TicketLayout, build_ticket
from tests.support.wait import CONNECT_S
from tests.test_ticket import LABELS, PUBLIC_URL, sami_hall, sample_ticket

# Status reads use the product's own timeout (kiosk.printer.DEFAULT_STATUS_TIMEOUT): a shorter one would call a
# fake printer on a loaded machine silent. A test that leaves a thread running fails (tests/conftest.py).
SILENT_READ_S = 5  # a status read left unanswered on purpose, long enough to be seen in progress


@pytest.fixture
def fake() -> Iterator[FakeEscposPrinter]:
    with FakeEscposPrinter() as printer:
        yield printer


@pytest.fixture
def printers() -> Iterator[Callable[[str], Printer]]:
    made: list[Printer] = []

    def make(uri: str) -> Printer:
        made.append(Printer(uri))
        return made[-1]

    yield make
    for printer in made:
        printer.close()


@pytest.fixture(scope="module")
def hall() -> HallConfig:
    return dataclasses.replace(load_hall(DEMO_HALL), public_url=PUBLIC_URL)


@pytest.fixture(scope="module")
def sami() -> HallConfig:
    return sami_hall()


def uri_of(fake: FakeEscposPrinter, transport: str, *options: str) -> str:
    base = fake.serial_uri if transport == "serial" else fake.tcp_uri
    return base + ("?" + "&".join(options) if options else "")


def swedish_ticket(hall: HallConfig, paper: object = PAPER_58) -> TicketLayout:
    # "Allmän rådgivning" and the hall name carry å and ä; the given place carries Å Ä Ö and ö
    return build_ticket(hall, sample_ticket(number="A042"), "sv", LABELS["sv"], paper=paper,  # type: ignore[arg-type]
                        where="Åsa-salen, Ärendehall Öst")


def texts(commands: list[Command]) -> list[bytes]:
    return [c.args for c in commands if c.name == "text"]


def rasters(commands: list[Command]) -> list[Image.Image]:
    """Decode every GS v 0 image back to pixels (ink = black), to look at what the paper shows."""
    images = []
    for command in commands:
        if command.name == "raster":
            width_bytes, height = command.raw[4] | command.raw[5] << 8, command.raw[6] | command.raw[7] << 8
            bits = Image.frombytes("1", (width_bytes * 8, height), command.raw[8:])
            images.append(Image.eval(bits.convert("L"), lambda value: 255 - value))
    return images


def print_and_receive(fake: FakeEscposPrinter, printer: Printer, layout: TicketLayout,
                      channel: str) -> list[Command]:
    fake.clear()
    printer.print_ticket(layout)
    assert fake.wait_for(lambda data: any(c.name == "cut" for c in parse_escpos(data)[0]), channel=channel)
    commands = [c for c in fake.commands(channel) if c.name != "status_query"]
    assert not [c for c in commands if c.name == "truncated"]
    return commands


# ---------------------------------------------------------------- real bytes


@pytest.mark.parametrize("transport", ["serial", "tcp"])
def test_swedish_ticket_arrives_in_the_code_page_with_qr_and_cut(fake: FakeEscposPrinter, printers: Callable,
                                                                  hall: HallConfig, transport: str) -> None:
    printer = printers(uri_of(fake, transport, "paper=58"))
    commands = print_and_receive(fake, printer, swedish_ticket(hall), transport)
    assert [c.name for c in commands[:2]] == ["init", "codepage"]
    assert commands[1].raw == b"\x1bt\x13"  # ESC t 19: CP858, set before any text
    lines = texts(commands)
    # the number, double size (GS ! 0x33 = 4x4) just before it
    at = next(i for i, c in enumerate(commands) if c.name == "text" and c.args == b"A042")
    assert [c.raw for c in commands[:at] if c.name == "size"][-1] == b"\x1d!\x33"
    # å ä ö Å Ä Ö as CP858 bytes, never '?' and never UTF-8
    assert b"Allm\x84n" in lines and b"r\x86dgivning" in lines  # double size on 58 mm: two lines
    assert b"\x8fsa-salen, \x8erendehall \x99st" in lines
    assert hall.name["sv"].encode("cp858") in lines
    assert any(b"f\x94lj" in line for line in lines)
    assert not any(b"?" in line or b"\xc3" in line for line in lines)
    # the QR code natively (GS ( k, model 2, store data, print) with the status page link
    qr = [c for c in commands if c.name == "qr"]
    assert len(qr) == 1 and qr[0].raw.endswith(f"{PUBLIC_URL}/t/q7Xv2LmN9pRt".encode())  # the token
    assert any(c.raw[:3] == b"\x1d(k" and c.raw[5:7] == b"1Q" for c in commands)  # print the stored symbol
    # nothing as an image: every Swedish line fits the code page
    assert rasters(commands) == []
    assert commands[-1].name == "cut" and commands[-1].raw.startswith(b"\x1dV")


@pytest.mark.parametrize("transport", ["serial", "tcp"])
def test_sami_lines_print_as_raster_images_not_question_marks(fake: FakeEscposPrinter, printers: Callable,
                                                               sami: HallConfig, transport: str,
                                                               pictures: Callable[[str], Path]) -> None:
    printer = printers(uri_of(fake, transport, "paper=58"))
    layout = build_ticket(sami, sample_ticket(), "se", LABELS["se"], paper=PAPER_58)
    commands = print_and_receive(fake, printer, layout, transport)
    lines = texts(commands)
    assert not any(b"?" in line for line in lines)
    assert not any(b"D\xa0b\xa0la" in line for line in lines), "the topic name cannot be text in any code page"
    # á alone is in CP858 (0xA0): that line stays text, correctly
    assert b"Vuordin\xa0igi: sullii 15 min." in lines
    images = rasters(commands)
    # the topic (2 lines at double size), the hall's second line, the date, the QR caption, the privacy line
    assert len(images) == 6
    assert all(image.width == PAPER_58.dots for image in images)
    assert all(image.getextrema()[0] == 0 for image in images), "every raster line carries ink"
    topic = [image for image in images if image.height == 2 * 24 + 6]
    assert len(topic) == 2
    strip = Image.new("L", (PAPER_58.dots, sum(i.height for i in images)), 255)
    y = 0
    for image in images:
        strip.paste(image, (0, y))
        y += image.height
    strip.save(pictures("tickets") / "raster-lines-se-58mm.png", optimize=True)  # what the paper shows of those lines


def test_raster_line_matches_what_the_preview_draws() -> None:
    block = build_ticket(sami_hall(), sample_ticket(), "se", LABELS["se"], paper=PAPER_80).blocks[3]
    assert block.role == "topic"
    line = escpos_render.raster_line(block.lines[0], PAPER_80, block)
    assert line.mode == "1" and line.size == (576, 24 * block.height + 6)
    assert escpos_render.printable_text("Dábálaš gažaldagat") is None
    assert escpos_render.printable_text("Väntetid – cirka 5 min…") == "Väntetid - cirka 5 min..."


def test_a_long_topic_prints_within_the_paper(fake: FakeEscposPrinter, printers: Callable, hall: HallConfig) -> None:
    topics = dict(hall.topics)
    long_name = "Social- och familjetjänster, äldreomsorg, färdtjänst och bostadsanpassningsbidrag"
    topics["social"] = dataclasses.replace(topics["social"], name={**topics["social"].name, "sv": long_name})
    layout = build_ticket(dataclasses.replace(hall, topics=topics), sample_ticket(topic="social"), "sv",
                          LABELS["sv"], paper=PAPER_58)
    commands = print_and_receive(fake, printers(uri_of(fake, "tcp", "paper=58")), layout, "tcp")
    printed = [c.args.decode("cp858") for c in commands if c.name == "text"]
    topic_lines = [line for line in printed if line in layout.text("topic")]
    assert " ".join(topic_lines) == long_name and all(len(line) <= 32 for line in topic_lines)


def test_a_raster_image_in_the_stream_is_not_mistaken_for_a_status_query(fake: FakeEscposPrinter) -> None:
    with socket.create_connection(("127.0.0.1", fake.tcp_port), timeout=CONNECT_S) as sock:
        image = b"\x1dv0\x00\x03\x00\x01\x00" + b"\x10\x04\x01"  # 3 bytes of pixels that look like DLE EOT 1
        sock.sendall(image + b"\x10\x04\x04")
        assert sock.recv(8) == b"\x12"  # one answer: to the real query after the image
    assert fake.queries == [4]


# ---------------------------------------------------------------- status and faults


@pytest.mark.parametrize("transport", ["serial", "tcp"])
def test_status_follows_the_paper(fake: FakeEscposPrinter, printers: Callable, hall: HallConfig,
                                  transport: str) -> None:
    printer = printers(uri_of(fake, transport))
    assert printer.status().state is PrinterState.ONLINE
    fake.set_paper("near_end")
    status = printer.status()
    assert status.state is PrinterState.PAPER_NEAR_END and status.can_print and status.code == "near_end"
    printer.print_ticket(swedish_ticket(hall, PAPER_80))  # near end still prints
    assert fake.wait_for(b"\x1dV", channel=transport)
    fake.set_paper("out")
    fake.clear()
    with pytest.raises(PaperOut) as refused:
        printer.print_ticket(swedish_ticket(hall, PAPER_80))
    assert refused.value.status.state is PrinterState.PAPER_OUT and "paper" in str(refused.value)
    printer.status()  # a round trip after the refusal: whatever it had sent before has arrived by its answer
    assert {c.name for c in fake.commands(transport)} == {"status_query"}, "nothing printed into an empty printer"
    assert printer.last_status.code == "out"
    fake.set_paper("ok")
    printer.print_ticket(swedish_ticket(hall, PAPER_80))  # a new roll: printing resumes without a restart
    assert fake.wait_for(b"\x1dV", channel=transport)


@pytest.mark.parametrize("transport", ["serial", "tcp"])
def test_a_silent_printer_is_unknown_not_full_of_paper(fake: FakeEscposPrinter, printers: Callable,
                                                       hall: HallConfig, transport: str) -> None:
    fake.silent = True
    printer = printers(uri_of(fake, transport))
    status = printer.status()
    assert status.state is PrinterState.UNKNOWN and status.paper is None and "answer" in status.message
    queries = len(fake.queries)
    printer.print_ticket(swedish_ticket(hall, PAPER_80))  # unknown may print, and is not asked again first (no wait)
    assert fake.wait_for(b"\x1dV", channel=transport) and len(fake.queries) == queries
    fake.silent = False
    assert printer.status().state is PrinterState.ONLINE  # it speaks again: asked before tickets again


def test_status_queries_go_out_at_once_not_after_a_nagle_delay(fake: FakeEscposPrinter, printers: Callable,
                                                                hall: HallConfig) -> None:
    """A 3-byte status query after a ticket would wait for the printer's delayed ACK (40 ms a ticket on Linux)
    under Nagle's algorithm: the connection to the printer has it off. Checked on the socket, not with a stopwatch."""
    printer = printers(uri_of(fake, "tcp"))
    printer.print_ticket(swedish_ticket(hall, PAPER_80))  # connects: DLE EOT 1 and 4, then the ticket
    sock = printer._transport._esc.device  # type: ignore[attr-defined]  # python-escpos Network's socket
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.parametrize("transport", ["serial", "tcp"])
def test_cover_open_and_disconnect_are_offline(fake: FakeEscposPrinter, printers: Callable, hall: HallConfig,
                                               transport: str) -> None:
    printer = printers(uri_of(fake, transport))
    fake.cover_open = True
    status = printer.status()
    assert (status.state, status.message) == (PrinterState.OFFLINE, "the printer cover is open")
    with pytest.raises(PrinterOffline):
        printer.print_ticket(swedish_ticket(hall, PAPER_80))
    fake.cover_open = False
    assert printer.status().state is PrinterState.ONLINE
    fake.disconnect()
    assert printer.status().state is PrinterState.OFFLINE
    with pytest.raises(PrinterOffline) as refused:
        printer.print_ticket(swedish_ticket(hall, PAPER_80))
    assert refused.value.status.state is PrinterState.OFFLINE and printer.last_status.code == "offline"


def test_missing_printers_are_a_status_at_start_never_an_exception(printers: Callable) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    for uri in (f"tcp://127.0.0.1:{closed_port}", "serial:///dev/vuoro-no-such-port",
                "usb://04b8:0202", "file:///dev/vuoro-no-such-printer"):
        printer = printers(uri)  # constructing never touches the device
        status = printer.status()
        assert status.state is PrinterState.OFFLINE and status.message, uri
    usb = printers("usb://04b8:0202").status().message
    assert "04b8:0202" in usb and ("pyusb" in usb or "not plugged in" in usb or "backend" in usb.lower())


def test_status_monitor_reports_changes_without_blocking_the_caller(fake: FakeEscposPrinter,
                                                                    printers: Callable) -> None:
    printer = printers(uri_of(fake, "tcp", f"timeout={SILENT_READ_S}"))
    seen: list[PrinterStatus] = []
    changed = threading.Event()

    def on_change(status: PrinterStatus) -> None:
        seen.append(status)
        changed.set()

    monitor = StatusMonitor(printer, on_change, interval=30).start()
    try:
        assert changed.wait(CONNECT_S) and seen[-1].state is PrinterState.ONLINE
        changed.clear()
        fake.set_paper("near_end")
        monitor.poke()
        assert changed.wait(CONNECT_S) and seen[-1].state is PrinterState.PAPER_NEAR_END
        changed.clear()
        fake.silent = True
        fake.clear()
        monitor.poke()
        # the query has reached the printer, which will not answer: the monitor now holds the printer's lock for
        # the whole read. `current` must not wait for it: had it waited, it would return the read's result
        # (unknown); the read lasts SILENT_READ_S, far longer than any scheduling delay of this thread
        assert fake.wait_for(lambda data: b"\x10\x04" in data, timeout=CONNECT_S)
        assert monitor.current.state is PrinterState.PAPER_NEAR_END, "reading the status must not wait for the printer"
        assert changed.wait(CONNECT_S) and seen[-1].state is PrinterState.UNKNOWN
        assert [s.state for s in seen].count(PrinterState.ONLINE) == 1, "only changes are reported"
    finally:
        monitor.stop()


# ---------------------------------------------------------------- file:// and preview://


def test_file_printer_appends_raw_bytes(tmp_path: Path, printers: Callable, hall: HallConfig) -> None:
    capture = tmp_path / "capture.bin"
    printer = printers(f"file://{capture}?paper=58")
    assert printer.status().state is PrinterState.UNKNOWN
    layout = swedish_ticket(hall)
    printer.print_ticket(layout)
    printer.print_ticket(layout)
    data = capture.read_bytes()
    assert data == ticket_bytes(layout, printer) * 2
    assert [c.name for c in parse_escpos(data)[0]].count("cut") == 2


@pytest.mark.parametrize("paper", [PAPER_58, PAPER_80], ids=["58mm", "80mm"])
def test_preview_printer_writes_one_png_per_ticket(tmp_path: Path, printers: Callable, hall: HallConfig,
                                                   paper: object) -> None:
    printer = printers(f"preview://{tmp_path / 'tickets'}?paper={paper.mm}")  # type: ignore[attr-defined]
    assert printer.status().state is PrinterState.ONLINE
    assert preview_dir(printer) == tmp_path / "tickets"
    layout = swedish_ticket(hall, paper)
    printer.print_ticket(layout)
    printer.print_ticket(layout)  # a reprint does not overwrite the first
    files = sorted((tmp_path / "tickets").iterdir())
    assert [f.name for f in files] == ["A042-20261130-090512.png", "A042-20261130-090512~2.png"]
    with Image.open(files[0]) as image:
        assert image.width == paper.dots  # type: ignore[attr-defined]


def test_a_ticket_for_other_paper_is_refused(tmp_path: Path, printers: Callable, hall: HallConfig) -> None:
    printer = printers(f"preview://{tmp_path}?paper=80")
    with pytest.raises(ValueError, match="58 mm"):
        printer.print_ticket(swedish_ticket(hall, PAPER_58))


# ---------------------------------------------------------------- URIs and status bytes


@pytest.mark.parametrize("uri, problem", [
    ("lpt://1", "scheme"), ("tcp://printer:9100?paper=57", "58 or 80"), ("serial:///dev/ttyS0?baud=9600", "baud"),
    ("usb://epson", "VID:PID"), ("tcp://printer:http", "HOST:PORT"), ("file://", "where"),
    ("tcp://printer?codepage=utf8", "code page"), ("serial:///dev/ttyS0?timeout=60", "timeout"),
    ("serial:///dev/ttyS0?dsrdtr=maybe", "true or false"),
])
def test_bad_uris_are_refused_with_the_reason(uri: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_printer_uri(uri)


def test_uri_options_are_read() -> None:
    spec = parse_printer_uri("serial:///dev/ttyUSB0?baudrate=19200&paper=58&codepage=cp865&timeout=0.3")
    assert (spec.target, spec.paper, spec.codepage, spec.status_timeout) == ("/dev/ttyUSB0", PAPER_58, "CP865", 0.3)
    assert parse_printer_uri("tcp://10.0.0.5").target == "10.0.0.5"
    assert parse_printer_uri("preview://var/tickets").target == "var/tickets"


@pytest.mark.parametrize("printer, paper, cause, state", [
    (0x12, 0x12, None, PrinterState.ONLINE),
    (0x12, 0x1E, None, PrinterState.PAPER_NEAR_END),
    (0x12, 0x7E, None, PrinterState.PAPER_OUT),
    (0x1A, 0x12, 0x32, PrinterState.PAPER_OUT),
    (0x1A, 0x12, 0x16, PrinterState.OFFLINE),
    (None, None, None, PrinterState.UNKNOWN),
    (0x12, None, None, PrinterState.UNKNOWN),
    (0xFF, 0x12, None, PrinterState.UNKNOWN),
])
def test_status_bytes_decode(printer: int | None, paper: int | None, cause: int | None, state: PrinterState) -> None:
    assert decode_status(printer, paper, cause).state is state
