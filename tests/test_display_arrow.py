"""The direction signs as geometry: each points where its name says, fits its square, and scales into a mesh."""

from __future__ import annotations

import math

import pytest

from broker.config import DIRECTIONS
from display import arrow


def area(triangle: arrow.Triangle) -> float:
    (ax, ay), (bx, by), (cx, cy) = triangle
    return abs((bx - ax) * (cy - ay) - (cx - ax) * (by - ay)) / 2


def tip_angle(points: list[arrow.Point], centre: arrow.Point) -> float:
    """The direction, in degrees, of the point farthest from the centre: where an arrow points."""
    far = max(points, key=lambda p: math.dist(p, centre))
    return math.degrees(math.atan2(far[1] - centre[1], far[0] - centre[0])) % 360


@pytest.mark.parametrize(("direction", "degrees"), sorted(arrow.ANGLES.items()))
def test_each_arrow_points_the_way_its_name_says(direction: str, degrees: float) -> None:
    points = [p for t in arrow.triangles(direction) for p in t]
    assert abs((tip_angle(points, (0.5, 0.5)) - degrees + 180) % 360 - 180) < 1.0
    assert {"ahead": 90, "left": 180, "right": 0, "behind": 270}.get(direction, degrees) == degrees  # "ahead" is up


@pytest.mark.parametrize(("direction", "degrees"), [("upstairs", 45.0), ("downstairs", 225.0)])
def test_stairs_carry_steps_and_an_arrow_up_or_down_them(direction: str, degrees: float) -> None:
    triangles = arrow.triangles(direction)
    steps, sign = triangles[:6], triangles[6:]
    assert all(min(p[1] for p in t) == pytest.approx(0.08) for t in steps)  # three steps stand on one floor
    tops = sorted({max(p[1] for p in t) for t in steps})
    assert tops == pytest.approx([0.25, 0.42, 0.59])  # rising to the right
    points = [p for t in sign for p in t]
    assert abs((tip_angle(points, (0.3, 0.68)) - degrees + 180) % 360 - 180) < 1.0


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_every_sign_fits_its_square_and_is_solid(direction: str) -> None:
    triangles = arrow.triangles(direction)
    assert all(0.0 <= c <= 1.0 for t in triangles for p in t for c in p)
    assert sum(area(t) for t in triangles) > 0.12  # a sign, not a hairline
    vertices, indices = arrow.mesh(direction, 100, 200, 50)
    assert len(vertices) == 4 * len(indices) == 4 * 3 * len(triangles)
    xs, ys = vertices[0::4], vertices[1::4]
    assert min(xs) >= 100 and max(xs) <= 150 and min(ys) >= 200 and max(ys) <= 250


def test_an_unknown_direction_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="sideways"):
        arrow.triangles("sideways")
