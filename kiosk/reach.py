"""Where a seated visitor can reach on the kiosk's screen: the measure behind the accessible mode's layout.

The kiosk recipe (assets/pi/README.md) mounts a 21.5-inch touch screen in portrait, its visible area
47.6 cm tall, with its lower edge 70 cm above the floor (a wheelchair's armrests pass under it). A person
in a wheelchair reaches forward comfortably up to about 100 cm (ISO 21542:2021 puts controls at
80-110 cm, the ADA's forward reach allows 38-122 cm with no obstruction; the lower, comfortable figure
is used because the kiosk has a ledge for the printer in front of it). So in the accessible mode every
control's top edge must stay below REACH_TOP of the screen's height, measured from the bottom; the normal
mode is not bound by it.

Pure numbers: tests/test_fit.py checks each control of the accessible screens against REACH_TOP.
"""

from __future__ import annotations

SCREEN_BOTTOM_CM = 70.0  # the visible area's lower edge above the floor (the recipe's mounting)
SCREEN_HEIGHT_CM = 47.6  # 21.5-inch 16:9 panel in portrait
REACH_HIGH_CM = 100.0  # a seated person's comfortable forward reach over a shallow ledge


def reach_top(bottom_cm: float = SCREEN_BOTTOM_CM, height_cm: float = SCREEN_HEIGHT_CM,
              reach_cm: float = REACH_HIGH_CM) -> float:
    """The highest point a control may reach, as a share of the screen's height from its bottom edge."""
    return max(0.0, min(1.0, (reach_cm - bottom_cm) / height_cm))


REACH_TOP = reach_top()  # 0.63: the lower 63 % of the screen
