"""The kiosk's layout lint, in headless Chromium: a test floor of twelve rooms whose names run
from 3 to 35 characters (German and French compounds among them), on the automatic map and on a
drawn plan, in en/de/fr at four screen sizes and on the phone, live, stale and under a banner,
and under an emergency override. Every room's full name is readable at the minimum size on the
map or in its legend entry; no word is smaller than 16 px per 1080 px of the screen (12 px at
least, also on the phone); no text leaves its box; nothing is ellipsised; the header's parts do
not overlap; on the drawn plan no room's words cover a point of a route the plan may draw or
"you are here"; the override's words fit the screen at a size read from across a lobby.

One page per language and map is resized through the four screen sizes (as a rotated or
replaced screen would be) rather than loaded at each: the run stays near half a minute."""

from __future__ import annotations

import time

import pytest

# Colours and layout do not depend on which of the simulator's shapes answers.
pytestmark = pytest.mark.one_shape

# (name, function, capacity): 3 to 35 characters.
ROOMS = [
    ("Box", "phone_booth", 1),
    ("Küche", "kitchen", 6),
    ("Atelier", "focus_room", 2),
    ("Ruheraum", "quiet_room", 2),
    ("Open Space Marketing", "desk_neighborhood", 24),
    ("Telefonkabine Süd-West", "phone_booth", 1),
    ("Salle de réunion Panorama 4.12", "meeting_room", 8),
    ("Innovation Lab & Workshop Space", "event_space", 30),
    ("Konzentrationsarbeitsplätze Ost", "desk_neighborhood", 12),
    ("Espace détente et cafétéria du 4e", "lounge", 10),
    ("Besprechungsraum Großer Saal Nord", "conference_room", 20),
    ("Geschäftsführungsbesprechungszimmer", "boardroom", 12),
]
IDS = [f"spc_lint_{i:02d}" for i in range(len(ROOMS))]
SIZES = [(1920, 1080), (1080, 1920), (1280, 720), (3840, 2160)]
PHONE = (390, 844)
LANGS = ("en", "de", "fr")

# The page keeps what the test gives it: no socket, no polling, no "no contact" timeout.
QUIET = """
window.__SIGNAGE_TEST__ = {noContactS: 1e9};
window.WebSocket = function () {
  this.readyState = 0; this.send = function () {}; this.close = function () {};
};
"""


def rooms(state: str) -> dict:
    out = {}
    for i, (rid, (name, function, capacity)) in enumerate(zip(IDS, ROOMS, strict=True)):
        room = {"id": rid, "name": name, "function": function, "capacity": capacity}
        if state == "stale":
            room.update(state="unknown", reason="stale", last_known="free" if i % 2 else "occupied")
        else:
            room.update(state="free" if i % 3 else "occupied", since_s=600 + i * 60)
        out[rid] = room
    return out


def snapshot(state: str, seq: int) -> dict:
    return {
        "type": "snapshot",
        "epoch": "lint",
        "seq": seq,
        "feed": "stale" if state == "stale" else "live",
        "feed_reason": "unreachable" if state == "stale" else None,
        "heard_age_s": 900 if state == "stale" else 1,
        "server_time": "2026-03-02T10:00:00Z",
        "rooms": rooms(state),
    }


# The drawn plan: 1200 x 800 units, a row of rooms either side of a corridor, rooms as narrow
# as a phone booth (60 units) and as wide as an open space; the screen stands in the corridor.
PLAN_ROWS = (
    (60, 320, [60, 130, 95, 110, 330, 85]),
    (480, 740, [190, 250, 200, 170, 200, 120]),
)


