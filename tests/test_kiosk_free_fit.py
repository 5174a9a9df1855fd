"""The free list shows as many whole rooms as its space holds, measured: one more entry (with
the "+N more" line counting one fewer) would not fit. In headless Chromium on the layout lint's
floor of twelve rooms (eight free, names from 3 to 35 characters), in en/de/fr, at 1920x1080,
1280x720 and 1080x1920, on the automatic map and on the drawn plan (whose entries also carry a
walking distance). The French portrait list once stopped at 2 rooms with about 120 px free
under "+6 autres", the German landscape one at 1 room with about 50 px free."""

from __future__ import annotations

import pytest

from tests.test_kiosk_lint import HERE, LANGS, QUIET, plan_layout, resize, settle, snapshot

# Layout does not depend on which of the simulator's shapes answers.
pytestmark = pytest.mark.one_shape

SIZES = [(1920, 1080), (1280, 720), (1080, 1920)]

# What the list shows, and whether the next entry would still have fitted: it is shown, the
# "+N" line counts one fewer (or goes), the box measured, and everything put back.
ONE_MORE = r"""
() => {
  const box = document.getElementById("free-box"), more = document.getElementById("free-more");
  const items = Array.from(document.querySelectorAll("#free-list > li"));
  const shown = items.filter((li) => !li.hidden).length;
  const bottom = (el) => el.offsetTop + el.offsetHeight;
  const used = Math.max(...[...box.children].filter((el) => !el.hidden && el.offsetHeight)
    .map(bottom));
  const out = {total: items.length, shown, over: box.scrollHeight - box.clientHeight,
               leftover: box.clientHeight - used, more: more.hidden ? "" : more.textContent};
  if (shown < items.length) {
    const text = more.textContent, wasHidden = more.hidden;
    items[shown].hidden = false;
    out.next = items[shown].offsetHeight;
    if (shown + 1 === items.length) more.hidden = true;
    else more.textContent = text.replace(/\d+/, String(items.length - shown - 1));
    out.oneMoreOver = box.scrollHeight - box.clientHeight;
    items[shown].hidden = true;
    more.textContent = text;
    more.hidden = wasHidden;
  }
  return out;
}
"""


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_the_free_list_holds_as_many_rooms_as_fit(server, contexts):
    floors = server.svc.directory.floors()
    store = server.svc.store
    store.put_layout(floors[1].id, plan_layout())
    ctx = contexts(*SIZES[0], init=QUIET)
    ctx.route("**/api/*/*/state*", lambda route: route.abort())
    page = ctx.new_page()
    problems, seen, seq = [], [], 5000
    for lang in LANGS:
        for kind, floor in (("auto", floors[0].id), ("plan", floors[1].id)):
            display, cred = server.add_display(floor, name=f"Fit {lang} {kind}")
            settings = {"language": lang, **({"here": HERE} if kind == "plan" else {})}
            store.update_display_settings(display.id, settings)
            page.goto(f"{server.url}/kiosk/{cred}")
            page.wait_for_function("() => window.signageKiosk")
            for i, (width, height) in enumerate(SIZES):
                if i or page.viewport_size != {"width": width, "height": height}:
                    resize(page, width, height)
                seq += 1
                page.evaluate("m => signageKiosk.apply(m)", snapshot("live", seq))
                settle(page)
                got = page.evaluate(ONE_MORE)
                where = f"{lang} {kind} {width}x{height}"
                seen.append(f"{where}: {got['shown']}/{got['total']} {got['more']!r}")
                if got["total"] != 8:
                    problems.append(f"{where}: {got['total']} free rooms listed, not 8")
                if got["over"] > 0:
                    problems.append(f"{where}: the list overflows its box by {got['over']} px")
                if got["shown"] < got["total"] and got["oneMoreOver"] <= 0:
                    problems.append(
                        f"{where}: {got['shown']} rooms and {got['more']!r} leave {got['leftover']}"
                        f" px; the next entry ({got['next']} px) would have fitted"
                    )
    print("\n".join(seen))
    assert not problems, "\n".join(problems)
