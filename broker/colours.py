"""Colour contrast as WCAG 2.1 measures it, and the companion shade a hall colour gets when it is too light.

A hall picks its topic colours for recognition ("blue for general questions"), not for legibility, and
each colour carries text: the kiosk's topic buttons, the display's number chips, the counter's topic
tiles, the ticket number on screen. Text needs a contrast ratio of 4.5:1 against its background, 3:1 when
large (WCAG 2.1 SC 1.4.3: 18 pt, or 14 pt bold). A colour that cannot give it with white or with black
text gets a companion: the same hue darkened (or lightened) just enough, used wherever text sits on it,
so the hall's colour stays recognisable; `vuoro check` names the colours that needed one.

Pure: no Kivy. Colours are "#rrggbb" strings or (r, g, b) tuples of floats in 0-1.
"""

from __future__ import annotations

import colorsys

RGB = tuple[float, float, float]

NORMAL_TEXT = 4.5
LARGE_TEXT = 3.0
WHITE: RGB = (1.0, 1.0, 1.0)
BLACK: RGB = (0.0, 0.0, 0.0)


def rgb(colour: str | RGB) -> RGB:
    if isinstance(colour, str):
        value = colour.lstrip("#")
        return (int(value[0:2], 16) / 255, int(value[2:4], 16) / 255, int(value[4:6], 16) / 255)
    return (float(colour[0]), float(colour[1]), float(colour[2]))


def hex_colour(colour: RGB) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, c)) * 255):02x}" for c in colour)


def luminance(colour: str | RGB) -> float:
    """Relative luminance (WCAG 2.1)."""
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(c) for c in rgb(colour))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: str | RGB, second: str | RGB) -> float:
    """From 1 (the same) to 21 (black on white)."""
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def blend(top: str | RGB, alpha: float, under: str | RGB) -> RGB:
    """A colour drawn with `alpha` over another: what a faded tile really shows."""
    a, b = rgb(top), rgb(under)
    return (a[0] * alpha + b[0] * (1 - alpha), a[1] * alpha + b[1] * (1 - alpha), a[2] * alpha + b[2] * (1 - alpha))


def best_ink(background: str | RGB) -> RGB:
    """White or black text, whichever reads better on this background."""
    return WHITE if contrast_ratio(background, WHITE) >= contrast_ratio(background, BLACK) else BLACK


def companion(colour: str, ink: str | RGB = WHITE, needed: float = NORMAL_TEXT) -> str:
    """The colour itself if `ink` text on it reaches `needed`; else the same hue, darker (for light ink) or lighter
    (for dark ink), in small steps of lightness until it does."""
    if contrast_ratio(colour, ink) >= needed:
        return colour
    hue, light, saturation = colorsys.rgb_to_hls(*rgb(colour))
    darken = luminance(ink) > 0.5
    for _ in range(100):
        light = max(0.0, light - 0.01) if darken else min(1.0, light + 0.01)
        shade = colorsys.hls_to_rgb(hue, light, saturation)
        if contrast_ratio(shade, ink) >= needed:
            return hex_colour(shade)
    return hex_colour(BLACK if darken else WHITE)


def colour_warnings(colours: dict[str, str], ink: str | RGB = WHITE, needed: float = NORMAL_TEXT) -> list[str]:
    """One line for each named colour that text cannot be read on, with the companion used instead."""
    return [f"{name}: {colour} gives {contrast_ratio(colour, ink):.1f}:1 with white text (needs {needed:g}:1); "
            f"text is drawn on {companion(colour, ink, needed)} instead"
            for name, colour in colours.items() if companion(colour, ink, needed) != colour]


def tile_fill(colour: str, alpha: float = 1.0, under: str | RGB = WHITE) -> str:
    """What a tile with white letters is filled with: the colour's companion, and when drawn faded (`alpha` over
    `under`, the counter's lower tiers) a shade that still gives its large letters 3:1 (WCAG 2.1, large text)."""
    shade = companion(colour, WHITE, NORMAL_TEXT)
    if alpha >= 1.0:
        return shade
    return companion(hex_colour(blend(shade, alpha, under)), WHITE, LARGE_TEXT)