def plan_layout() -> dict:
    """A layout outlining the twelve lint rooms, with stairs, a lift and a corridor."""
    outlines, k = {}, 0
    for y0, y1, widths in PLAN_ROWS:
        x = 30 + (1140 - sum(widths) - 10 * (len(widths) - 1)) / 2
        for w in widths:
            door = [x + w / 2, y1 if y0 < 400 else y0]
            outlines[IDS[k]] = {
                "outline": [[x, y0], [x + w, y0], [x + w, y1], [x, y1]],
                "door": door,
            }
            x += w + 10
            k += 1
    # The open space and the event space have no door (their routes end at their centres,
    # where a centred name would sit), and a walkway crosses the open space, with the screen
    # standing on it (see HERE): their names must step aside from both.
    for open_plan in (IDS[4], IDS[7]):
        del outlines[open_plan]["door"]
    nodes = [
        {"id": "c0", "x": 60, "y": 400, "kind": "lift"},
        {"id": "c1", "x": 600, "y": 400, "kind": "corridor"},
        {"id": "c2", "x": 1150, "y": 400, "kind": "stairs"},
        {"id": "c3", "x": 770, "y": 400, "kind": "corridor"},
        {"id": "c4", "x": 770, "y": 140, "kind": "corridor"},
        {"id": "c5", "x": 700, "y": 140, "kind": "corridor"},
    ]
    return {
        "width": 1200,
        "height": 800,
        "metres_across": 48,
        "rooms": outlines,
        "nodes": nodes,
        "edges": [["c0", "c1"], ["c1", "c3"], ["c3", "c2"], ["c3", "c4"], ["c4", "c5"]],
    }


# Where the drawn plan's screen stands: on the walkway through the open space.
HERE = [770, 250]


EMERGENCY = {
    "type": "announcements",
    "epoch": "lint",
    "rev": 2,
    "items": [
        {
            "id": 2,
            "kind": "emergency",
            "title": "Evakuierung: Bitte verlassen Sie das Gebäude über die Treppenhäuser",
            "body": "Fire alarm on the fourth floor. Leave by the nearest stairs, do not use the "
            "lifts, and meet at the assembly point in the Marie-Hélène-Dubois-Platz car park.",
            "ends_in_s": 3600,
        }
    ],
}

BANNER = {
    "type": "announcements",
    "epoch": "lint",
    "rev": 1,
    "items": [
        {
            "id": 1,
            "kind": "message",
            "title": "Coffee and cake in the Panorama lounge",
            "body": "Coffee and cake for everyone on the fourth floor at three o'clock, "
            "with a farewell for Marie-Hélène from the Innovation Lab.",
            "ends_in_s": 3600,
        }
    ],
}

