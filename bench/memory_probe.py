"""Where a window's resident memory goes, and what grows: a focused probe for the memory benches (bench/README.md,
"memory"), in minutes instead of the benches' hours.

Runs one window in a child process under SDL's offscreen driver (the benches' environment) and, at the same
quiet points the benches read VmRSS, prints from inside that process: VmRSS split by mapping (the C heap and
anonymous maps, the libraries' pages), glibc's malloc figures (mallinfo2: in use, free but held, mmapped),
Python's own heap (tracemalloc, when asked), Kivy's Cache categories, and the count of live Kivy objects
(Texture, CoreLabel, Label, Widget, ...). With --top it also prints the tracemalloc tracebacks that grew most
since the warm-up.

- `--app counter`: the real CounterApp for counter 1 against the real hall server (bench/day_server.py on a
  private Mosquitto), each call as the counter bench makes it: number-pad Enter (next), + (recall), 1 (done).
- `--app bare`: the bench's bare window (one Label) that, each step, rebuilds a box of 30 labels with new text:
  the churn of Kivy widgets and label textures alone, for comparison.
Experiments, without editing the apps: `--arena-max N` (MALLOC_ARENA_MAX), `--mmap-threshold BYTES` (a fixed
glibc mmap threshold, set with mallopt before Kivy starts: large buffers such as label textures then always go
back to the system when freed), `--trim` (malloc_trim(0) before each reading: what glibc holds free).

Run: `.venv/bin/python bench/memory_probe.py --app counter --warmup 50 --calls 300 --every 100 [--top 12]`.
Prints one `PROBE {json}` line per reading and a table at the end.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.benchlib import DayServer, Janitor, rss_mib, rss_mib_field  # noqa: E402

QUIET_S = 2.5  # as the benches: each reading after 2.5 quiet seconds (the apps release memory 1.5 s after a change)
KIVY_TYPES = ("Texture", "CoreLabel", "ShapingLabel", "LabelBase", "Label", "Widget", "BoxLayout", "Box",
              "PressButton", "Canvas", "InstructionGroup", "Rectangle", "RoundedRectangle", "Color",
              "ClockEvent", "WeakMethod", "FontContextManager", "Fbo", "Image")
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
JANITOR = Janitor("memory_probe")


# ---------------------------------------------------------------- readings, inside the probed process


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def libc() -> Any:
    return ctypes.CDLL(None)


def mallinfo() -> dict[str, float]:
    """glibc's heap over all arenas, MiB: `heap` (sbrk'd + arenas), `used`, `free` (held, not returned), `mmap`."""
    try:
        func = libc().mallinfo2
    except AttributeError:
        return {}
    func.restype = MallInfo2
    info = func()
    mib = 1024 * 1024
    return {"heap": info.arena / mib, "used": info.uordblks / mib, "free": info.fordblks / mib,
            "mmap": info.hblkhd / mib, "mmaps": float(info.hblks)}


def arenas() -> list[list[float]]:
    """glibc's arenas (malloc_info): [held MiB, free MiB] each; arena 0 is the main thread's, the others belong to
    threads that allocated (llvmpipe's rasterizer threads, paho's, the panel's worker)."""
    import re
    import xml.etree.ElementTree as ET

    c = libc()
    c.fopen.restype, c.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
    c.malloc_info.argtypes, c.fclose.argtypes = [ctypes.c_int, ctypes.c_void_p], [ctypes.c_void_p]
    path = Path(tempfile.gettempdir()) / f"memory-probe-{os.getpid()}.xml"
    handle = c.fopen(str(path).encode(), b"w")
    if not handle:
        return []
    c.malloc_info(0, handle)
    c.fclose(handle)
    text = path.read_text()
    path.unlink()
    result = []
    for heap in ET.fromstring(re.sub(r"<!--.*?-->", "", text, flags=re.S)).iter("heap"):
        held = sum(int(x.get("size", 0)) for x in heap.findall("system") if x.get("type") == "current")
        free = sum(int(x.get("size", 0)) for x in heap.findall("total"))
        result.append([round(held / 1048576, 1), round(free / 1048576, 1)])
    return result


def mappings() -> Iterator[tuple[str, float, float]]:
    """Each mapping of this process: its name ("" for anonymous), size and resident MiB (/proc/self/smaps)."""
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return
    name, size = "", 0.0
    for row in text.splitlines():
        head = row.split()
        if not head:
            continue
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            start, end = (int(x, 16) for x in head[0].split("-"))
            name, size = (head[5] if len(head) > 5 else ""), (end - start) / 1048576
        elif head[0] == "Rss:":
            yield name, size, int(head[1]) / 1024


def smaps() -> dict[str, float]:
    """Resident MiB by kind of mapping: [heap], anonymous maps (thread arenas, big mallocs, GL), libraries, other."""
    kinds: Counter[str] = Counter()
    for name, _, rss in mappings():
        kind = ("heap" if name == "[heap]" else "anon" if name == "" else
                "lib" if ".so" in name else "stack" if name.startswith("[stack") else "file/other")
        kinds[kind] += rss
    return dict(sorted(kinds.items()))


def anon_maps(top: int = 12) -> list[list[float]]:
    """The largest anonymous mappings by resident MiB: [size MiB, resident MiB] each."""
    maps = [[round(size, 1), round(rss, 1)] for name, size, rss in mappings() if not name]
    return sorted(maps, key=lambda m: -m[1])[:top]


def kivy_counts() -> dict[str, Any]:
    """Kivy's Cache categories (entries) and live Kivy objects by type name (gc-tracked, including frozen ones)."""
    from kivy.cache import Cache

    caches = {name: len(items) for name, items in Cache._objects.items() if items}
    names: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in KIVY_TYPES:
            names[name] += 1
    return {"cache": caches, "objects": dict(sorted(names.items())), "gc_objects": len(gc.get_objects())}


FONT_IDS: set[str] = set()  # every font the SDL2 text provider was asked for: it keeps the latest 64 open


def watch_fonts(round_sizes: bool) -> None:
    """Record each font id (size|file|bold|...) the SDL2 provider opens a TTF_Font for; with `round_sizes`, hand
    it whole-pixel sizes (the experiment: a float size from a fit function is a font of its own)."""
    from kivy.core.text.text_sdl2 import LabelSDL2

    font_id = LabelSDL2._get_font_id

    def recorded(self: Any) -> str:
        if round_sizes:
            self.options["font_size"] = float(round(self.options["font_size"]))
        key: str = font_id(self)
        FONT_IDS.add(key)
        return key

    LabelSDL2._get_font_id = recorded  # type: ignore[method-assign]


TEXTURES = [0]  # label textures created (kivy.core.text's Texture.create)


def count_textures() -> None:
    import kivy.core.text as core_text

    real = core_text.Texture

    class Counted:
        @staticmethod
        def create(*args: Any, **kwargs: Any) -> Any:
            TEXTURES[0] += 1
            return real.create(*args, **kwargs)

    core_text.Texture = Counted  # type: ignore[assignment, misc]


def actions_in_place() -> None:
    """The experiment: the panel's action keys updated in place (fill, texts, colours) when the same keys are shown,
    instead of 9 new buttons (18 new labels, 18 new textures) each time a flag flips."""
    from counter.widgets import Drawer

    rebuild = Drawer.actions

    def actions(self: Any, box: Any, views: Any) -> None:
        shown = list(reversed(box.children))
        if [getattr(w, "button_id", None) for w in shown] != [v.id for v in views]:
            rebuild(self, box, views)
            return
        theme = self.theme
        for widget, view in zip(shown, views, strict=True):
            if view.busy:
                fill, ink = theme.busy, theme.text
            elif view.enabled:
                fill, ink = (theme.next if view.id in ("next", "confirm") else theme.button), theme.button_text
            else:
                fill, ink = theme.disabled, theme.disabled_text
            widget.set_fill(fill)
            widget.action = view.action
            face, key = reversed(widget.children)
            face.text, face.color, key.text, key.color = self.say(view.label), ink, view.key, ink

    Drawer.actions = actions  # type: ignore[method-assign, assignment]


def reading(label: str, done: int, trim: bool) -> dict[str, Any]:
    gc.collect()
    if trim:
        libc().malloc_trim(0)
    result: dict[str, Any] = {"at": label, "done": done, "rss": rss_mib(), "hwm": rss_mib_field("VmHWM"),
                              "anon": rss_mib_field("RssAnon"), "file": rss_mib_field("RssFile"),
                              "malloc": mallinfo(), "arenas": arenas(), "maps": smaps(),
                              "py_blocks": sys.getallocatedblocks(), "textures_made": TEXTURES[0],
                              "fonts": len(FONT_IDS), "font_sizes": sorted({float(k.split("|")[0]) for k in FONT_IDS}),
                              **kivy_counts()}
    import tracemalloc

    if tracemalloc.is_tracing():
        result["py_heap"] = tracemalloc.get_traced_memory()[0] / 1024 / 1024
    print("PROBE " + json.dumps(result), flush=True)
    return result


class Tracer:
    """tracemalloc from the warm-up on (its own cost stays out of the start-up); the top growers by traceback."""

    def __init__(self, frames: int, top: int) -> None:
        self.frames, self.top = frames, top
        self.base: Any = None

    def start(self) -> None:
        if self.top:
            import tracemalloc

            tracemalloc.start(self.frames)
            self.base = tracemalloc.take_snapshot()

    def show(self) -> None:
        if not self.top or self.base is None:
            return
        import tracemalloc

        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        for stat in snap.compare_to(self.base, "traceback")[:self.top]:
            if stat.size_diff <= 0:
                continue
            where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback[:self.frames])
            print(f"GROW {stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks  {where}", flush=True)


