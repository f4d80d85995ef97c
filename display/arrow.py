"""The direction sign of a display as geometry: triangles in a unit square, drawn by the Kivy layer.

Why drawn and not a font character: an arrow glyph (→ ↗ ⇣) differs from font to font, some fonts lack
the diagonals or the stairs altogether, and a glyph scaled to a third of a TV's height renders a texture
the size of the screen. A few triangles are exact, as large as needed, cheap, and the same everywhere.

Coordinates are in [0, 1] x [0, 1] with y pointing up (Kivy's convention); "ahead" points up, as on
every wayfinding sign. The stairs carry a small arrow: up and to the right for upstairs, down and to
the left for downstairs, over three steps rising to the right.
"""

from __future__ import annotations

import math

from broker.config import DIRECTIONS

Point = tuple[float, float]
Triangle = tuple[Point, Point, Point]

# The angle of each plain arrow, counter-clockwise from "to the right".
ANGLES: dict[str, float] = {
    "right": 0.0,
    "ahead-right": 45.0,
    "ahead": 90.0,
    "ahead-left": 135.0,
    "left": 180.0,
    "behind": 270.0,
}
STAIRS = {"upstairs": 45.0, "downstairs": 225.0}

# An arrow pointing right, centred on (0.5, 0.5): a shaft and a head, as outlines.
_SHAFT: tuple[Point, ...] = ((0.1, 0.39), (0.56, 0.39), (0.56, 0.61), (0.1, 0.61))
_HEAD: tuple[Point, ...] = ((0.5, 0.14), (0.92, 0.5), (0.5, 0.86))


def _rotate(point: Point, degrees: float, centre: Point = (0.5, 0.5)) -> Point:
    angle = math.radians(degrees)
    x, y = point[0] - centre[0], point[1] - centre[1]
    return (centre[0] + x * math.cos(angle) - y * math.sin(angle),
            centre[1] + x * math.sin(angle) + y * math.cos(angle))


def _place(point: Point, scale: float, centre: Point) -> Point:
    """Shrink a point of the unit square around (0.5, 0.5) and move it to `centre`."""
    return (centre[0] + (point[0] - 0.5) * scale, centre[1] + (point[1] - 0.5) * scale)


def _arrow(degrees: float, scale: float = 1.0, centre: Point = (0.5, 0.5)) -> list[Triangle]:
    shaft = [_place(_rotate(p, degrees), scale, centre) for p in _SHAFT]
    head = [_place(_rotate(p, degrees), scale, centre) for p in _HEAD]
    return [(shaft[0], shaft[1], shaft[2]), (shaft[0], shaft[2], shaft[3]), (head[0], head[1], head[2])]


def _steps() -> list[Triangle]:
    """Three steps rising to the right, along the bottom right of the square."""
    triangles: list[Triangle] = []
    for index in range(3):
        left, right = 0.38 + 0.19 * index, 0.57 + 0.19 * index
        bottom, top = 0.08, 0.08 + 0.17 * (index + 1)
        triangles += [((left, bottom), (right, bottom), (right, top)), ((left, bottom), (right, top), (left, top))]
    return triangles


def triangles(direction: str) -> list[Triangle]:
    """The sign for a direction of the hall config (broker.config.DIRECTIONS), as triangles to fill."""
    if direction in ANGLES:
        return _arrow(ANGLES[direction])
    if direction in STAIRS:
        return _steps() + _arrow(STAIRS[direction], scale=0.55, centre=(0.3, 0.68))
    raise ValueError(f"unknown direction {direction!r} (known: {', '.join(DIRECTIONS)})")


def mesh(direction: str, x: float, y: float, size: float) -> tuple[list[float], list[int]]:
    """Vertices (x, y, u, v) and indices for a Kivy Mesh in mode "triangles", in a square at (x, y)."""
    vertices: list[float] = []
    for triangle in triangles(direction):
        for px, py in triangle:
            vertices += [x + px * size, y + py * size, px, py]
    return vertices, list(range(len(vertices) // 4))
