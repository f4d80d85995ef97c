"""Counter panel bench: key press -> `ticket.called` at another client, against the command-line client path;
forward -> the specialist's alert on screen; resident memory, and its growth over a long session.

Run: `.venv/bin/python bench/counter_bench.py [--quick]`. Everything runs on 127.0.0.1 in a temporary
directory: a private Mosquitto on a free port, `vuoro server` as a real process on it, a probe (a bare paho
client in this process) that stamps every `event/ticket.called` as it arrives, and the panel in a child
process under SDL's offscreen driver (Mesa), with a temporary KIVY_HOME and XDG_CACHE_HOME.

1. Latency, in alternating blocks so that both paths see the same machine:
   - panel: the child runs the real CounterApp + CounterController window for counter 1 and presses the number
     pad's Enter through the window's key event (Window.dispatch("on_key_down", 271, ...), the path an SDL key
     takes), 0.25 s after the panel showed the last visitor (as a person presses, not in the frame that draws the
     reply); it stamps time.monotonic() just before; the probe stamps the `ticket.called` event for counter 1.
   - command line: this process sends `next` for counter 3 with HallClient.request, the very call `vuoro call 3
     next` makes (a client made as cli_actions makes it), stamping time.monotonic() just before.
   CLOCK_MONOTONIC is one clock for all processes of the machine, so the stamps pair up.
2. Forward alert: this process (counter 3) forwards each visitor it called to counter 1; the child stamps the
   moment its panel is redrawn with the alert for that ticket, then calls it (Enter) and ends the visit (1).
3. Memory, against a bare Kivy window of the same size and set-up (bench/bare_window.py, measured in the same
   run; the floor under llvmpipe): VmRSS of the child once synced, after the latency and forward phases, then a
   soak of --soak calls (default 10,000: Enter next, + recall, 1 done) after --warmup (200), read after warm-up
   and every --every calls, each after 2.5 quiet seconds (as between visitors: the panel gives memory back then).
   The hall server is the real HallService (bench/day_server.py, as `vuoro server --always-open`) whose clock
   the bench moves on a day for each 900 calls of the soak (a topic has 999 numbers a day): this process issues
   each day's tickets, the new day closes the counter, and the panel opens it again (8), as staff do each morning.

Every wait has a timeout; a watchdog stops and cleans up everything if the run hangs.
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.benchlib import (  # noqa: E402
    DAY_VISITS,
    Janitor,
    Memory,
    bare_window,
    median_ms,
    p99_ms,
    rss_mib,
    verdict,
)
from bench.harness import day_server, guarded, stop_process, window_bench  # noqa: E402

WINDOW = "1280x800"
TARGET_GAP_MS = 2.0
TARGET_OVER_BARE_MIB = 40.0  # resident memory above a bare Kivy window of the same size and set-up
TARGET_GROWTH_MIB = 5.0  # over the soak, after warm-up
QUIET_S = 2.5  # before each memory reading: the panel gives memory back 1.5 s after a visitor changes
TARGET_ALERT_MS = 1000.0
ENTER, PLUS, NUM_1, NUM_8 = 271, 270, 257, 264  # the number pad's keys as Kivy numbers them
PRESS_GAP_S = 0.25  # staff press when the panel has settled: the retained state follows a command by up to 0.1 s

JANITOR = Janitor("counter_bench")


def wait_file(path: Path, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {path.name}")
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the panel child exited ({proc.returncode}) before {path.name}")
        time.sleep(0.002)


# ---------------------------------------------------------------- the probe


class CalledProbe:
    """A bare paho subscriber to event/ticket.called: (arrival monotonic, counter, number, recall) per event."""

    def __init__(self, address: Any, hall_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from broker import protocol as p

        self.events: list[tuple[float, str, str, int]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_socket_open = lambda client, userdata, sock: sock.setsockopt(  # type: ignore[attr-defined]
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # paho types the socket as SocketLike
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        self.client.subscribe(p.Topics(hall_id).event(p.TICKET_CALLED), qos=1)
        if not subscribed.wait(5):
            raise RuntimeError("the probe could not subscribe")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        now = time.monotonic()
        body = json.loads(message.payload)
        with self._lock:
            self.events.append((now, str(body.get("counter")), str(body["ticket"]["number"]),
                                int(body.get("recall", 0))))

    def called(self, counter: str, number: str, timeout: float = 5.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for at, who, what, recall in self.events:
                    if who == counter and what == number and recall == 0:
                        return at
            time.sleep(0.0005)
        raise RuntimeError(f"no ticket.called for {number} at counter {counter}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---------------------------------------------------------------- the child: the panel window


def child_panel(broker_url: str, flags: Path, blocks: int, per_block: int, warmup: int, forwards: int,
                soak_warmup: int, soak: int, every: int) -> int:  # pragma: no cover - runs in the child
    sys.path.insert(0, str(ROOT))
    from ui.kivy_env import configure_kivy

    configure_kivy(windowed=True, size=WINDOW, headless=True)
    from kivy.core.window import Window

    from broker.config import DEMO_HALL, load_hall
    from broker.mqtt import BrokerAddress
    from counter.app import CounterApp
    from counter.controller import CounterController
    from tests.support.kivy_script import drive

    hall = load_hall(DEMO_HALL)
    controller = CounterController(hall, BrokerAddress.parse(broker_url), "1", lang="en")
    app = CounterApp(controller)
    report: dict[str, Any] = {"presses": [], "alerts": {}, "rss_visits": [], "redraws": {}}

    refresh = app.refresh

    def stamped_refresh(panel: Any) -> None:  # when the panel with a forward alert is handed to the widgets
        refresh(panel)
        for alert in panel.alerts:
            if alert.id.startswith("forward:") and alert.id not in report["alerts"]:
                report["alerts"][alert.id] = time.monotonic()

    app.refresh = stamped_refresh  # type: ignore[method-assign]
    send = controller._send
    report["job_start"] = []

    report["job_end"] = []

    def stamped_send(job: Any) -> Any:  # when the worker thread starts on a command, and when its reply is back
        report["job_start"].append(time.monotonic())
        try:
            return send(job)
        finally:
            report["job_end"].append(time.monotonic())

    controller._send = stamped_send  # type: ignore[method-assign]

    def current() -> str | None:
        drawn = app.drawn
        return drawn.current.number if drawn is not None and drawn.current is not None else None

    def key(code: int) -> None:
        Window.dispatch("on_key_down", code, 0, chr(code), [])
        Window.dispatch("on_key_up", code, 0)

    def idle() -> bool:
        return controller.model.pending is None

    def script() -> Iterator[Callable[[], bool] | float]:
        yield lambda: controller.synced and app.drawn is not None and app.drawn.header.status == "open" \
            and app.drawn.queues[0].waiting >= 1
        yield 0.5
        report["rss_up_mib"] = rss_mib()
        (flags / "ready").touch()
        for block in range(blocks):
            yield lambda block=block: (flags / f"go-{block}").exists()  # type: ignore[misc]
            for _ in range(warmup if block == 0 else per_block):
                before = current()
                yield PRESS_GAP_S
                jobs = len(report["job_start"])
                t0 = time.monotonic()
                key(ENTER)
                yield lambda before=before: idle() and current() not in (None, before)  # type: ignore[misc]
                report["presses"].append([t0, current(), report["job_start"][jobs] - t0,
                                          report["job_end"][jobs] - t0])
            (flags / f"done-{block}").touch()
        yield 2.5
        report["rss_after_latency_mib"] = rss_mib()
        key(NUM_1)
        yield lambda: idle() and current() is None
        (flags / "go-forward").touch()
        for _ in range(forwards):
            yield lambda: app.drawn is not None and any(a.id.startswith("forward:") for a in app.drawn.alerts)
            assert app.drawn is not None
            number = next(a.id for a in app.drawn.alerts if a.id.startswith("forward:")).partition(":")[2]
            key(ENTER)
            yield lambda number=number: idle() and current() == number  # type: ignore[misc]
            key(NUM_1)
            yield lambda: idle() and current() is None
            (flags / f"served-{number}").touch()
        (flags / "done-forward").touch()
        controller._send = send  # type: ignore[method-assign]  # the soak records nothing per call: this is measured
        yield QUIET_S
        report["rss_after_forward_mib"] = rss_mib()
        soak_began = math.nan
        for visit in range(soak_warmup + soak):
            if visit % DAY_VISITS == 0:  # a new day: this process stocks it, the panel opens the counter
                day = visit // DAY_VISITS
                (flags / f"stock-{day}").touch()
                yield lambda day=day: (flags / f"stock-{day}-ok").exists()  # type: ignore[misc]
                yield lambda: app.drawn is not None and app.drawn.header.status == "closed"
                key(NUM_8)
                yield lambda: idle() and app.drawn is not None and app.drawn.header.status == "open" \
                    and app.drawn.queues[0].waiting >= 1
            key(ENTER)
            yield lambda: idle() and current() is not None
            key(PLUS)
            yield lambda: idle() and app.drawn is not None and app.drawn.current is not None \
                and app.drawn.current.recalls == 1
            key(NUM_1)
            yield lambda: idle() and current() is None
            done = visit + 1 - soak_warmup
            if done == 0 or (done > 0 and done % every == 0) or done == soak:
                yield QUIET_S  # a quiet moment, as between two visitors: the panel gives memory back then
                if done == 0:
                    soak_began = time.monotonic()
                    report["rss_warm_mib"] = rss_mib()
                    print(f"SOAK 0 {report['rss_warm_mib']:.1f} 0", flush=True)
                else:
                    mib, at = rss_mib(), time.monotonic() - soak_began
                    report["rss_visits"].append([done, mib, at])
                    print(f"SOAK {done} {mib:.1f} {at:.1f}", flush=True)
        report["soak_s"] = report["rss_visits"][-1][2] if report["rss_visits"] else 0.0
        report["redraws"] = dict(app.redraws)

    drive(app, script(), 120.0 + 0.2 * (blocks * per_block + forwards) + 1.5 * (soak_warmup + soak), report,
          every_s=0)
    app.run()
    print(json.dumps(report), flush=True)
    return 0 if "error" not in report else 1


# ---------------------------------------------------------------- the parent


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_panel"]:
        return child_panel(argv[1], Path(argv[2]), *(int(x) for x in argv[3:11]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 presses a path, 5 forwards, a soak of 300 calls")
    parser.add_argument("--soak", type=int, help="calls of the memory soak after warm-up (default 10,000, quick 300)")
    parser.add_argument("--warmup", type=int, help="calls before the soak's first reading (default 200, quick 50)")
    parser.add_argument("--every", type=int, help="calls between readings (default 1,000, quick 100)")
    args = parser.parse_args(argv)
    blocks, per_block = (2, 20) if args.quick else (4, 25)
    warmup = 5
    forwards = 5 if args.quick else 20
    soak = args.soak or (300 if args.quick else 10_000)
    soak_warmup = args.warmup if args.warmup is not None else (50 if args.quick else 200)
    every = args.every or (100 if args.quick else 1000)
    return guarded(JANITOR, 300 + 1.5 * (soak + soak_warmup),
                   lambda: run(blocks, per_block, warmup, forwards, (soak_warmup, soak, every), args.quick))


def run(blocks: int, per_block: int, warmup: int, forwards: int, soaking: tuple[int, int, int], quick: bool) -> bool:
    from broker.client import HallClient
    from broker.config import DEMO_HALL, load_hall

    hall = load_hall(DEMO_HALL)
    tmp, env, broker = window_bench(JANITOR, "counter panel", quick)
    flags = tmp / "flags"
    flags.mkdir()
    server = day_server(JANITOR, tmp, broker)
    soak_warmup, soak, every = soaking
    print(f"  private mosquitto on {broker.address.url}; the hall server (demo hall, always open); panel window "
          f"{WINDOW} offscreen (counter 1); command-line client path as counter 3\n", flush=True)

    probe = CalledProbe(broker.address, hall.id)
    JANITOR.add(probe.close)
    kiosk = HallClient(broker.address, hall.id, "kiosk", "bench", presence=False)
    cli = HallClient(broker.address, hall.id, "counter", "3", presence=False)  # as cli_actions.run makes it
    for client in (kiosk, cli):
        JANITOR.add(client.close)
        if not client.start(10):
            raise RuntimeError("cannot reach the broker")
    presses = warmup + blocks * per_block
    for _ in range(presses + 2):
        kiosk.request("issue", topic="general", lang="fi")
    for _ in range(presses + forwards + 2):
        kiosk.request("issue", topic="parking", lang="sv")
    cli.request("open")
    admin = HallClient(broker.address, hall.id, "counter", "1", presence=False)
    JANITOR.add(admin.close)
    admin.start(10)
    admin.request("open")
    admin.close()

    bare = bare_window(env, WINDOW)["rss_mib"]  # first, alone on the machine

    # block 0 is the warm-up of both paths
    cmd = [sys.executable, __file__, "--_panel", broker.address.url, str(flags),
           *(str(n) for n in (blocks + 1, per_block, warmup, forwards, soak_warmup, soak, every))]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    JANITOR.add(lambda: stop_process(proc))
    out_lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout or []:
            out_lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    err_lines: list[str] = []
    err_reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr or []), daemon=True)
    err_reader.start()
    wait_file(flags / "ready", 60, proc)

    cli_latency: list[float] = []
    cli_reply: list[float] = []
    for block in range(blocks + 1):
        count = warmup if block == 0 else per_block
        for _ in range(count):
            t0 = time.monotonic()
            number = cli.request("next", 5.0)["ticket"]["number"]
            cli_reply.append(time.monotonic() - t0)
            cli_latency.append(probe.called("3", number) - t0)
        (flags / f"go-{block}").touch()
        wait_file(flags / f"done-{block}", 60, proc)

    wait_file(flags / "go-forward", 60, proc)
    forward_sent: dict[str, float] = {}
    for _ in range(forwards):
        number = cli.request("next", 5.0)["ticket"]["number"]
        forward_sent[number] = time.monotonic()
        cli.request("forward", 5.0, counter="1", note="bench")
        wait_file(flags / f"served-{number}", 30, proc)
    wait_file(flags / "done-forward", 30, proc)

    print(f"3. resident memory (VmRSS) against a bare Kivy window ({WINDOW}, same set-up); soak of {soak:,} calls "
          f"after {soak_warmup} (next, recall, done)", flush=True)
    lines: list[str] = []
    day = 0
    while proc.poll() is None or not out_lines.empty():
        if (flags / f"stock-{day}").exists():  # a new day, and its tickets
            server.next_day()
            for _ in range(min(DAY_VISITS, soak_warmup + soak - day * DAY_VISITS)):
                kiosk.request("issue", topic="general", lang="fi")
            (flags / f"stock-{day}-ok").touch()
            day += 1
        try:
            line = out_lines.get(timeout=0.05)
        except queue.Empty:
            continue
        lines.append(line)
        if line.startswith("SOAK "):
            _, done, mib, at = line.split()
            print(f"   ... {int(done):,} calls after warm-up: {float(mib):.1f} MiB ({float(at) / 60:.1f} min)",
                  flush=True)
    reader.join(5)
    err_reader.join(5)
    lines = [x for x in lines if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the panel child failed ({proc.returncode}): {''.join(err_lines)[-3000:]}")
    report: dict[str, Any] = json.loads(lines[-1])

    # pair each key press with the ticket.called event of the number the panel then showed
    panel_latency = [probe.called("1", number) - t0 for t0, number, _, _ in report["presses"]]
    to_worker = [hop for _, _, hop, _ in report["presses"]][warmup:]
    panel_reply = [reply for _, _, _, reply in report["presses"]][warmup:]
    panel_timed, cli_timed = panel_latency[warmup:], cli_latency[warmup:]
    alerts = [report["alerts"][f"forward:{n}"] - t for n, t in forward_sent.items()]

    med_panel, med_cli = median_ms(panel_timed), median_ms(cli_timed)
    gap = med_panel - med_cli
    print(f"1. next -> `ticket.called` at another client ({len(panel_timed)} of each after {warmup} warm-up, "
          f"in {blocks} alternating blocks)")
    for name, samples in (("panel, number pad Enter through the window", panel_timed),
                          ("command-line client path (HallClient.request)", cli_timed)):
        print(f"   {name:<48} median {median_ms(samples):.2f} ms, p99 {p99_ms(samples):.2f} ms, "
              f"min {min(samples) * 1000:.2f} ms")
    print(f"   the panel's extra: median {gap:+.2f} ms; of which key press -> the worker starts sending: median "
          f"{median_ms(to_worker):.2f} ms, p99 {p99_ms(to_worker):.2f} ms")
    print(f"   the reply, each in its own process: key press -> reply on the panel's worker median "
          f"{median_ms(panel_reply):.2f} ms; request -> reply on the command line median "
          f"{median_ms(cli_reply[warmup:]):.2f} ms")
    print("   (the panel watches the hall: it reads the events before its reply)\n")
    print(f"2. forward (counter 3, command line) -> the alert drawn on counter 1's panel ({len(alerts)} forwards)")
    print(f"   median {median_ms(alerts):.1f} ms, max {max(alerts) * 1000:.1f} ms\n")
    series = [(int(n), float(mib), float(at)) for n, mib, at in report["rss_visits"]]
    memory = Memory("counter", "calls", bare, report["rss_up_mib"], report["rss_warm_mib"],
                    series[-1][1] if series else report["rss_warm_mib"], soak_warmup, soak, TARGET_OVER_BARE_MIB,
                    TARGET_GROWTH_MIB, series, float(report["soak_s"]))
    memory.note = (f"after the {len(report['presses'])} timed calls {report['rss_after_latency_mib']:.1f} MiB, after "
                   f"the forwards {report['rss_after_forward_mib']:.1f} MiB; {server.days} days; sections redrawn: "
                   f"{report['redraws']}")
    print("3. resident memory (VmRSS), continued")
    for line in memory.report():
        print(line)
    print()
    checks = [
        (gap <= TARGET_GAP_MS, f"key press -> ticket.called median within {TARGET_GAP_MS:.0f} ms of the command line "
         f"({gap:+.2f} ms)"),
        (max(alerts) * 1000 < TARGET_ALERT_MS, f"forward -> alert on screen under {TARGET_ALERT_MS:.0f} ms (max "
         f"{max(alerts) * 1000:.0f} ms)"),
        *memory.checks(),
    ]
    for ok, text in checks:
        print(f"   {verdict(ok)}  {text}")
    return all(ok for ok, _ in checks)


if __name__ == "__main__":
    raise SystemExit(main())