# Returns a list of problems, each a short sentence naming the thing and the numbers.
CHECK = r"""
([ids, names, minPx, minText]) => {
  const problems = [];
  const shown = (el) => {
    for (let n = el; n && n.nodeType === 1; n = n.parentNode) {
      if (n.hidden || n.getAttribute("display") === "none") return false;
      const cs = getComputedStyle(n);
      if (cs.display === "none" || cs.visibility === "hidden") return false;
    }
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const norm = (s) => s.replace(/[\s\u00ad-]/g, "");
  const r = (q) => `[${[q.left, q.top, q.right, q.bottom].map((v) => v.toFixed(0)).join(",")}]`;
  const inside = (a, b, tol) => a.left >= b.left - tol && a.right <= b.right + tol &&
    a.top >= b.top - tol && a.bottom <= b.bottom + tol;
  const view = {left: 0, top: 0, right: innerWidth, bottom: document.documentElement.scrollHeight};
  ids.forEach((id, i) => {
    const full = names[i];
    const tile = document.querySelector(
      `.tile[data-space-id="${id}"], .room-shape[data-space-id="${id}"]`);
    let ok = false, why = "no tile";
    if (tile) {
      const name = tile.querySelector(".tile-name, .shape-name");
      const px = parseFloat(name.getAttribute("font-size")) * name.getScreenCTM().a;
      ok = shown(name) && norm(name.textContent) === norm(full) && px >= minPx - 0.05;
      why = `tile "${name.textContent}" at ${px.toFixed(1)} px`;
      const box = tile.querySelector(".tile-bg, .shape-bg").getBoundingClientRect();
      tile.querySelectorAll("text").forEach((t) => {
        if (shown(t) && t.textContent.trim() && !inside(t.getBoundingClientRect(), box, 1.5)) {
          const at = r(t.getBoundingClientRect());
          problems.push(`text "${t.textContent}" ${at} leaves the tile of ${full} ${r(box)}`);
        }
      });
    }
    if (!ok) {
      const entry = document.querySelector(`[data-legend-for="${id}"]`);
      if (entry && shown(entry)) {
        const px = parseFloat(getComputedStyle(entry).fontSize);
        ok = norm(entry.textContent).includes(norm(full)) && px >= minPx - 0.05;
        why += `; legend "${entry.textContent}" at ${px.toFixed(1)} px`;
      } else why += "; no legend entry";
    }
    if (!ok) problems.push(`${full}: not readable (${why})`);
  });
  document.querySelectorAll(".zone").forEach((z) => {
    const label = z.querySelector(".zone-label");
    const at = label.getBoundingClientRect();
    const zone = z.querySelector(".zone-bg").getBoundingClientRect();
    if (shown(label) && !inside(at, zone, 1.5)) {
      problems.push(`zone label "${label.textContent}" ${r(at)} leaves its zone ${r(zone)}`);
    }
  });
  document.querySelectorAll(".app *:not(svg):not(svg *), #announcement *").forEach((el) => {
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !shown(el)) return;
    const cs = getComputedStyle(el);
    const label = `${el.className || el.tagName} "${el.textContent.trim().slice(0, 40)}"`;
    if (cs.textOverflow === "ellipsis" && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`${label} is ellipsised`);
    }
    if (cs.display !== "inline" && el.clientWidth && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`${label} is wider than its box (${el.scrollWidth} > ${el.clientWidth})`);
    }
    if (!inside(el.getBoundingClientRect(), view, 1)) problems.push(`${label} leaves the screen`);
    const panel = el.parentElement.closest(".side, .top, .announcement-item, .map-panel");
    if (panel && !inside(el.getBoundingClientRect(), panel.getBoundingClientRect(), 1)) {
      problems.push(`${label} leaves its panel`);
    }
  });
  // Every visible word, HTML or SVG, at least the text floor on the screen (an SVG text's
  // size times its drawing's scale).
  const ownText = (el) => Array.from(el.childNodes)
    .some((n) => n.nodeType === 3 && n.textContent.trim());
  document.querySelectorAll(".app *, #announcement *").forEach((el) => {
    if (!ownText(el) || !shown(el)) return;
    const ctm = el instanceof SVGElement && el.getScreenCTM ? el.getScreenCTM() : null;
    const k = ctm ? Math.hypot(ctm.a, ctm.b) : 1;
    const px = parseFloat(getComputedStyle(el).fontSize) * k;
    if (px < minText - 0.05) {
      const cls = el.getAttribute("class") || el.tagName;
      problems.push(`${cls} "${el.textContent.trim().slice(0, 40)}" at ${px.toFixed(1)} px ` +
        `(< ${minText.toFixed(1)})`);
    }
  });
  const head = [".brand", "#freshness", ".clock"]
    .map((s) => document.querySelector(s)).filter((e) => e && shown(e));
  for (let a = 0; a < head.length; a++) for (let b = a + 1; b < head.length; b++) {
    const p = head[a].getBoundingClientRect(), q = head[b].getBoundingClientRect();
    const apart = p.right <= q.left || q.right <= p.left || p.bottom <= q.top || q.bottom <= p.top;
    if (!apart) problems.push(`header: ${head[a].className} overlaps ${head[b].className}`);
  }
  return problems;
}
"""


FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"

