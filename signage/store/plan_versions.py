"""A floor layout's draft and its published versions, beside the published layout itself.

Kiosks read only the `layouts` table (the published layout). The floor editor saves into
`layout_drafts` (one draft per floor, with a revision counter so two editors cannot overwrite
each other's draft unnoticed; the counter never starts over for a floor, see
`layout_draft_revisions`); "Publish" copies the draft into `layouts`, records it in
`layout_versions` and drops the draft, all in one transaction, so a crash leaves either the old
layout live with its draft or the new one live without it. The last `keep` published versions of
each floor are kept (who and when), and one of them can be taken back as the draft.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signage.store.db import StoreError
from signage.store.rows import Layout, check_text, has_nul, precise_timestamp, timestamp

if TYPE_CHECKING:
    from signage.store.store import Store

logger = logging.getLogger(__name__)

__all__ = ["KEEP_VERSIONS", "Draft", "HereMove", "LayoutHistory", "LayoutVersion", "keep_live"]

KEEP_VERSIONS = 10  # published versions kept per floor: enough to undo a bad week of edits


@dataclass(frozen=True)
class Draft:
    """A floor's unpublished layout: started from published version `base_version`."""

    floor_id: str
    base_version: int
    revision: int
    data: dict[str, Any] = field(compare=False, hash=False)
    # Display id -> "you are here" ([x, y], or None to unplace) to apply when published.
    here: dict[int, list[float] | None] = field(default_factory=dict, compare=False, hash=False)
    updated_at: str = ""
    updated_by: str | None = None
    restored_from: int | None = None  # the published version this draft was taken back from


@dataclass(frozen=True)
class LayoutVersion:
    """A layout as it was published: its number, when and by whom."""

    floor_id: str
    version: int
    data: dict[str, Any] = field(compare=False, hash=False)
    published_at: str = ""
    published_by: str | None = None
    restored_from: int | None = None


@dataclass(frozen=True)
class HereMove:
    """A display's "you are here" as a publish moved it (None: not placed)."""

    display_id: int
    name: str
    before: list[float] | None
    after: list[float] | None


def _here(settings: dict[str, Any]) -> list[float] | None:
    here = settings.get("here")
    return here if isinstance(here, list) and len(here) == 2 else None


def _draft(row: Any) -> Draft:
    here = json.loads(row["here"] or "{}")
    return Draft(
        floor_id=row["floor_id"],
        base_version=row["base_version"],
        revision=row["revision"],
        data=json.loads(row["data"]),
        here={int(k): v for k, v in here.items()},
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
        restored_from=row["restored_from"],
    )


def _version(row: Any) -> LayoutVersion:
    return LayoutVersion(
        floor_id=row["floor_id"],
        version=row["version"],
        data=json.loads(row["data"]),
        published_at=row["published_at"],
        published_by=row["published_by"],
        restored_from=row["restored_from"],
    )


def keep_live(conn: Any, floor_id: str, live: Any) -> None:
    """Keep the live layout (a row of `layouts`) as a version if it is not kept yet: one written
    before drafts existed, or by `Store.put_layout`, is then restorable once a publish replaces
    it (the first layout of a floor was never a version, so a bad first publish had no undo)."""
    conn.execute(
        "INSERT INTO layout_versions (floor_id, version, data, published_at, published_by)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (floor_id, version) DO UPDATE SET"
        " data = excluded.data, published_at = excluded.published_at,"
        " published_by = excluded.published_by, restored_from = NULL"
        # A row left at this number by a layout removed and drawn again is replaced.
        " WHERE layout_versions.data <> excluded.data",
        (floor_id, live["version"], live["data"], live["updated_at"], live["updated_by"]),
    )


