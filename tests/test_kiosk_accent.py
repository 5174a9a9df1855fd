"""The accent colour on the contrast (black) theme: where the kiosk draws the accent on the black
background ("you are here", the other floors' arrow, the chosen room's underline; the route
and the nearest stairs are yellow on that theme) it draws a variant
lightened in OKLab until it reaches 4.5:1, so most brand colours can be used there; the
console's check (signage/core/branding.py) checks that variant, the one the page draws.

Unit checks without a server; then the real kiosk page in Chromium on the contrast theme,
whose drawn colours must be the ones the check computed.
"""

from __future__ import annotations

import colorsys

import pytest

from signage.core.branding import (
    MIN_RATIO,
    accent_problem,
    check_accent,
    contrast_ratio,
    legible_on,
    oklab,
)
from tests.test_kiosk_wayfinding import NO_IDLE, WayFloor, open_page

# Colours do not depend on which of the simulator's shapes answers.
pytestmark = pytest.mark.one_shape

BLACK = "#000000"
DEFAULT = "#2b4bd8"  # kiosk.css --brand


def palette() -> list[str]:
    """108 saturated brand colours: 36 hues at three lightnesses white text reads on or not."""
    out = []
    for hue in range(36):
        for light in (0.35, 0.45, 0.55):
            r, g, b = colorsys.hls_to_rgb(hue / 36, light, 0.7)
            out.append("#" + "".join(f"{int(v * 255 + 0.5):02x}" for v in (r, g, b)))
    return out


def test_the_default_blue_gets_a_lighter_blue_that_reads_on_black():
    assert contrast_ratio(DEFAULT, BLACK) == pytest.approx(3.10, abs=0.01)  # as drawn before
    line = legible_on(DEFAULT, BLACK)
    assert contrast_ratio(line, BLACK) >= MIN_RATIO
    # Lighter, the same hue family: OKLab's colour axes keep their signs and most of their size.
    (l0, a0, b0), (l1, a1, b1) = oklab(DEFAULT), oklab(line)
    assert l1 > l0 and a1 * a0 > 0 and b1 * b0 > 0 and abs(b1) > 0.6 * abs(b0)
    check = check_accent(DEFAULT, "contrast")
    assert check.ok and check.line_colour == line
    assert accent_problem(DEFAULT, "contrast") is None


def test_a_colour_that_already_reads_is_drawn_as_it_is():
    assert legible_on("#ff7b6e", BLACK) == "#ff7b6e"
    assert check_accent("#FF7B6E", "contrast").line_colour == "#ff7b6e"


def test_most_brand_colours_pass_on_the_contrast_theme_now():
    colours = palette()
    as_is = [
        c for c in colours if min(contrast_ratio(c, BLACK), contrast_ratio("#ffffff", c)) >= 4.5
    ]
    passing = [c for c in colours if accent_problem(c, "contrast") is None]
    assert len(as_is) <= 5  # refusing the accent as it is would refuse nearly all
    assert len(passing) >= 40, len(passing)
    for c in passing:
        assert contrast_ratio(check_accent(c, "contrast").line_colour, BLACK) >= MIN_RATIO
    # The banner still puts white text on the accent itself: a light accent is refused, for that.
    problem = accent_problem("#ffd400", "contrast")
    assert problem and "white text on #ffd400" in problem and "theme's background" not in problem


def test_the_light_and_dark_themes_keep_their_rules():
    assert check_accent(DEFAULT, "light").line_colour == DEFAULT
    assert check_accent(DEFAULT, "dark").line_colour == "#8093e8"  # 60 % accent, 40 % white


DRAWN = """() => {
  const hex = (c) => "#" + c.match(/\\d+/g).slice(0, 3)
    .map((v) => (+v).toString(16).padStart(2, "0")).join("");
  const css = (sel, prop) => {
    const el = document.querySelector(sel);
    return el ? hex(getComputedStyle(el)[prop]) : null;
  };
  return {route: css("#route", "stroke"), here: css(".here-dot", "fill"),
          halo: css(".here-halo", "fill"), theme: document.documentElement.dataset.theme};
}"""


@pytest.mark.browser
@pytest.mark.parametrize("accent", [None, "#b3261e", "#6a1b9a"])
def test_the_contrast_page_draws_the_colour_the_check_passed(server, sim, contexts, accent):
    floor = WayFloor(server, sim)
    settings = {"here": [150, 400], "theme": "contrast"}
    if accent:
        settings["brand_color"] = accent
    server.svc.store.update_display_settings(floor.display.id, settings)
    page = open_page(contexts, f"{server.url}/kiosk/{floor.cred}", init=NO_IDLE)
    page.wait_for_selector("#route")
    drawn = page.evaluate(DRAWN)
    check = check_accent(accent or DEFAULT, "contrast")
    assert drawn["theme"] == "contrast"
    assert check.ok, accent_problem(accent or DEFAULT, "contrast")
    assert check.line_colour != (accent or DEFAULT)  # each of these needed lightening
    assert drawn["here"] == drawn["halo"] == check.line_colour, drawn
    assert contrast_ratio(drawn["here"], BLACK) >= MIN_RATIO
    # The route is the theme's own yellow, whatever the accent (and reads on black too).
    assert drawn["route"] == "#ffd75e" and contrast_ratio(drawn["route"], BLACK) >= MIN_RATIO
    assert not page.errors
