"""State coding that survives colour blindness, in headless Chromium: on the automatic map and
on the drawn plan, in the light, dark and high-contrast themes, a free, an occupied and an
unknown room are told apart without their hue under simulated protanopia, deuteranopia and
tritanopia.

The simulation is Chromium's own (DevTools' "emulate vision deficiencies",
`Emulation.setEmulatedVisionDeficiency` over CDP): the page is drawn through the colour
matrices of Machado, Oliveira and Fernandes (2009) at full severity, and screenshots show it so.
Under each:

- the rendered pixels of each room (a patch clear of words and icons) differ in pattern: the
  share of pattern ink (none, dots, stripes) is apart by at least 0.1 between any two states,
  and the ink stands out from the fill;
- a free room's fill differs from an occupied room's in luminance, not only in hue;
- each state's icon is drawn at least 24 px (per 1080 px of the screen's short side), stands
  out from its fill (3:1), and the icons' shapes differ from one another;
- every word in a room keeps a contrast of at least 4.5:1 against its fill and its pattern's
  ink, computed from the page's own colours passed through the same matrices (the test checks
  that these computed colours are the ones the screenshot shows).
"""

from __future__ import annotations

import struct
import zlib

import pytest
from playwright.sync_api import expect

from tests.test_kiosk_lint import IDS, ROOMS, snapshot
from tests.test_kiosk_wayfinding import NO_IDLE, PUSH_MS, WayFloor, open_page, shape

# Colours and layout do not depend on which of the simulator's shapes answers.
pytestmark = pytest.mark.one_shape

# Machado et al. 2009, severity 1.0, applied to linear RGB: the matrices Chromium emulates with.
MATRICES = {
    "protanopia": (
        (0.152286, 1.052583, -0.204868),
        (0.114503, 0.786281, 0.099216),
        (-0.003882, -0.048116, 1.051998),
    ),
    "deuteranopia": (
        (0.367322, 0.860646, -0.227968),
        (0.280085, 0.672501, 0.047413),
        (-0.011820, 0.042940, 0.968881),
    ),
    "tritanopia": (
        (1.255528, -0.076749, -0.178779),
        (-0.078411, 0.930809, 0.147602),
        (0.004733, 0.691367, 0.303900),
    ),
}
THEMES = ("light", "dark", "contrast")
# A socket stand-in that opens and says nothing: the page is live (a stale map is drawn
# desaturated) and shows only what the test gives it.
LIVE = """
window.__SIGNAGE_TEST__ = {noContactS: 1e9};
window.WebSocket = function () {
  var sock = this;
  sock.readyState = 1; sock.send = function () {}; sock.close = function () {};
  window.__socket = sock;
  setTimeout(function () { if (sock.onopen) sock.onopen(); }, 0);
};
"""
SAY = "m => window.__socket.onmessage({data: JSON.stringify(m)})"
STATES = ("free", "occupied", "unknown")
Rgb = tuple[float, float, float]


# -- colour arithmetic ---------------------------------------------------------------------------
def to_linear(c: float) -> float:
    c /= 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def to_srgb(v: float) -> float:
    v = min(1.0, max(0.0, v))
    return 255 * (v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055)


def simulate(rgb: Rgb, kind: str) -> Rgb:
    """The colour as the deficiency shows it (sRGB 0-255)."""
    lin = [to_linear(c) for c in rgb]
    m = MATRICES[kind]
    return tuple(to_srgb(sum(m[i][j] * lin[j] for j in range(3))) for i in range(3))


def luminance(rgb: Rgb) -> float:
    r, g, b = (to_linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: Rgb, b: Rgb) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def blend(top: Rgb, under: Rgb, alpha: float) -> Rgb:
    return tuple(t * alpha + u * (1 - alpha) for t, u in zip(top, under, strict=True))