def set_mmap_threshold(value: int) -> None:
    if value > 0:
        libc().mallopt(M_MMAP_THRESHOLD, value)


# ---------------------------------------------------------------- the children


def checkpoints(warmup: int, calls: int, every: int) -> Callable[[int], str | None]:
    def which(visit: int) -> str | None:
        done = visit + 1 - warmup
        if done == 0:
            return "warm"
        if done > 0 and (done % every == 0 or done == calls):
            return f"+{done}"
        return None

    return which


def child_counter(opts: dict[str, Any]) -> int:  # pragma: no cover - runs in the child
    set_mmap_threshold(opts["mmap_threshold"])
    from ui.kivy_env import configure_kivy

    configure_kivy(windowed=True, size="1280x800", headless=True)
    watch_fonts(opts["round_fonts"])
    count_textures()
    if opts.get("in_place"):
        actions_in_place()
    from kivy.core.window import Window

    from broker.config import DEMO_HALL, load_hall
    from broker.mqtt import BrokerAddress
    from counter.app import CounterApp
    from counter.controller import CounterController
    from tests.support.kivy_script import drive

    controller = CounterController(load_hall(DEMO_HALL), BrokerAddress.parse(opts["broker"]), "1", lang="en")
    app = CounterApp(controller)
    tracer, which = Tracer(opts["frames"], opts["top"]), checkpoints(opts["warmup"], opts["calls"], opts["every"])
    report: dict[str, Any] = {}

    def key(code: int) -> None:
        Window.dispatch("on_key_down", code, 0, chr(code), [])
        Window.dispatch("on_key_up", code, 0)

    def idle() -> bool:
        return controller.model.pending is None

    def current() -> Any:
        return app.drawn.current if app.drawn is not None else None

    def script() -> Iterator[Callable[[], bool] | float]:
        yield lambda: controller.synced and app.drawn is not None and app.drawn.header.status == "open" \
            and app.drawn.queues[0].waiting >= 1
        yield QUIET_S
        reading("synced", 0, opts["trim"])
        for visit in range(opts["warmup"] + opts["calls"]):
            key(271)  # Enter: next
            yield lambda: idle() and current() is not None
            key(270)  # +: recall
            yield lambda: idle() and current() is not None and current().recalls == 1
            key(257)  # 1: done
            yield lambda: idle() and current() is None
            label = which(visit)
            if label is not None:
                yield QUIET_S
                reading(label, visit + 1 - opts["warmup"], opts["trim"])
                (tracer.start if label == "warm" else tracer.show)()

    drive(app, script(), 120.0 + 8.0 * (opts["warmup"] + opts["calls"]), report, every_s=0)  # loaded machine
    app.run()
    print("END " + json.dumps(report), flush=True)
    return 0 if "error" not in report else 1


