"""A viewer's console forms are inert in the page itself, not only refused by the server.

`auth.require_write` refuses every state-changing request of a viewer; this makes the console
say so before anyone types: every POST form of a console template (`admin/…`) gets its fields
wrapped, when the signed-in account is a viewer, in `<fieldset disabled>` with a short line
saying why. It is done once, when Jinja compiles a template (a `preprocess` of its source),
so a new form cannot forget it, as a new route cannot forget the guard; rendering costs one
`if` per form. GET forms (search, filters) are left as they are: a viewer uses them. Forms a
viewer may submit (sign out, their own password) carry the class `self-service` and are left
alone too.

A control outside its form that names it (`form="…"`) is not inside the fieldset: the
console's only ones (the displays list's selection boxes) are rendered for writers only.
"""

from __future__ import annotations

import re

from jinja2.ext import Extension

__all__ = ["READ_ONLY_LINE", "ReadOnlyForms", "wrap_post_forms"]

READ_ONLY_LINE = "Read-only account: ask an owner to change this."

# A form's opening tag (attributes may hold `{{ … }}`, never a bare ">") or its end.
FORM_TAG = re.compile(r"<form\b[^>]*>|</form\s*>", re.IGNORECASE)
POST = re.compile(r"""\bmethod\s*=\s*["']?post\b""", re.IGNORECASE)
SELF_SERVICE = re.compile(r"""\bclass\s*=\s*["'][^"']*\bself-service\b""", re.IGNORECASE)
# `principal` is the console blueprint's template global (web/admin/base.py); undefined (so
# false) elsewhere.
VIEWER = "principal and not principal.can_write"
OPEN = (
    f'{{% if {VIEWER} %}}<fieldset disabled class="read-only-fields">'
    f'<p class="read-only-why">{READ_ONLY_LINE}</p>{{% endif %}}'
)
CLOSE = f"{{% if {VIEWER} %}}</fieldset>{{% endif %}}"


def wrap_post_forms(source: str) -> str:
    """The template's source with every POST form's content (bar self-service forms) inside a
    fieldset that is there, disabled, for a viewer only. HTML forms do not nest, so each end
    tag closes the form opened last."""
    out: list[str] = []
    at = 0
    open_post: bool | None = None
    for match in FORM_TAG.finditer(source):
        tag = match.group(0)
        if tag.startswith("</"):
            out.append(source[at : match.start()])
            if open_post:
                out.append(CLOSE)
            out.append(tag)
            open_post = None
        else:
            out.append(source[at : match.end()])
            open_post = bool(POST.search(tag)) and not SELF_SERVICE.search(tag)
            if open_post:
                out.append(OPEN)
        at = match.end()
    out.append(source[at:])
    return "".join(out)


class ReadOnlyForms(Extension):
    """The Jinja extension: console templates' POST forms are disabled for a viewer."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is None or not name.startswith("admin/"):
            return source  # kiosk and phone pages have no console forms
        return wrap_post_forms(source)