# -- a screenshot's pixels (PNG from Chromium: 8-bit RGB or RGBA, not interlaced) -----------------
class Image:
    def __init__(self, png: bytes) -> None:
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        pos, data = 8, b""
        while pos < len(png):
            length, kind = struct.unpack(">I4s", png[pos : pos + 8])
            body = png[pos + 8 : pos + 8 + length]
            if kind == b"IHDR":
                self.w, self.h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
                assert depth == 8 and ctype in (2, 6) and not interlace
                self.bpp = 3 if ctype == 2 else 4
            elif kind == b"IDAT":
                data += body
            pos += 12 + length
        raw, stride = zlib.decompress(data), self.w * self.bpp
        rows, prev = [], bytearray(stride)
        for y in range(self.h):
            f = raw[y * (stride + 1)]
            line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
            for i in range(stride):
                a = line[i - self.bpp] if i >= self.bpp else 0
                b, c = prev[i], prev[i - self.bpp] if i >= self.bpp else 0
                if f == 1:
                    line[i] = (line[i] + a) & 255
                elif f == 2:
                    line[i] = (line[i] + b) & 255
                elif f == 3:
                    line[i] = (line[i] + (a + b) // 2) & 255
                elif f == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (
                        line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)
                    ) & 255
            rows.append(bytes(line))
            prev = line
        self.rows = rows

    @classmethod
    def grab(cls, page, box: dict) -> Image:
        """The pixels of one box of the page (small clips: decoding here is pure Python)."""
        clip = {k: round(box[k]) for k in ("x", "y")}
        clip.update(width=max(1, round(box["w"])), height=max(1, round(box["h"])))
        img = cls(page.screenshot(clip=clip))
        img.origin = (clip["x"], clip["y"])
        return img

    def pixels(self, box: dict | None = None) -> list[Rgb]:
        if box is None:
            return [
                (row[i], row[i + 1], row[i + 2])
                for row in self.rows
                for i in range(0, self.w * self.bpp, self.bpp)
            ]
        out = []
        for y in range(int(box["y"]), int(box["y"] + box["h"])):
            row = self.rows[y]
            for x in range(int(box["x"]), int(box["x"] + box["w"])):
                i = x * self.bpp
                out.append((row[i], row[i + 1], row[i + 2]))
        return out


def dominant(pixels: list[Rgb]) -> Rgb:
    counts: dict[Rgb, int] = {}
    for p in pixels:
        counts[p] = counts.get(p, 0) + 1
    return max(counts, key=counts.get)


def ink_share(pixels: list[Rgb], fill: Rgb) -> tuple[float, float]:
    """The share of pixels that stand apart from the fill, and their mean contrast with it."""
    apart = [p for p in pixels if contrast(p, fill) > 1.12]
    if not apart:
        return 0.0, 1.0
    mean = tuple(sum(p[i] for p in apart) / len(apart) for i in range(3))
    return len(apart) / len(pixels), contrast(mean, fill)


def icon_mask(img: Image, fill: Rgb, n: int = 12) -> list[bool]:
    """The icon's shape on an n x n grid: cells mostly unlike the room's fill."""
    cells = []
    for gy in range(n):
        for gx in range(n):
            cell = {
                "x": gx * img.w / n,
                "y": gy * img.h / n,
                "w": max(1, img.w / n),
                "h": max(1, img.h / n),
            }
            px = img.pixels(cell) or [fill]
            cells.append(sum(contrast(p, fill) > 1.5 for p in px) > len(px) / 2)
    return cells


# Fills fade from one state or theme to the next: read them once every fade has ended.
SETTLED = """
() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() =>
  Promise.all(document.getAnimations().filter((a) => a instanceof CSSTransition)
    .map((a) => a.finished.catch(() => null))).then(done))))
"""


def steady(page, box: dict) -> list[Rgb]:
    """A patch's pixels once two grabs agree: a repaint under a new filter can take a frame."""
    last = None
    for _ in range(6):
        pixels = Image.grab(page, box).pixels()
        if pixels == last:
            break
        last = pixels
    return pixels