# The emergency override: shown, its words inside the screen and the overlay, nothing cut or
# wider than its box, the title at least 1.5 times and the body at least the rooms' minimum.
EMERGENCY_CHECK = r"""
(minPx) => {
  const problems = [];
  const overlay = document.getElementById("emergency");
  if (!overlay || overlay.hidden || !overlay.getBoundingClientRect().height) return ["no override"];
  const box = overlay.getBoundingClientRect();
  const view = {left: 0, top: 0, right: innerWidth, bottom: innerHeight};
  const inside = (a, b) => a.left >= b.left - 1 && a.right <= b.right + 1 &&
    a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
  const texts = overlay.querySelectorAll(".emergency-title, .emergency-body");
  if (texts.length < 2) problems.push(`${texts.length} text blocks in the override`);
  texts.forEach((el) => {
    const r = el.getBoundingClientRect(), fs = parseFloat(getComputedStyle(el).fontSize);
    const label = `${el.className} "${el.textContent.slice(0, 30)}"`;
    if (!inside(r, box) || !inside(r, view)) problems.push(`${label} leaves the override`);
    if (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1) {
      problems.push(`${label} overflows its box (${el.scrollWidth}x${el.scrollHeight} > ` +
        `${el.clientWidth}x${el.clientHeight})`);
    }
    const need = el.classList.contains("emergency-title") ? minPx * 1.5 : minPx;
    if (fs < need - 0.05) problems.push(`${label} at ${fs.toFixed(1)} px (< ${need.toFixed(1)})`);
  });
  if (overlay.scrollHeight > overlay.clientHeight + 1) problems.push("the override overflows");
  return problems;
}
"""


def settle(page) -> None:
    """Wait until the page has its break points and has laid out again after any resize."""
    # Without its break points the page would be linted on names it has not hyphenated yet.
    page.wait_for_function("() => !signageKiosk.stats.hyphensPending", timeout=15_000)
    for _ in range(3):  # a resize observed, the refit it schedules, the legend it may show
        page.evaluate(FRAMES)


def min_px(width: int, height: int, phone: bool) -> float:
    return 14.0 if phone else 20.0 * min(width, height) / 1080


def min_text_px(width: int, height: int, phone: bool) -> float:
    """The smallest any word may be: 16 px per 1080 px of the short side, never under 12 px
    (a 720p screen's notes were 9 px)."""
    return 12.0 if phone else max(12.0, 16.0 * min(width, height) / 1080)


# On the drawn plan: no room's words (name, icon, reason or number) over a point of a route the
# plan may draw (a corridor point, a door, a room's centre), over "you are here" or over a stairs
# or lift sign.
PLAN_CHECK = r"""
() => {
  const problems = [];
  const plan = document.getElementById("plan-rooms");
  const cfg = JSON.parse(document.getElementById("kiosk-config").textContent).wayfinding;
  if (!plan || !cfg) return problems;
  const ctm = plan.getScreenCTM();
  const points = [];
  Object.values(cfg.routes || {}).concat(cfg.exits || []).forEach((r) => (r.points || [])
    .forEach((p) => points.push([p[0] * ctm.a + ctm.e, p[1] * ctm.d + ctm.f])));
  const here = Array.from(document.querySelectorAll("#you-are-here .here-dot, .here-pill"))
    .map((e) => e.getBoundingClientRect());
  const signs = Array.from(document.querySelectorAll(".landmark-sign"))
    .map((e) => e.getBoundingClientRect());
  const meets = (a, b) => a.left < b.right && b.left < a.right &&
    a.top < b.bottom && b.top < a.bottom;
  const rad = 3;  // a route's line is 9 px wide: its middle within 3 px of a word covers it
  document.querySelectorAll(".room-shape").forEach((g) => {
    const id = g.getAttribute("data-space-id");
    g.querySelectorAll(".shape-label > *").forEach((el) => {
      if (el.getAttribute("display") === "none") return;
      const b = el.getBoundingClientRect();
      if (!b.width || !b.height || (el.tagName === "text" && !el.textContent.trim())) return;
      const what = `${id} ${el.getAttribute("class")} "${el.textContent.slice(0, 20)}"`;
      const hit = points.find((p) => p[0] > b.left - rad && p[0] < b.right + rad &&
        p[1] > b.top - rad && p[1] < b.bottom + rad);
      if (hit) problems.push(`${what} covers the corridor point ${hit.map(Math.round)}`);
      if (here.some((h) => meets(b, h))) problems.push(`${what} covers "you are here"`);
      if (signs.some((h) => meets(b, h))) problems.push(`${what} covers a stairs or lift sign`);
    });
  });
  return problems;
}
"""


