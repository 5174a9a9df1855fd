"""Every form control of every console page has a label a person can see: a `<label for>` naming
its id, a `<label>` around it, or (in a grid of fields) `aria-labelledby` naming the visible
column and row headers on the page. A new page or field without one fails here. Pages are
fetched as an owner (who sees every control) through the real app."""

from __future__ import annotations

from html.parser import HTMLParser

from signage.store import plans
from tests.admin_helpers import Console, admin_rules, example_url, make_admin

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 80">'
    b'<rect width="100" height="80"/></svg>'
)
# Controls with nothing to read: hidden fields and buttons (their text is their label).
UNLABELLED_TYPES = {"hidden", "submit", "button", "reset", "image"}


class Controls(HTMLParser):
    """The page's form controls, and which ids its labels name or which controls they wrap."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.ids: set[str] = set()
        self.open_labels = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "label":
            self.open_labels += 1
            if a.get("for"):
                self.label_for.add(a["for"] or "")
        elif tag in ("input", "select", "textarea"):
            if tag == "input" and (a.get("type") or "text") in UNLABELLED_TYPES:
                return
            self.controls.append({**a, "tag": tag, "wrapped": "1" if self.open_labels else None})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self.open_labels:
            self.open_labels -= 1

    def labelled(self, control: dict[str, str | None]) -> bool:
        by = (control.get("aria-labelledby") or "").split()
        return bool(
            control["wrapped"]
            or (control.get("id") and control["id"] in self.label_for)
            or (by and all(ref in self.ids for ref in by))
        )

    def unlabelled(self) -> list[str]:
        return [
            f"<{c['tag']} name={c.get('name')!r} id={c.get('id')!r}>"
            for c in self.controls
            if not self.labelled(c)
        ]


def test_every_console_form_control_has_a_visible_label(server):
    svc = server.svc
    floor = svc.directory.floors()[0].id
    make_admin(svc, "alice", "owner")
    console = Console(server.app)
    assert console.login().status_code == 302
    display = svc.store.add_display("Lobby", floor)
    plans.store_plan(svc.store, svc.config, floor, SVG, "test")
    pages = [
        r
        for r in admin_rules(server.app)
        if r.rule.startswith("/admin") and "GET" in r.methods and r.endpoint != "admin.login"
    ]
    problems: dict[str, list[str]] = {}
    read = controls = 0
    for rule in pages:
        url = example_url(rule, display.id, floor)
        response = console.get(url)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        parser = Controls()
        parser.feed(response.get_data(as_text=True))
        read += 1
        controls += len(parser.controls)
        if missing := parser.unlabelled():
            problems[url] = missing
    # The walk saw the console: its pages and their forms.
    assert read >= 15 and controls >= 100, (read, controls)  # 17 pages, 146 controls today
    assert not problems, problems
