"""Storage: the database (SQLite or PostgreSQL), its schema and migrations, plan files, backups.

Importers name the package (`from signage.store import Store, Display`); the modules behind it
are store (the Store), rows (the rows it hands out), migrations (the schema), db (connections),
plans and backup.
"""

from signage.store.db import StoreError, StoreUnavailable
from signage.store.migrations import MIGRATIONS
from signage.store.rows import (
    Admin,
    Announcement,
    ApiToken,
    Display,
    Layout,
    PairingCode,
    Plan,
    reissue_secrets,
)
from signage.store.store import Store

__all__ = [
    "MIGRATIONS",
    "Admin",
    "Announcement",
    "ApiToken",
    "Display",
    "Layout",
    "PairingCode",
    "Plan",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "reissue_secrets",
]