# -- what the page says about each room -----------------------------------------------------------
ROOM_FACTS = r"""
(ids) => {
  const rgb = (s) => (s.match(/[\d.]+/g) || [0, 0, 0]).slice(0, 3).map(Number);
  const rect = (e) => {
    const r = e.getBoundingClientRect();
    return {x: r.x, y: r.y, w: r.width, h: r.height};
  };
  const shown = (el) => {
    for (let n = el; n && n.nodeType === 1; n = n.parentNode) {
      if (n.getAttribute("display") === "none") return false;
      if (getComputedStyle(n).display === "none") return false;
    }
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const hit = (a, b, m) => !(a.x + a.w + m <= b.x || b.x + b.w + m <= a.x ||
    a.y + a.h + m <= b.y || b.y + b.h + m <= a.y);
  // Whatever is drawn over the rooms: words, icons, the route, "you are here", signs.
  const over = [...document.querySelectorAll(
    "#plan-route *, #plan-here *, #plan-landmarks *")].filter(shown).map(rect);
  const pattern = (state) => {
    const ink = document.querySelector(`#p-${state} .p-ink`);
    return ink ? rgb(getComputedStyle(ink).fill) : null;
  };
  return ids.map((id) => {
    const g = document.querySelector(
      `.tile[data-space-id="${id}"], .room-shape[data-space-id="${id}"]`);
    const bg = g.querySelector(".tile-bg, .shape-bg");
    const state = g.dataset.state;
    const box = rect(bg);
    const icon = g.querySelector(".tile-icon, .shape-icon");
    const words = [...g.querySelectorAll("text")].filter((t) => shown(t) && t.textContent.trim());
    const busy = over.concat(words.map(rect), shown(icon) ? [rect(icon)] : []);
    // The largest square patch inside the room, clear of its stroke and of all of the above.
    let patch = null;
    for (let s = Math.min(72, box.w * 0.4, box.h * 0.4); s >= 20 && !patch; s -= 4) {
      for (let y = box.y + 6; y + s <= box.y + box.h - 6 && !patch; y += 3) {
        for (let x = box.x + 6; x + s <= box.x + box.w - 6 && !patch; x += 3) {
          const p = {x, y, w: s, h: s};
          if (!busy.some((b) => hit(p, b, 4))) patch = p;
        }
      }
    }
    const iconBg = icon && shown(icon)
      ? rgb(getComputedStyle(g).getPropertyValue("--icon-bg").trim().replace(/^#(..)(..)(..)$/,
          (m, r, gg, b) => `rgb(${parseInt(r, 16)}, ${parseInt(gg, 16)}, ${parseInt(b, 16)})`))
      : null;
    return {
      id, state, box, patch,
      fill: rgb(getComputedStyle(bg).fill),
      ink: pattern(state),
      icon: icon && shown(icon) ? {box: rect(icon), bg: iconBg} : null,
      words: words.map((t) => ({
        text: t.textContent.trim().slice(0, 30),
        fill: rgb(getComputedStyle(t).fill),
        opacity: Number(getComputedStyle(t).opacity),
      })),
    };
  });
}
"""


