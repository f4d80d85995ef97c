"""What every Vuoro window (kiosk, counter panel, hall display) sets up the same way around Kivy.

Kivy reads its configuration when it is first imported, so `configure_kivy` must run before any
`import kivy...`; the app modules therefore import Kivy only inside functions called after it. Kept
apart from each app's own code so that the three apps cannot drift in how they start, where Kivy keeps
its files, or how a frame reaches a software GL driver.
"""

from __future__ import annotations

import ctypes
import gc
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import assets

FONTS = assets.path("fonts")
FONT = str(FONTS / "DejaVuSans.ttf")  # carries Sámi á č đ ŋ š ŧ ž, which Kivy's default Roboto lacks
FONT_BOLD = str(FONTS / "DejaVuSans-Bold.ttf")


def headless() -> bool:
    """No X or Wayland display to open: render offscreen (snapshots, tests, benches, CI)."""
    return not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")


def prepare_kivy_home(home: Path) -> None:
    """Make $KIVY_HOME, its mods and icon folders before Kivy does: Kivy checks, then makes them with a bare
    mkdir, so two apps starting at once (a counter and a display on one box, two tests) can die on
    FileExistsError. Made here with exist_ok, there is nothing left for Kivy to race on."""
    import importlib.util
    import shutil

    (home / "mods").mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("kivy")
    if spec is None or not spec.submodule_search_locations:
        return
    logo = Path(next(iter(spec.submodule_search_locations))) / "data" / "logo"
    if logo.is_dir():
        shutil.copytree(logo, home / "icon", dirs_exist_ok=True)


def configure_kivy(*, windowed: bool, size: str, headless: bool) -> None:
    """Set Kivy up before it is imported: our window, not Kivy's argument parser or a home in ~/.kivy."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    os.environ.setdefault("KIVY_HOME", str(Path(tempfile.gettempdir()) / f"vuoro-kivy-{os.getuid()}"))
    if headless:
        os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    prepare_kivy_home(Path(os.environ["KIVY_HOME"]))
    from kivy.config import Config

    width, _, height = size.partition("x")
    Config.set("graphics", "fullscreen", "0" if windowed else "auto")
    Config.set("graphics", "width", str(int(width)))
    Config.set("graphics", "height", str(int(height)))
    Config.set("graphics", "resizable", "1" if windowed else "0")
    Config.set("input", "mouse", "mouse,disable_multitouch")
    if "KCFG_GRAPHICS_MULTISAMPLES" not in os.environ:  # Kivy's own override wins over ours
        # No MSAA (Kivy asks for 2x): flat fills and texture-drawn text gain nothing from it, and under Mesa's
        # software GL (llvmpipe) its colour and depth buffers cost ~17 MiB, ~31 MiB with the start-up they cause.
        # Screenshots (export_to_png draws into an Fbo) never had it.
        Config.set("graphics", "multisamples", "0")
    Config.set("kivy", "exit_on_escape", "1" if windowed else "0")
    install_shaping()


def install_shaping() -> None:
    """Make every Kivy label of the process shape its text (ui.text_shaping): joined Arabic letters, right to
    left, wrapped in logical order first. Kivy's SDL2 provider draws code points one by one, left to right.

    Done by giving kivy.uix.label a text provider that measures and draws each line in its visual form, so no
    app, widget or test has to remember to shape a string: one place for the kiosk, the counter and the display.
    Idempotent; call after the Config is set (configure_kivy does).
    """
    import kivy.uix.label as uix_label
    from kivy.core.text import Label as CoreLabel

    if getattr(uix_label.CoreLabel, "shapes_text", False):
        return
    uix_label.CoreLabel = _shaping_label(CoreLabel)


def _shaping_label(base: Any) -> Any:
    from ui.text_shaping import base_direction, has_rtl, visual_line

    class ShapingLabel(base):  # type: ignore[misc, valid-type]
        """Kivy's core label, measuring and drawing each wrapped line as it looks (ui.text_shaping)."""

        shapes_text = True

        def get_extents(self, text: str) -> Any:
            return super().get_extents(visual_line(text) if has_rtl(text) else text)

        def get_cached_extents(self) -> Any:  # the provider's own cached measure would see unshaped text
            return self.get_extents

        def _render_text(self, text: str, x: int, y: int) -> None:
            super()._render_text(visual_line(text) if has_rtl(text) else text, x, y)

        @staticmethod
        def find_base_direction(text: str) -> str:  # halign "auto" aligns a right-to-left line to the right
            return base_direction(text)

    return ShapingLabel


def _flush_gl(*_: Any) -> None:
    """Hand each frame to the GL driver before the buffer swap.

    A window swap implies a flush, but an offscreen or pbuffer surface (SDL's offscreen driver, snapshots, the
    tests and the benches) has nothing to swap: Mesa's llvmpipe then keeps queueing frames, and with them every
    texture and vertex buffer Kivy already deleted (each screen change replaces the label textures) until its own
    limit forces a flush: measured +150 MiB resident in the first ~20 kiosk tickets. Costs nothing where the swap
    flushes.
    """
    from kivy.graphics.opengl import glFlush

    glFlush()


