"""A viewer's console forms are inert in the page, not only refused by the server: every control
of every state-changing (POST) form is `disabled` (itself or inside a disabled fieldset), with a
line saying why, while GET forms (search, filters) stay usable. An admin's are not disabled.
Every console page is fetched, as tests/test_console_labels.py lists them."""

from __future__ import annotations

import time
from html.parser import HTMLParser

from signage.store import plans
from signage.web.readonly import READ_ONLY_LINE, wrap_post_forms
from tests.admin_helpers import Console, admin_rules, example_url, make_admin

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 80">'
    b'<rect width="100" height="80"/></svg>'
)
CONTROLS = {"input", "select", "textarea", "button"}
# Disabled in an admin's page on purpose, until the page's script enables it.
DISABLED_UNTIL_SCRIPT = {"select-all"}  # the displays list's "All on this page" box


class Forms(HTMLParser):
    """Each form control of a page with its form's method and whether it is disabled."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}  # id -> attributes
        self.form: dict[str, str] | None = None
        self.fieldsets: list[bool] = []  # open fieldsets: whether each is disabled
        self.controls: list[dict] = []
        self.outside: list[dict] = []  # controls naming a form by its id (form="…")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.form = a
            if a.get("id"):
                self.forms[a["id"]] = a
        elif tag == "fieldset":
            self.fieldsets.append("disabled" in a)
        elif tag in CONTROLS:
            if a.get("type") == "hidden":
                return
            control = {
                **a,
                "tag": tag,
                "disabled": "disabled" in a or any(self.fieldsets),
                "by_fieldset": any(self.fieldsets),
            }
            if "form" in a:
                self.outside.append(control)
            elif self.form is not None:
                control["method"] = self.form.get("method", "get").lower()
                control["self_service"] = "self-service" in self.form.get("class", "")
                control["action"] = self.form.get("action", "")
                self.controls.append(control)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.form = None
        elif tag == "fieldset" and self.fieldsets:
            self.fieldsets.pop()

    def all_controls(self) -> list[dict]:
        for control in self.outside:
            form = self.forms.get(control["form"], {})
            control["method"] = form.get("method", "get").lower()
            control["self_service"] = "self-service" in form.get("class", "")
            control["action"] = form.get("action", "")
        return self.controls + self.outside


def pages(server, console: Console, display_id: int, floor: str) -> dict[str, Forms]:
    """Every console page the account may read, parsed."""
    read: dict[str, Forms] = {}
    for rule in admin_rules(server.app):
        if not rule.rule.startswith("/admin") or "GET" not in rule.methods:
            continue
        if rule.endpoint == "admin.login":
            continue
        url = example_url(rule, display_id, floor)
        response = console.get(url)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        parser = Forms()
        parser.feed(response.get_data(as_text=True))
        read[url] = parser
    return read


def end_of_order(control: dict) -> bool:
    """The floor order's Up on the first floor and Down on the last: nothing to move to."""
    return "/plans/order/" in control["action"] and control.get("aria-label", "").startswith(
        "Move "
    )


def world(server):
    svc = server.svc
    floor = svc.directory.floors()[0].id
    make_admin(svc, "olive", "owner")
    make_admin(svc, "vera", "viewer")
    display = svc.store.add_display("Lobby", floor)
    plans.store_plan(svc.store, svc.config, floor, SVG, "test")
    now = time.time()
    svc.store.add_announcement(
        scope="all",
        target=None,
        kind="message",
        title="Drill",
        body="",
        starts_at=now,
        ends_at=now + 3600,
    )
    return display.id, floor


def test_a_viewers_post_forms_are_disabled_and_get_forms_are_not(server) -> None:
    display_id, floor = world(server)
    viewer = Console(server.app)
    assert viewer.login("vera").status_code == 302
    read = pages(server, viewer, display_id, floor)
    posts = gets = 0
    problems: list[str] = []
    for url, parser in read.items():
        for c in parser.all_controls():
            where = f"{url}: <{c['tag']} name={c.get('name')!r}> in {c['action']!r}"
            if c["method"] == "post" and not c["self_service"]:
                posts += 1
                if not c["disabled"]:
                    problems.append("enabled for a viewer: " + where)
            elif c["method"] == "get":
                gets += 1
                if c["disabled"] and c.get("id") not in DISABLED_UNTIL_SCRIPT:
                    problems.append("a search or filter disabled: " + where)
    assert not problems, problems
    # The walk saw the console's forms: the display's settings, pairing, announcements, plans,
    # names, calendars; and the list's and the audit trail's filters.
    assert len(read) >= 15 and posts >= 60 and gets >= 8, (len(read), posts, gets)
    display_page = viewer.get(f"/admin/displays/{display_id}").get_data(as_text=True)
    assert READ_ONLY_LINE in display_page
    # What a viewer may do is left working: signing out, their own password.
    account = Forms()
    account.feed(viewer.get("/admin/account").get_data(as_text=True))
    own = [c for c in account.all_controls() if c["self_service"]]
    assert own and not any(c["disabled"] for c in own)


def test_an_admins_forms_are_not_disabled(server) -> None:
    display_id, floor = world(server)
    owner = Console(server.app)
    assert owner.login("olive").status_code == 302
    read = pages(server, owner, display_id, floor)
    disabled = [
        f"{url}: <{c['tag']} name={c.get('name')!r}>"
        for url, parser in read.items()
        for c in parser.all_controls()
        if c["by_fieldset"]
        or (c["disabled"] and c.get("id") not in DISABLED_UNTIL_SCRIPT and not end_of_order(c))
    ]
    assert not disabled
    posts = sum(c["method"] == "post" for p in read.values() for c in p.all_controls())
    assert posts >= 60, posts
    assert READ_ONLY_LINE not in owner.get(f"/admin/displays/{display_id}").get_data(as_text=True)


def test_only_post_forms_are_wrapped_and_self_service_ones_are_not() -> None:
    source = (
        '<form method="get" action="/s"><input name="q"></form>'
        '<form method="post" action="{{ url }}" class="card"><input name="a"></form>'
        "<form method=post><button>Go</button></form>"
        '<form method="post" class="inline self-service"><button>Sign out</button></form>'
    )
    out = wrap_post_forms(source)
    assert out.count('<fieldset disabled class="read-only-fields">') == 2
    assert out.count("</fieldset>") == 2
    assert '<form method="get" action="/s"><input name="q"></form>' in out
    assert out.endswith(
        '<form method="post" class="inline self-service"><button>Sign out</button></form>'
    )
