"""`signage backup` and `signage restore` as the audit trail sees them: who took or restored a
backup, when, which file, its size and what it holds (counts, never its content).

The backup itself is store/backup.py's. A backup's entry is written once the archive is on
disk (so it is not inside that archive); a restore's is written after the restore, into the
restored database: the restore replaces every table, the trail included, and the entry saying
it happened must outlive it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from signage.actions import audit
from signage.store import Store
from signage.store.backup import create_backup, open_store, restore_backup

logger = logging.getLogger(__name__)

__all__ = ["restore", "take"]


def _holds(store: Store) -> dict[str, int]:
    """What the database holds, counted: the entry's picture of a backup's content."""
    return {
        "displays": len(store.list_displays()),
        "accounts": len(store.list_admins()),
    }


def _record(config: dict, action: str, file: str | os.PathLike[str], after: dict[str, Any]) -> None:
    path = Path(file).resolve()
    store = open_store(config)
    try:
        details = {"file": str(path), "bytes": path.stat().st_size, **after, **_holds(store)}
        with audit.change(
            store, action, "backup", None, path.name, after=details, only_changes=False
        ):
            pass  # nothing in the database changed by this step: recorded after the block
    finally:
        store.close()


def take(config: dict, destination: str | os.PathLike[str]) -> dict:
    """Write a backup to `destination` and record it; its manifest."""
    manifest = create_backup(config, destination)
    _record(
        config,
        "backup.create",
        destination,
        {"plans": len(manifest.get("plans") or [])},
    )
    return manifest


def restore(config: dict, source: str | os.PathLike[str], keep_credentials: bool = False) -> dict:
    """Replace the database and plans with a backup's, then record it in the restored trail;
    the backup's manifest."""
    manifest = restore_backup(config, source, keep_credentials=keep_credentials)
    _record(
        config,
        "backup.restore",
        source,
        {
            "taken_at": manifest.get("created_at", ""),
            "plans": len(manifest.get("plans") or []),
            # (a key naming "credential" would be dropped from the entry as a possible secret)
            "screens_pair_again": not keep_credentials,
        },
    )
    return manifest
