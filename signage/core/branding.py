"""A display's accent colour against the kiosk's themes: WCAG contrast, checked before saving.

The kiosk draws the accent (`--brand`) in two ways (static/kiosk/*.css): white text on it
(banners, the identify flash) and the accent itself on the page's background (the route to a
room, its arrow, "you are here", the nearest stairs). Both must reach 4.5:1, the WCAG AA
ratio for text, or the accent is refused with the ratio it got. On the dark theme the kiosk
lightens lines drawn on the background (60 % accent, 40 % white, kiosk.css `color-mix`), so
that lightened colour is the one checked there.

THEMES repeats kiosk.css's colours; tests/test_branding.py reads the CSS and fails if they
drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_RATIO = 4.5
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Theme:
    """What the accent meets on one kiosk theme."""

    background: str  # --bg
    text_on_accent: str  # the text colour kiosk.css puts on var(--brand)
    line_lift: float  # share of white mixed into the accent for lines on the background


THEMES: dict[str, Theme] = {
    "light": Theme(background="#f2f0eb", text_on_accent="#ffffff", line_lift=0.0),
    "dark": Theme(background="#0e1014", text_on_accent="#ffffff", line_lift=0.4),
    "contrast": Theme(background="#000000", text_on_accent="#ffffff", line_lift=0.0),
}


def _rgb(colour: str) -> tuple[int, int, int]:
    if not _HEX.match(colour):
        raise ValueError(f"not a #rrggbb colour: {colour!r}")
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def mix_with_white(colour: str, white: float) -> str:
    """`color-mix(in srgb, colour (1-white), #fff)` as #rrggbb."""
    r, g, b = _rgb(colour)
    mixed = (round(c * (1 - white) + 255 * white) for c in (r, g, b))
    return "#" + "".join(f"{c:02x}" for c in mixed)


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance of a #rrggbb colour."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours (1 to 21)."""
    la, lb = luminance(a), luminance(b)
    high, low = max(la, lb), min(la, lb)
    return (high + 0.05) / (low + 0.05)


@dataclass(frozen=True)
class AccentCheck:
    """The two ratios of an accent on one theme, and whether each passes."""

    theme: str
    accent: str
    text_on_accent: float
    accent_on_background: float
    line_colour: str  # what is drawn on the background (the accent, lightened on dark)

    @property
    def ok(self) -> bool:
        return min(self.text_on_accent, self.accent_on_background) >= MIN_RATIO


def check_accent(accent: str, theme: str) -> AccentCheck:
    """The accent's contrast on a theme (ValueError for a colour not #rrggbb)."""
    spec = THEMES.get(theme, THEMES["light"])
    accent = accent.lower()
    line = mix_with_white(accent, spec.line_lift) if spec.line_lift else accent
    return AccentCheck(
        theme=theme,
        accent=accent,
        text_on_accent=contrast_ratio(spec.text_on_accent, accent),
        accent_on_background=contrast_ratio(line, spec.background),
        line_colour=line,
    )


def format_ratio(value: float) -> str:
    """A contrast ratio as people read it, rounded down: 4.499 must not read as a passing 4.50."""
    return f"{int(value * 100) / 100:.2f}:1"


def accent_problem(accent: str, theme: str) -> str | None:
    """Why an accent cannot be used on a theme (naming each ratio it got), or None."""
    check = check_accent(accent, theme)
    problems = []
    if check.text_on_accent < MIN_RATIO:
        problems.append(
            f"white text on {check.accent} has a contrast of {format_ratio(check.text_on_accent)}"
        )
    if check.accent_on_background < MIN_RATIO:
        spec = THEMES.get(theme, THEMES["light"])
        lifted = "" if check.line_colour == check.accent else " (the accent as lines show it)"
        problems.append(
            f"{check.line_colour}{lifted} on the {theme} theme's background ({spec.background})"
            f" has a contrast of {format_ratio(check.accent_on_background)}"
        )
    if not problems:
        return None
    return "; ".join(problems) + f"; both need at least {MIN_RATIO}:1"


__all__ = [
    "MIN_RATIO",
    "THEMES",
    "AccentCheck",
    "accent_problem",
    "check_accent",
    "contrast_ratio",
    "format_ratio",
    "luminance",
    "mix_with_white",
]
