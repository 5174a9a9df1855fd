"""A display's accent colour against the kiosk's themes: WCAG contrast, checked before saving.

The kiosk draws the accent (`--brand`) in two ways (static/kiosk/*.css): white text on it
(banners, the identify flash) and the accent itself on the page's background (the route to a
room, its arrow, "you are here", the nearest stairs, the other floors' arrow, the chosen room's
underline: kiosk.css `--brand-line`; the contrast theme draws its route and nearest stairs in
yellow, whatever the accent). Both must
reach 4.5:1, the WCAG AA ratio for text, or the accent is refused with the ratio it got. On the
dark theme the kiosk lightens what it draws on the background (60 % accent, 40 % white,
kiosk.css `color-mix`), so that lightened colour is the one checked there. On the contrast
(black) theme it draws a variant lightened in OKLab just enough to reach 4.5:1 (`legible_on`,
computed by kiosk.js `legibleOn` with the same steps): that variant is what is checked there, so
most brand colours pass instead of almost none (the default blue itself is 3.10:1 on black).

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
    derive_line: bool = False  # lines use the accent lightened until it reads (legible_on)


THEMES: dict[str, Theme] = {
    "light": Theme(background="#f2f0eb", text_on_accent="#ffffff", line_lift=0.0),
    "dark": Theme(background="#0e1014", text_on_accent="#ffffff", line_lift=0.4),
    "contrast": Theme(
        background="#000000", text_on_accent="#ffffff", line_lift=0.0, derive_line=True
    ),
}
LIGHTEN_STEPS = 100  # legible_on raises OKLab lightness a hundredth of the way to white a step


def _rgb(colour: str) -> tuple[int, int, int]:
    if not _HEX.match(colour):
        raise ValueError(f"not a #rrggbb colour: {colour!r}")
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def mix_with_white(colour: str, white: float) -> str:
    """`color-mix(in srgb, colour (1-white), #fff)` as #rrggbb."""
    r, g, b = _rgb(colour)
    mixed = (round(c * (1 - white) + 255 * white) for c in (r, g, b))
    return "#" + "".join(f"{c:02x}" for c in mixed)


def _to_linear(value: float) -> float:
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def _to_srgb(value: float) -> float:
    return 12.92 * value if value <= 0.0031308 else 1.055 * value ** (1 / 2.4) - 0.055


def oklab(colour: str) -> tuple[float, float, float]:
    """A #rrggbb colour in OKLab (Ottosson 2020): lightness 0-1 and two colour axes."""
    r, g, b = (_to_linear(v / 255) for v in _rgb(colour))
    lms = (
        0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b,
        0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b,
        0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b,
    )
    l_, m_, s_ = (max(v, 0.0) ** (1 / 3) for v in lms)
    return (
        0.2104542553 * l_ + 0.7936177850 * m_ - 0.0040720468 * s_,
        1.9779984951 * l_ - 2.4285922050 * m_ + 0.4505937099 * s_,
        0.0259040371 * l_ + 0.7827717662 * m_ - 0.8086757660 * s_,
    )


def from_oklab(lightness: float, a: float, b: float) -> str:
    """An OKLab colour as #rrggbb, each channel clipped into sRGB's range."""
    l_ = lightness + 0.3963377774 * a + 0.2158037573 * b
    m_ = lightness - 0.1055613458 * a - 0.0638541728 * b
    s_ = lightness - 0.0894841775 * a - 1.2914855480 * b
    lc, mc, sc = l_**3, m_**3, s_**3
    linear = (
        4.0767416621 * lc - 3.3077115913 * mc + 0.2309699292 * sc,
        -1.2684380046 * lc + 2.6097574011 * mc - 0.3413193965 * sc,
        -0.0043196266 * lc - 0.7034186147 * mc + 1.7076147010 * sc,
    )
    # int(x + 0.5), not round(): kiosk.js rounds halves up (Math.round), Python to even.
    srgb = (min(max(_to_srgb(min(max(v, 0.0), 1.0)), 0.0), 1.0) for v in linear)
    channels = (int(c * 255 + 0.5) for c in srgb)
    return "#" + "".join(f"{c:02x}" for c in channels)


def legible_on(accent: str, background: str, ratio: float = MIN_RATIO) -> str:
    """The accent, or where it does not reach `ratio` against a dark background, the accent with
    its OKLab lightness raised (hue and chroma kept as far as sRGB allows) in LIGHTEN_STEPS steps
    to white until it does. kiosk.js `legibleOn` repeats these steps; tests/test_kiosk_accent.py
    compares the two."""
    accent = accent.lower()
    if contrast_ratio(accent, background) >= ratio:
        return accent
    lightness, a, b = oklab(accent)
    for step in range(1, LIGHTEN_STEPS + 1):
        candidate = from_oklab(lightness + (1 - lightness) * step / LIGHTEN_STEPS, a, b)
        if contrast_ratio(candidate, background) >= ratio:
            return candidate
    return "#ffffff"


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance of a #rrggbb colour."""

    r, g, b = (_to_linear(v / 255) for v in _rgb(colour))
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
    line_colour: str  # what is drawn on the background (the accent, lightened on dark/contrast)

    @property
    def ok(self) -> bool:
        return min(self.text_on_accent, self.accent_on_background) >= MIN_RATIO


def check_accent(accent: str, theme: str) -> AccentCheck:
    """The accent's contrast on a theme (ValueError for a colour not #rrggbb)."""
    spec = THEMES.get(theme, THEMES["light"])
    accent = accent.lower()
    if spec.derive_line:
        line = legible_on(accent, spec.background)
    elif spec.line_lift:
        line = mix_with_white(accent, spec.line_lift)
    else:
        line = accent
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
    "from_oklab",
    "format_ratio",
    "legible_on",
    "luminance",
    "mix_with_white",
    "oklab",
]