def child_bare(opts: dict[str, Any]) -> int:  # pragma: no cover - runs in the child
    """The bare window, plus a box of 30 labels rebuilt with new text each step (the panel redraws ~30)."""
    set_mmap_threshold(opts["mmap_threshold"])
    from ui.kivy_env import configure_kivy

    configure_kivy(windowed=True, size="1280x800", headless=True)
    watch_fonts(opts["round_fonts"])
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.uix.boxlayout import BoxLayout
    from kivy.uix.label import Label

    from ui.kivy_env import FONT_BOLD, flush_each_frame, release_memory

    tracer, which = Tracer(opts["frames"], opts["top"]), checkpoints(opts["warmup"], opts["calls"], opts["every"])
    box = BoxLayout(orientation="vertical")
    release = Clock.create_trigger(lambda dt: release_memory(), 1.5)

    def script() -> Iterator[float]:
        yield QUIET_S
        reading("synced", 0, opts["trim"])
        for visit in range(opts["warmup"] + opts["calls"]):
            for step in range(3):  # next, recall, done: three redraws a call, as the panel
                box.clear_widgets()
                for row in range(30):
                    box.add_widget(Label(text=f"A{visit:03d} row {row} step {step}", font_name=FONT_BOLD,
                                         font_size=18 + row % 4))
                release()
                yield 0.02
            label = which(visit)
            if label is not None:
                yield QUIET_S
                reading(label, visit + 1 - opts["warmup"], opts["trim"])
                (tracer.start if label == "warm" else tracer.show)()

    class Bare(App):
        def build(self) -> BoxLayout:
            flush_each_frame()
            return box

    steps, waiting = script(), [0.0]

    def step(dt: float) -> None:
        if time.monotonic() < waiting[0]:
            return
        try:
            waiting[0] = time.monotonic() + next(steps)
        except StopIteration:
            App.get_running_app().stop()

    Clock.schedule_interval(step, 0)
    Bare().run()
    return 0