class LayoutHistory:
    """The layout_drafts and layout_versions tables of a store."""

    def __init__(self, store: Store, keep: int = KEEP_VERSIONS) -> None:
        self.store = store
        self.keep = keep
        # SQLite locks the whole database for a write transaction; PostgreSQL locks rows read.
        self._for_update = " FOR UPDATE" if store.backend == "postgresql" else ""

    # -- drafts ----------------------------------------------------------------------------------
    def draft(self, floor_id: str) -> Draft | None:
        """The floor's draft, or None."""
        if has_nul(floor_id):
            return None
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT * FROM layout_drafts WHERE floor_id = ?", (floor_id,)
            ).fetchone()
        return _draft(row) if row is not None else None

    def drafts(self) -> dict[str, Draft]:
        """Every floor's draft, by floor id."""
        with self.store.connection() as conn:
            rows = conn.execute("SELECT * FROM layout_drafts").fetchall()
        return {row["floor_id"]: _draft(row) for row in rows}

    def save_draft(
        self,
        floor_id: str,
        data: dict[str, Any],
        *,
        expected_revision: int,
        base_version: int,
        here: dict[int, list[float] | None] | None = None,
        updated_by: str | None = None,
        restored_from: int | None = None,
    ) -> Draft:
        """Keep a floor's draft (already checked); StoreError if it was saved since
        `expected_revision` (0: "there was none"), or if `base_version`, the published version
        the editor loaded, is not the one live now. A new draft starts from it; a draft saved
        again keeps the one it started from, and the version it was restored from, unless
        `restored_from` names a version taken back now (the draft then starts over from
        `base_version`).

        Revisions count up per floor across drafts, publishes and discards (never from 1
        again), so a tab that saw an earlier draft holds a revision no later draft has: its
        save is refused rather than overwriting a draft its admin never saw."""
        check_text(floor_id, updated_by)
        document = json.dumps(data, separators=(",", ":"))
        heres = json.dumps({str(k): v for k, v in (here or {}).items()}, separators=(",", ":"))
        now = timestamp()
        with self.store.transaction() as conn:
            row = conn.execute(
                f"SELECT revision FROM layout_drafts WHERE floor_id = ?{self._for_update}",
                (floor_id,),
            ).fetchone()
            current = row["revision"] if row is not None else 0
            if expected_revision != current:
                raise StoreError(
                    f"the draft was saved by someone else (revision {current}, you had"
                    f" {expected_revision}); reload to see it"
                )
            # Not locked: a publish landing after this read is as if it came after the save
            # (the draft keeps its base and its own publish is then refused as behind).
            live = conn.execute(
                "SELECT version FROM layouts WHERE floor_id = ?", (floor_id,)
            ).fetchone()
            live_version = live["version"] if live is not None else 0
            if base_version != live_version:
                raise StoreError(
                    f"the layout was published by someone else since (version {live_version},"
                    f" you had {base_version}); reload to see it"
                )
            issued = conn.execute(
                f"SELECT revision FROM layout_draft_revisions WHERE floor_id = ?{self._for_update}",
                (floor_id,),
            ).fetchone()
            revision = max(current, issued["revision"] if issued is not None else 0) + 1
            conn.execute(
                "INSERT INTO layout_draft_revisions (floor_id, revision) VALUES (?, ?)"
                " ON CONFLICT (floor_id) DO UPDATE SET revision = excluded.revision",
                (floor_id, revision),
            )
            if row is not None and restored_from is not None:
                conn.execute(
                    "UPDATE layout_drafts SET revision = ?, data = ?, here = ?, updated_at = ?,"
                    " updated_by = ?, restored_from = ?, base_version = ? WHERE floor_id = ?",
                    (
                        revision,
                        document,
                        heres,
                        now,
                        updated_by,
                        restored_from,
                        base_version,
                        floor_id,
                    ),
                )
            elif row is not None:
                conn.execute(
                    "UPDATE layout_drafts SET revision = ?, data = ?, here = ?, updated_at = ?,"
                    " updated_by = ? WHERE floor_id = ?",
                    (revision, document, heres, now, updated_by, floor_id),
                )
            else:
                # No draft row to lock: of two first saves at once, the second inserts nothing
                # (and its counter update is rolled back with it).
                added = conn.execute(
                    "INSERT INTO layout_drafts (floor_id, base_version, revision, data, here,"
                    " updated_at, updated_by, restored_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (floor_id) DO NOTHING",
                    (
                        floor_id,
                        base_version,
                        revision,
                        document,
                        heres,
                        now,
                        updated_by,
                        restored_from,
                    ),
                )
                if added.rowcount != 1:
                    raise StoreError(
                        "the draft was saved by someone else (you had none); reload to see it"
                    )
            saved = conn.execute(
                "SELECT * FROM layout_drafts WHERE floor_id = ?", (floor_id,)
            ).fetchone()
        return _draft(saved)

    def discard_draft(self, floor_id: str, expected_revision: int | None = None) -> bool:
        """Drop a floor's draft (only at `expected_revision` when given); True if there was one."""
        with self.store.transaction() as conn:
            row = conn.execute(
                f"SELECT revision FROM layout_drafts WHERE floor_id = ?{self._for_update}",
                (floor_id,),
            ).fetchone()
            if row is None:
                return False
            if expected_revision is not None and row["revision"] != expected_revision:
                raise StoreError(
                    f"the draft was saved by someone else since (revision {row['revision']},"
                    f" you had {expected_revision}); reload to see it"
                )
            conn.execute("DELETE FROM layout_drafts WHERE floor_id = ?", (floor_id,))
        return True

    # -- publishing --------------------------------------------------------------------------------
    def publish(
        self,
        floor_id: str,
        data: dict[str, Any],
        *,
        expected_version: int | None,
        published_by: str | None = None,
        draft_revision: int | None = None,
        restored_from: int | None = None,
        here: Mapping[int, list[float] | None] | None = None,
        moved: Callable[[list[HereMove]], None] | None = None,
    ) -> Layout:
        """Make `data` the floor's live layout and record it as a version, in one transaction.

        `expected_version`: the published version the caller started from (0: none; None skips
        the check). With `draft_revision`, the floor's draft must be at that revision, and it
        is dropped. StoreError on either conflict; nothing changes then.

        `here` (display id -> point, None to unplace; already checked against `data`) moves
        the floor's displays in the same transaction: only the `here` key of each display's
        settings as they are now, so an edit of its language or theme made meanwhile stays.
        `moved` is called with what moved before the transaction commits (the caller's audit
        entry records it with the publish); an error there, or in any move, publishes nothing.
        """
        check_text(floor_id, published_by)
        document = json.dumps(data, separators=(",", ":"))
        now = timestamp()
        with self.store.transaction() as conn:
            if draft_revision is not None:
                draft = conn.execute(
                    f"SELECT revision FROM layout_drafts WHERE floor_id = ?{self._for_update}",
                    (floor_id,),
                ).fetchone()
                if draft is None or draft["revision"] != draft_revision:
                    raise StoreError(
                        "the draft was changed or published by someone else since; reload to see it"
                    )
            row = conn.execute(
                "SELECT version, data, updated_at, updated_by FROM layouts WHERE floor_id = ?"
                + self._for_update,
                (floor_id,),
            ).fetchone()
            current = row["version"] if row is not None else 0
            if expected_version is not None and expected_version != current:
                raise StoreError(
                    f"the layout was changed by someone else (version {current}, you had"
                    f" {expected_version}); reload to see it"
                )
            if row is not None:
                keep_live(conn, floor_id, row)
            version = current + 1
            if row is not None:
                conn.execute(
                    "UPDATE layouts SET version = ?, data = ?, updated_at = ?, updated_by = ?"
                    " WHERE floor_id = ?",
                    (version, document, now, published_by, floor_id),
                )
            else:
                added = conn.execute(
                    "INSERT INTO layouts (floor_id, version, data, updated_at, updated_by)"
                    " VALUES (?, 1, ?, ?, ?) ON CONFLICT (floor_id) DO NOTHING",
                    (floor_id, document, now, published_by),
                )
                if added.rowcount != 1:
                    raise StoreError(
                        "the layout was changed by someone else (version 1, you had"
                        f" {expected_version or 0}); reload to see it"
                    )
            # A version number may be left from a layout removed and drawn again: replaced.
            conn.execute(
                "DELETE FROM layout_versions WHERE floor_id = ? AND version >= ?",
                (floor_id, version),
            )
            conn.execute(
                "INSERT INTO layout_versions (floor_id, version, data, published_at,"
                " published_by, restored_from) VALUES (?, ?, ?, ?, ?, ?)",
                (floor_id, version, document, now, published_by, restored_from),
            )
            conn.execute(
                "DELETE FROM layout_versions WHERE floor_id = ? AND version <= ?",
                (floor_id, version - self.keep),
            )
            if draft_revision is not None:
                conn.execute("DELETE FROM layout_drafts WHERE floor_id = ?", (floor_id,))
            moves = self._move_here(conn, floor_id, here or {})
            if moved is not None and moves:
                moved(moves)
            saved = conn.execute("SELECT * FROM layouts WHERE floor_id = ?", (floor_id,)).fetchone()
        return Layout(
            floor_id=saved["floor_id"],
            version=saved["version"],
            data=json.loads(saved["data"]),
            updated_at=saved["updated_at"],
            updated_by=saved["updated_by"],
        )

    def _move_here(
        self, conn: Any, floor_id: str, here: Mapping[int, list[float] | None]
    ) -> list[HereMove]:
        """Set each display's "you are here" inside the publish's transaction: its settings
        read (and on PostgreSQL locked) here, only their `here` key changed. A display removed
        or moved to another floor since the draft was saved is left alone."""
        moves: list[HereMove] = []
        for display_id in sorted(here):  # one order for every publisher: no lock cycles
            point = here[display_id]
            row = conn.execute(
                "SELECT id, name, settings FROM displays WHERE id = ? AND floor_id = ?"
                + self._for_update,
                (display_id, floor_id),
            ).fetchone()
            if row is None:
                continue
            settings = json.loads(row["settings"] or "{}")
            before = _here(settings)
            if before == point:
                continue
            if point is None:
                settings.pop("here", None)
            else:
                settings["here"] = point
            conn.execute(
                "UPDATE displays SET settings = ?, updated_at = ? WHERE id = ?",
                (json.dumps(settings), precise_timestamp(), display_id),
            )
            moves.append(HereMove(display_id, row["name"], before, point))
        return moves

    # -- versions ------------------------------------------------------------------------------
    def versions(self, floor_id: str) -> list[LayoutVersion]:
        """The floor's kept published versions, newest first."""
        if has_nul(floor_id):
            return []
        with self.store.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM layout_versions WHERE floor_id = ? ORDER BY version DESC",
                (floor_id,),
            ).fetchall()
        return [_version(row) for row in rows]

    def version(self, floor_id: str, version: int) -> LayoutVersion | None:
        """One kept version of a floor's layout, or None."""
        if has_nul(floor_id):
            return None
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT * FROM layout_versions WHERE floor_id = ? AND version = ?",
                (floor_id, version),
            ).fetchone()
        return _version(row) if row is not None else None