def flush_each_frame() -> None:
    """Call from App.build: once per window, however many apps a process runs (tests)."""
    from kivy.core.window import Window

    Window.unbind(on_flip=_flush_gl)
    Window.bind(on_flip=_flush_gl)


def release_memory() -> None:
    """Give back what a finished screen left behind; call when the app is idle (a kiosk between visitors).

    Kivy widgets hold reference cycles (properties and bindings), so a replaced screen is freed only by the
    cyclic collector, whenever it next runs; and the label textures it drew were malloc'd by the GL driver
    (llvmpipe keeps textures in ordinary memory), which glibc keeps in its heap after free. Collecting, then
    trimming the heap, measured on the kiosk bench: 187 -> 161 MiB after 23 visitors (the heap stays flat
    instead of settling ~25 MiB higher). Takes a few milliseconds, so only between visitors.

    The hyphenation dictionaries go too (ui.text_fit keeps the points it found per word): ~19 MiB of Python objects
    in a kiosk that broke a German, a Swedish and an English word.
    """
    from ui.text_fit import forget_dictionaries

    forget_dictionaries()
    gc.collect()
    _delete_gl_objects()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _delete_gl_objects() -> None:
    """Delete now the GL objects (label textures) of what the collection freed, and let the driver finish.

    Kivy queues a freed texture's glDeleteTextures for its next frame, and llvmpipe frees the pixels only once no
    queued rendering uses them: trimmed before that, the heap kept them until the next visitor's trim.
    """
    from kivy.graphics.context import get_context
    from kivy.graphics.opengl import glFinish

    get_context().gl_dealloc()
    glFinish()


def freeze_start_up() -> None:
    """Move everything alive after start-up (modules, config, catalogues) out of the collector's sight.

    Later collections (release_memory) then walk only what the screens made since: ~2 ms instead of ~20.
    Call once, before the first screen is built.
    """
    gc.collect()
    gc.freeze()


@cache
def _malloc_trim() -> Any:
    """glibc's malloc_trim from the symbols already loaded; None elsewhere (musl, macOS return memory themselves)."""
    return _libc_function("malloc_trim")


def _libc_function(name: str) -> Any:
    try:
        return getattr(ctypes.CDLL(None), name, None)
    except OSError:
        return None


# Larger blocks than this are mapped on their own and go back to the system when freed. glibc's own threshold
# starts at 128 KiB and rises to the largest block ever freed, after which label textures (the visitor's number
# alone is a few hundred KiB of pixels) land in the heap between small objects and keep it from shrinking. Fixed
# here, the counter panel held ~5 MiB less after warm-up (bench/memory_probe.py, 175.7 -> 170.9 MiB with
# --mmap-threshold 65536); a 64 KiB map per large texture is a few system calls a visitor.
MMAP_THRESHOLD = 64 * 1024
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def fix_mmap_threshold() -> None:
    """Large blocks (label textures) in maps of their own from now on (glibc; elsewhere nothing to do)."""
    mallopt = _libc_function("mallopt")
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


SNAPSHOT_SYNC_S = 10.0  # `--snapshot` waits this long for the hall server's retained state
SNAPSHOT_SETTLE_S = 0.3  # then lets the layout settle for a frame or two before the picture
EXIT_NO_SERVER = 3  # `--snapshot` without a hall server: the picture shows the offline screen, exit 3


def snapshot_when_synced(app: Any, result: dict[str, Any], *, program: str, step: Any, save: Any, offline: str,
                         synced_first: Any = None) -> None:
    """Poll (5 Hz, only while waiting to take one picture) until synced or SNAPSHOT_SYNC_S, then settle,
    save, stop the app. `step()` drains the controller and redraws, returning whether it is synced;
    `synced_first()` runs once synced (e.g. choose a language); `save()` writes the picture and says so;
    `offline` is what the picture shows when no server answered. For apps whose loop polls anyway (the
    kiosk, the counter); the display, whose loop sleeps, waits for its own updates instead."""
    import sys
    import time

    from kivy.clock import Clock

    started = time.monotonic()

    def check(dt: float) -> bool:
        synced = step()
        if not synced and time.monotonic() - started < SNAPSHOT_SYNC_S:
            return True
        if not synced:
            result["code"] = EXIT_NO_SERVER
            print(f"{program}: no hall server within {SNAPSHOT_SYNC_S:g} s; the snapshot shows {offline}",
                  file=sys.stderr)
        elif synced_first is not None:
            synced_first()
        Clock.schedule_once(lambda dt: (save(), app.stop()), SNAPSHOT_SETTLE_S)
        return False

    Clock.schedule_interval(check, 0.2)


DIGIT_EM = 0.72  # the advance of a DejaVu Sans Bold digit or capital, in font sizes (a little generous)
RGBA = tuple[float, float, float, float]


def rgba(value: str, alpha: float = 1.0) -> RGBA:
    """A "#rrggbb" colour from the hall file or a theme, as Kivy wants it."""
    from kivy.utils import get_color_from_hex

    red, green, blue, _ = get_color_from_hex(value)
    return (red, green, blue, alpha)
