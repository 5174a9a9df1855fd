"""Helpers for the admin console tests: accounts, a signed-in client, URLs for every route."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter, Rule

from signage.web import auth

PASSWORD = "correct horse battery staple"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_admin(svc: Any, username: str = "alice", role: str | None = None, password=PASSWORD):
    """Create an admin account directly in the store."""
    return svc.store.add_admin(username, auth.hash_password(password), role)


def csrf_from(html: str) -> str:
    """The CSRF token in a rendered form."""
    match = CSRF_RE.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


class Console:
    """A browser-like client of the console: cookies kept, the form token fetched and sent."""

    def __init__(self, app: Any, ip: str = "127.0.0.1") -> None:
        self.client: FlaskClient = app.test_client()
        self.ip = ip
        self.token = ""

    def _environ(self) -> dict[str, str]:
        return {"REMOTE_ADDR": self.ip}

    def get(self, path: str, **kw: Any):
        return self.client.get(path, environ_base=self._environ(), **kw)

    def login(self, username: str = "alice", password: str = PASSWORD, next_: str = ""):
        page = self.get("/admin/login")
        token = csrf_from(page.get_data(as_text=True))
        response = self.client.post(
            "/admin/login",
            data={"csrf_token": token, "username": username, "password": password, "next": next_},
            environ_base=self._environ(),
        )
        if response.status_code == 302:
            self.refresh_token()
        return response

    def refresh_token(self) -> str:
        """The current session's form token, read from a console page."""
        page = self.get("/admin/account")
        self.token = csrf_from(page.get_data(as_text=True))
        return self.token

    def post(self, path: str, data: dict | None = None, csrf: bool = True, **kw: Any):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.token)
        return self.client.post(path, data=data, environ_base=self._environ(), **kw)

    def api(self, method: str, path: str, json: Any = None, csrf: bool = True, **kw: Any):
        headers = dict(kw.pop("headers", {}))
        if csrf:
            headers["X-CSRF-Token"] = self.token
        return self.client.open(
            path, method=method, json=json, headers=headers, environ_base=self._environ(), **kw
        )


def example_url(rule: Rule, display_id: int = 1, floor_id: str = "spc_x") -> str:
    """A concrete URL for a rule, with ids of objects that exist."""
    values: dict[str, Any] = {}
    for arg in rule.arguments:
        converter = rule._converters[arg]
        name = type(converter).__name__
        if isinstance(converter, IntegerConverter):  # signage's own IdConverter included
            values[arg] = display_id
        elif name == "AnyConverter":
            values[arg] = sorted(converter.items)[0]  # type: ignore[attr-defined]
        elif arg == "floor_id":
            values[arg] = floor_id
        else:
            values[arg] = "x"
    path = rule.rule
    for arg, value in values.items():
        path = re.sub(rf"<(?:[^:<>]+:)?{arg}(?:\([^)]*\))?>", str(value), path)
    return path


def admin_rules(app: Any) -> list[Rule]:
    """Every rule of the console and the admin API."""
    return [
        r
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/admin") or r.rule.startswith("/api/admin")
    ]