# ---------------------------------------------------------------- the parent


def serve_counter(tmp: Path, calls: int) -> str:
    """A private Mosquitto, the hall server, `calls` tickets in the queue, counter 1 open; returns the broker URL."""
    from broker.client import HallClient
    from broker.config import DEMO_HALL, load_hall
    from tests.support.brokers import MosquittoBroker

    broker = MosquittoBroker()
    JANITOR.add(broker.close)
    broker.start()
    server = DayServer(DEMO_HALL, tmp / "hall.db", broker.address.url)
    JANITOR.add(server.stop)
    server.start()
    hall = load_hall(DEMO_HALL)
    kiosk = HallClient(broker.address, hall.id, "kiosk", "probe", presence=False)
    admin = HallClient(broker.address, hall.id, "counter", "1", presence=False)
    for client in (kiosk, admin):
        JANITOR.add(client.close)
        if not client.start(10):
            raise RuntimeError("cannot reach the broker")
    for _ in range(calls + 2):
        kiosk.request("issue", topic="general", lang="fi")
    admin.request("open")
    admin.close()
    return broker.address.url


def run_child(args: argparse.Namespace) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="vuoro-memory-probe-"))
    JANITOR.add(lambda: shutil.rmtree(tmp, ignore_errors=True))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "KIVY_NO_ARGS": "1",
           "KIVY_NO_CONSOLELOG": "1", "KIVY_HOME": str(tmp / "kivy"), "SDL_VIDEODRIVER": "offscreen",
           "SDL_AUDIODRIVER": "dummy", "XDG_CACHE_HOME": str(tmp / "cache"), "XDG_RUNTIME_DIR": str(tmp)}
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    if args.arena_max:
        env["MALLOC_ARENA_MAX"] = str(args.arena_max)
    opts = {"warmup": args.warmup, "calls": args.calls, "every": args.every, "trim": args.trim, "top": args.top,
            "frames": args.frames, "mmap_threshold": args.mmap_threshold, "broker": "",
            "round_fonts": args.round_fonts, "in_place": args.in_place}
    if args.app == "counter":
        opts["broker"] = serve_counter(tmp, args.warmup + args.calls)
    cmd = [sys.executable, __file__, "--_child", args.app, json.dumps(opts)]
    if args.heaptrack:  # every malloc with its C backtrace: what the C side holds (heaptrack_print FILE)
        cmd = ["heaptrack", "-o", args.heaptrack, *cmd]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    JANITOR.add(lambda: proc.kill() if proc.poll() is None else None)
    readings: list[dict[str, Any]] = []
    for row in proc.stdout or []:
        if row.startswith("PROBE "):
            readings.append(json.loads(row[6:]))
            print(summary(readings[-1]), flush=True)
        elif row.startswith(("GROW ", "END ")):
            print("   " + row.rstrip(), flush=True)
    proc.wait(30)
    if proc.returncode != 0:
        print((proc.stderr.read() if proc.stderr else "")[-3000:], file=sys.stderr)
    return readings