def lint(page, width: int, height: int, phone: bool) -> list[str]:
    names = [name for name, _, _ in ROOMS]
    floors = [min_px(width, height, phone), min_text_px(width, height, phone)]
    return page.evaluate(CHECK, [IDS, names, *floors]) + page.evaluate(PLAN_CHECK)


def check_states(page, where: str, phone: bool, width: int, height: int, seq: int) -> list[str]:
    """Live, stale, a banner, then the emergency override; the page is left as it was found
    (live, no announcements) for the next size."""
    problems = []
    for state in ("live", "stale", "banner"):
        seq += 1
        page.evaluate(
            "m => signageKiosk.apply(m)", snapshot("stale" if state == "stale" else "live", seq)
        )
        if state == "banner":
            page.evaluate("m => signageKiosk.apply(m)", {**BANNER, "rev": seq})
        settle(page)
        problems += [f"{where} {state}: {p}" for p in lint(page, width, height, phone)]
    page.evaluate("m => signageKiosk.apply(m)", {**EMERGENCY, "rev": seq + 1})
    page.wait_for_function("() => document.documentElement.dataset.emergency === 'on'")
    page.evaluate(FRAMES)
    found = page.evaluate(EMERGENCY_CHECK, min_px(width, height, phone))
    problems += [f"{where} emergency: {p}" for p in found]
    page.evaluate("m => signageKiosk.apply(m)", {**BANNER, "rev": seq + 2, "items": []})
    page.wait_for_function("() => document.documentElement.dataset.emergency !== 'on'")
    return problems


def resize(page, width: int, height: int) -> None:
    """A new screen size, and wait until the page has laid itself out for it."""
    before = page.evaluate("signageKiosk.stats.resizes")
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_function(f"() => signageKiosk.stats.resizes > {before}")


@pytest.mark.browser
# About 40 s on a quiet 2-core machine; several times that while other suites share it.
@pytest.mark.timeout(400)
def test_every_name_fits_in_every_language_size_and_state(server, contexts, request):
    started = time.monotonic()
    floors = server.svc.directory.floors()
    store = server.svc.store
    # The automatic map on the first floor; a drawn plan of the same rooms on the second.
    store.put_layout(floors[1].id, plan_layout())
    urls = {}
    for lang in LANGS:
        for kind, floor in (("auto", floors[0].id), ("plan", floors[1].id)):
            display, cred = server.add_display(floor, name=f"Lobby {lang} {kind}")
            settings = {"language": lang}
            if kind == "plan":
                settings["here"] = HERE
            store.update_display_settings(display.id, settings)
            urls[lang, kind] = (
                f"{server.url}/kiosk/{cred}",
                f"{server.url}/phone/{store.phone_credential(display)}",
            )
    problems: list[str] = []
    seq = 1000
    combos = 0
    for phone in (False, True):
        sizes = [PHONE] if phone else SIZES
        ctx = contexts(*sizes[0], init=QUIET)
        ctx.route("**/api/*/*/state*", lambda route: route.abort())
        page = ctx.new_page()
        for (lang, kind), pair in urls.items():
            page.goto(pair[1 if phone else 0])
            page.wait_for_function("() => window.signageKiosk")
            if kind == "plan":
                page.wait_for_selector("#plan-map")
            for i, (width, height) in enumerate(sizes):
                if i or page.viewport_size != {"width": width, "height": height}:
                    resize(page, width, height)
                where = f"{lang} {kind} {width}x{height}"
                problems += check_states(page, where, phone, width, height, seq)
                seq += 10
                combos += 4
    elapsed = time.monotonic() - started
    request.node.user_properties.append(("lint_seconds", round(elapsed, 1)))
    print(f"layout lint: {combos} combinations in {elapsed:.1f} s")
    assert not problems, "\n".join(problems[:60]) + f"\n({len(problems)} problems)"
