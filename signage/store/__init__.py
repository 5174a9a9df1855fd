"""Storage: the database (SQLite or PostgreSQL), its schema and migrations, plan files, backups.

Importers name the package (`from signage.store import Store, Display`); the modules behind it
are store (the Store and its rows), db (connections), plans and backup.
"""

from signage.store.db import StoreError, StoreUnavailable
from signage.store.store import (
    MIGRATIONS,
    Admin,
    Announcement,
    ApiToken,
    Display,
    Layout,
    PairingCode,
    Plan,
    Store,
    reissue_secrets,
)

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