def summary(r: dict[str, Any]) -> str:
    m, maps = r.get("malloc", {}), r.get("maps", {})
    text = (f"{r['at']:>7}: rss {r['rss']:.1f} (anon {r['anon']:.1f}, file {r['file']:.1f}) | malloc heap "
            f"{m.get('heap', 0):.1f} used {m.get('used', 0):.1f} free {m.get('free', 0):.1f} mmap "
            f"{m.get('mmap', 0):.1f} | maps " + " ".join(f"{k} {v:.1f}" for k, v in maps.items()))
    if "py_heap" in r:
        text += f" | py {r['py_heap']:.1f}"
    text += f" | arenas [held, free] {r.get('arenas')}"
    text += f" | py blocks {r.get('py_blocks', 0):,} | fonts {r.get('fonts')} | textures made {r.get('textures_made')}"
    return text + f"\n         cache {r['cache']} objects {r['objects']} gc {r['gc_objects']}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_child"]:
        return (child_counter if argv[1] == "counter" else child_bare)(json.loads(argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=("counter", "bare"), default="counter")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--top", type=int, default=0, help="tracemalloc: print this many top growers")
    parser.add_argument("--frames", type=int, default=6, help="tracemalloc traceback depth")
    parser.add_argument("--trim", action="store_true", help="malloc_trim(0) before each reading")
    parser.add_argument("--arena-max", type=int, default=0, help="MALLOC_ARENA_MAX for the child")
    parser.add_argument("--mmap-threshold", type=int, default=0, help="fixed glibc mmap threshold (bytes)")
    parser.add_argument("--in-place", action="store_true", help="counter: action keys updated in place (experiment)")
    parser.add_argument("--heaptrack", help="run the child under heaptrack, writing this file")
    parser.add_argument("--round-fonts", action="store_true", help="whole-pixel font sizes (experiment)")
    args = parser.parse_args(argv)
    try:
        readings = run_child(args)
    finally:
        JANITOR.run()
    if len(readings) >= 2:
        warm = next((r for r in readings if r["at"] == "warm"), readings[0])
        print(f"\n{args.app}: synced {readings[0]['rss']:.1f}, warm {warm['rss']:.1f}, end {readings[-1]['rss']:.1f} "
              f"MiB; growth after warm-up {readings[-1]['rss'] - warm['rss']:+.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
