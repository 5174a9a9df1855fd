"""The admin console: sign-in, displays, pairing, fleet health, floor plans and accounts.

`bp` (signage/web/admin/base.py) holds the guard every page passes: a signed-in admin, and the
session's CSRF token on every unsafe request. The pages are the modules imported below; what a
change does is in signage/actions/, shared with the JSON API and the CLI.
"""

from __future__ import annotations

# Routes attach to `bp` as each page module is imported: importing them here, explicitly, is
# what puts every console page on the blueprint that signage.web registers.
from signage.web.admin import (  # noqa: F401
    accounts,
    announcements,
    audit,
    branding,
    calendars,
    displays,
    editor,
    fleet,
    names,
    plans,
)
from signage.web.admin.base import bp

__all__ = ["bp"]