def check_rooms(page, cdp, ids: list[str], where: str, short_side: int) -> list[str]:
    """Every deficiency in every theme: the problems found, each a sentence with its numbers."""
    problems: list[str] = []
    min_icon = 24 * short_side / 1080
    for theme in THEMES:
        page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
        page.evaluate(SETTLED)
        facts = page.evaluate(ROOM_FACTS, ids)
        assert [f["state"] for f in facts] == list(STATES), facts
        for kind in MATRICES:
            cdp.send("Emulation.setEmulatedVisionDeficiency", {"type": kind})
            page.evaluate(SETTLED)
            at = f"{where} {theme} {kind}"
            assert page.evaluate("document.documentElement.dataset.feed") == "live", at
            shares, fills, masks = {}, {}, {}
            for f in facts:
                state = f["state"]
                if f["patch"] is None:
                    problems.append(f"{at}: no clear patch in the {state} room {f['box']}")
                    continue
                pixels = steady(page, f["patch"])
                fill = simulate(f["fill"], kind)
                seen = dominant(pixels)
                # Our colours through the matrix are what Chromium drew (or the pattern's ink).
                near = [simulate(c, kind) for c in (f["fill"], f["ink"]) if c]
                if min(max(abs(a - b) for a, b in zip(seen, c, strict=True)) for c in near) > 10:
                    problems.append(f"{at}: {state} drawn {seen}, computed {[*map(round, fill)]}")
                share, ink_contrast = ink_share(pixels, seen)
                shares[state], fills[state] = share, fill
                if share > 0.05 and ink_contrast < 1.4:
                    problems.append(f"{at}: {state} pattern is faint ({ink_contrast:.2f}:1)")
                # Every word against the fill and the pattern's ink, as the deficiency sees them.
                backs = [f["fill"]] + ([f["ink"]] if f["ink"] else [])
                for w in f["words"]:
                    for back in backs:
                        colour = blend(w["fill"], back, w["opacity"])
                        ratio = contrast(simulate(colour, kind), simulate(back, kind))
                        if ratio < 4.5:
                            problems.append(
                                f"{at}: {state} '{w['text']}' at {ratio:.2f}:1 on {back}"
                            )
                icon = f["icon"]
                if icon is None:
                    problems.append(f"{at}: the {state} room shows no icon")
                    continue
                size = min(icon["box"]["w"], icon["box"]["h"])
                if size < min_icon - 0.5:
                    problems.append(f"{at}: {state} icon {size:.0f} px (< {min_icon:.0f})")
                ratio = contrast(simulate(icon["bg"], kind), fill)
                if ratio < 3:
                    problems.append(f"{at}: {state} icon on its fill at {ratio:.2f}:1")
                masks[state] = icon_mask(Image.grab(page, icon["box"]), seen)
            for i, a in enumerate(STATES):
                for b in STATES[i + 1 :]:
                    if a in shares and b in shares and abs(shares[a] - shares[b]) < 0.1:
                        problems.append(
                            f"{at}: {a} and {b} patterns alike ({shares[a]:.2f}, {shares[b]:.2f})"
                        )
                    if a in masks and b in masks:
                        apart = sum(x != y for x, y in zip(masks[a], masks[b], strict=True))
                        if apart < 0.08 * len(masks[a]):
                            problems.append(f"{at}: {a} and {b} icons alike ({apart} cells)")
            if "free" in fills and "occupied" in fills:
                ratio = contrast(fills["free"], fills["occupied"])
                if ratio < 1.25:
                    problems.append(f"{at}: free and occupied fills alike ({ratio:.2f}:1)")
        cdp.send("Emulation.setEmulatedVisionDeficiency", {"type": "none"})
    return problems


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_states_differ_without_hue_on_the_automatic_map(make_server, contexts):
    # Heartbeats a minute apart: the stand-in socket sends none, and a page that hears nothing
    # for three of them goes stale (and draws its map desaturated).
    server = make_server(SIGNAGE_HEARTBEAT_INTERVAL=60.0)
    floor = server.svc.directory.floors()[0].id
    _, cred = server.add_display(floor, name="Lobby")
    ctx = contexts(1920, 1080, init=LIVE)
    ctx.route("**/api/*/*/state*", lambda route: route.abort())
    page = ctx.new_page()
    page.goto(f"{server.url}/kiosk/{cred}")
    page.wait_for_function("() => window.signageKiosk && window.__socket")
    # Three large rooms of the lint floor: free, in use, and unknown for a sensor offline.
    message = snapshot("live", 50)
    big = [IDS[i] for i in (7, 4, 10)]
    for rid, state in zip(big, STATES, strict=True):
        room = message["rooms"][rid]
        room["state"] = state
        if state == "unknown":
            room["reason"] = "sensor_offline"
    page.evaluate(SAY, message)
    page.wait_for_function("() => document.documentElement.dataset.feed === 'live'")
    page.wait_for_function(
        "ids => ids.every((id, i) => document.querySelector(`.tile[data-space-id='${id}']`)"
        "?.dataset.state === ['free', 'occupied', 'unknown'][i])",
        arg=big,
    )
    assert len(ROOMS) == len(IDS)
    cdp = ctx.new_cdp_session(page)
    problems = check_rooms(page, cdp, big, "automatic map", 1080)
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} problems)"


@pytest.mark.browser
@pytest.mark.timeout(300)
# 720p: the smallest rooms, icons and patterns a lobby screen draws. (The phone's plan is a
# hand's width: its rooms leave no patch clear of their words to measure a pattern on.)
@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)], ids=["1080p", "720p"])
def test_states_differ_without_hue_on_the_drawn_plan(server, sim, contexts, size):
    way = WayFloor(server, sim)
    free, occupied, unknown = way.sid["south_b"], way.sid["north_mid"], way.sid["north_east"]
    way.sim.world.set_space(occupied, presence=True)
    way.sim.world.set_space(unknown, health="offline")
    width, height = size
    page = open_page(contexts, way.url, width, height, NO_IDLE)
    expect(shape(page, unknown)).to_have_attribute("data-state", "unknown", timeout=PUSH_MS)
    expect(shape(page, occupied)).to_have_attribute("data-state", "occupied", timeout=PUSH_MS)
    # The unknown room says why on the plan itself, not only in a tapped card.
    expect(shape(page, unknown).locator(".shape-why")).to_have_text("Sensor offline")
    expect(shape(page, unknown).locator(".shape-why")).to_be_visible()
    cdp = page.context.new_cdp_session(page)
    problems = check_rooms(page, cdp, [free, occupied, unknown], f"plan {width}x{height}", height)
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} problems)"
    assert not page.errors
