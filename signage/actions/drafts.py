"""Drafts of a floor's layout: the editor saves drafts, kiosks keep the published layout until
an admin publishes, and the last published versions can be taken back.

Saving a draft checks the layout as publishing does (signage/actions/plans.py), so a draft that
saved publishes unless the floor changed meanwhile. A draft remembers the published version it
was drawn over: publishing it over a newer one (someone published through the JSON API since) is
refused as a conflict rather than undoing their change unseen. Restoring a version makes it the
draft, not the live layout: the admin sees it, previews it and publishes it, as any other change.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from signage.actions import audit
from signage.actions.plans import (
    LayoutRefused,
    checked_layout,
    floor_context,
    here_of,
    layout_document,
    publish_layout,
    reload_pages,
    version_field,
)
from signage.core.layout import LayoutError, check_point, validate_layout
from signage.store import StoreError
from signage.store.plan_versions import Draft, LayoutHistory, LayoutVersion

if TYPE_CHECKING:
    from signage.services import Services

logger = logging.getLogger(__name__)


def layout_diff(published: dict[str, Any] | None, draft: dict[str, Any]) -> dict[str, Any]:
    """What a draft changes over the published layout: rooms added, removed and moved (outline
    or door), and whether the corridors or the scale changed."""
    before = (published or {}).get("rooms", {})
    after = draft.get("rooms", {})
    moved = sum(1 for sid in set(before) & set(after) if before[sid] != after[sid])
    keys = ("nodes", "edges")
    sizes = ("width", "height", "metres_across")
    return {
        "added": len(set(after) - set(before)),
        "removed": len(set(before) - set(after)),
        "moved": moved,
        "corridors": any((published or {}).get(k, []) != draft.get(k, []) for k in keys),
        "scale": published is not None and any(published.get(k) != draft.get(k) for k in sizes),
    }


def _version_info(v: LayoutVersion, live: int) -> dict[str, Any]:
    return {
        "version": v.version,
        "published_at": v.published_at,
        "published_by": v.published_by,
        "restored_from": v.restored_from,
        "rooms": len(v.data.get("rooms", {})),
        "live": v.version == live,
    }


def gone_rooms(data: dict[str, Any], known: set[str] | None) -> list[str]:
    """The layout's rooms that are not rooms of the floor in the last list Density gave (none
    when that list was never had: nothing to tell them by)."""
    if known is None:
        return []
    return sorted(str(r) for r in set(data.get("rooms", {})) - known)


def draft_info(
    draft: Draft, published: dict[str, Any] | None, live: int, known: set[str] | None = None
) -> dict[str, Any]:
    """A draft as the editor and the plans page show it; `known`: the floor's rooms, to name
    the draft's rooms that left the floor (publishing refuses them)."""
    return {
        "gone": gone_rooms(draft.data, known),
        "revision": draft.revision,
        "base_version": draft.base_version,
        "updated_at": draft.updated_at,
        "updated_by": draft.updated_by,
        "restored_from": draft.restored_from,
        "behind": draft.base_version != live,  # published over since it was started
        "diff": {**layout_diff(published, draft.data), "here": len(draft.here)},
    }


def editor_document(svc: Services, floor_id: str, plan_url: str) -> dict[str, Any]:
    """The editor's document: the draft when there is one (else the published layout), what is
    published, the draft's difference from it, and the kept versions."""
    history = LayoutHistory(svc.store)
    draft = history.draft(floor_id)
    doc = layout_document(svc, floor_id, plan_url, draft)
    stored = svc.store.get_layout(floor_id)
    live = stored.version if stored is not None else 0
    doc["published"] = (
        {"version": live, "updated_at": stored.updated_at, "updated_by": stored.updated_by}
        if stored is not None
        else None
    )
    displays = svc.store.list_displays(floor_id)
    doc["published_here"] = {str(d.id): here_of(d) for d in displays}
    # A display set to one orientation is previewed in it; "" follows its screen's shape.
    doc["orientations"] = {
        str(d.id): d.settings.get("orientation") or ""
        for d in displays
        if d.settings.get("orientation") in (None, "", "landscape", "portrait")
    }
    known = floor_context(svc, floor_id).space_ids
    doc["draft"] = (
        draft_info(draft, stored.data if stored else None, live, known)
        if draft is not None
        else None
    )
    doc["versions"] = [_version_info(v, live) for v in history.versions(floor_id)]
    return doc


def drafts_summary(svc: Services) -> dict[str, dict[str, Any]]:
    """Each floor with a draft: its draft as the plans page shows it."""
    out = {}
    for floor_id, draft in LayoutHistory(svc.store).drafts().items():
        stored = svc.store.get_layout(floor_id)
        live = stored.version if stored is not None else 0
        out[floor_id] = draft_info(draft, stored.data if stored else None, live)
    return out


def _checked_here(
    svc: Services, floor_id: str, value: Any, layout: dict[str, Any]
) -> dict[int, list[float] | None]:
    """The draft's "you are here" changes: display id -> point (checked) or None; only displays
    of this floor, and only where the point differs from the published one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LayoutRefused(400, 'here must be an object {"display id": [x, y] or null}')
    displays = {d.id: d for d in svc.store.list_displays(floor_id)}
    out: dict[int, list[float] | None] = {}
    for key, point in value.items():
        try:
            display_id = int(key)
        except (TypeError, ValueError):
            raise LayoutRefused(400, f"here: {str(key)[:40]!r} is not a display id") from None
        display = displays.get(display_id)
        if display is None:
            continue  # removed or moved to another floor since the editor loaded
        if point is not None:
            try:
                point = check_point(point, layout, f"you are here of {display.name}")
            except LayoutError as exc:
                raise LayoutRefused(400, str(exc)) from exc
        if point != here_of(display):
            out[display_id] = point
    return out


def save_draft(svc: Services, floor_id: str, body: Any, updated_by: str | None) -> dict[str, Any]:
    """Keep the editor's drawing as the floor's draft: {"revision": r, "base_version": v,
    "layout": {...}, "here": {...}} -> the draft as the editor shows it. Kiosks are untouched.

    LayoutRefused 400, 404, 409 (the draft was saved by someone else since `revision`, or a
    layout published since `base_version`, the published version the editor loaded) or 503.
    """
    if not isinstance(body, dict):
        raise LayoutRefused(
            400, 'the body must be a JSON object {"revision": r, "base_version": v, "layout": {}}'
        )
    revision = version_field(body, "revision", "0 when there was no draft")
    base = version_field(body, "base_version", "the published version, 0 for none")
    clean = checked_layout(svc, floor_id, body.get("layout"))
    here = _checked_here(svc, floor_id, body.get("here"), clean)
    history = LayoutHistory(svc.store)
    # A save at revision 0 succeeds only when the floor has no draft: it starts one. Recorded
    # once, with the save's transaction; the autosaves after it are not.
    started = (
        audit.change(
            svc.store,
            "layout.draft_started",
            "layout",
            floor_id,
            floor_id,
            after={"base_version": base, "rooms": len(clean.get("rooms", {}))},
        )
        if revision == 0
        else nullcontext()
    )
    try:
        with started:
            draft = history.save_draft(
                floor_id,
                clean,
                expected_revision=revision,
                base_version=base,
                here=here,
                updated_by=updated_by,
            )
    except StoreError as exc:
        raise conflict(svc, floor_id, revision, base, str(exc)) from exc
    stored = svc.store.get_layout(floor_id)
    live = stored.version if stored is not None else 0
    known = floor_context(svc, floor_id).space_ids
    return draft_info(draft, stored.data if stored else None, live, known)


def local_time(svc: Services, floor_id: str, stamp: str | None) -> str:
    """A stored UTC time as the floor's people read it, as the console's pages write it:
    "2026-12-06 14:05 Europe/Berlin"."""
    if not stamp:
        return "an unknown time"
    zone_name = svc.directory.time_zone(floor_id) or "UTC"
    try:
        zone = ZoneInfo(zone_name)
        when = datetime.fromisoformat(stamp).astimezone(zone)
    except (ZoneInfoNotFoundError, ValueError):  # a zone this system lacks, an odd stamp
        return f"{stamp} UTC"
    return f"{when:%Y-%m-%d %H:%M} {zone_name}"


def who(label: str | None) -> str:
    """Who changed it, as the console names them: "session:ada" is the account ada,
    "token:ci" the API token ci (the editor's `who` says the same)."""
    if not label:
        return "someone"
    kind, _, name = label.partition(":")
    if kind == "session" and name:
        return name
    if kind == "token" and name:
        return f"API token {name}"
    return label


def conflict(
    svc: Services, floor_id: str, revision: int, base: int | None, fallback: str
) -> LayoutRefused:
    """Why an editor's draft request was refused (409), as the admin needs to hear it: the
    layout was published since the version they loaded (by whom, when, in the floor's time
    zone), or the draft was saved or discarded by someone else; `cause` and its facts beside
    the message for a program. `base`: the published version the caller loaded (None: unknown,
    then the store's own words, `fallback`, are kept unless a publish explains it)."""
    stored = svc.store.get_layout(floor_id)
    live = stored.version if stored is not None else 0
    draft = LayoutHistory(svc.store).draft(floor_id)
    mine = draft is not None and draft.revision == revision  # the caller's draft stands
    if base is None and draft is not None and mine:
        base = draft.base_version
    if stored is not None and base is not None and live != base:
        by = who(stored.updated_by)
        when = local_time(svc, floor_id, stored.updated_at)
        if mine:
            said = (
                f"Version {live} was published by {by} at {when}, after this draft was started"
                f" from version {base}: publishing the draft would undo it unseen. Reload,"
                " then discard the draft or restore the version you want."
            )
        else:
            what = "The draft was published" if revision else "The layout was published"
            said = f"{what} as version {live} by {by} at {when}. Reload to go on from it."
        return LayoutRefused(
            409,
            said,
            "conflict",
            {
                "cause": "published",
                "version": live,
                "by": stored.updated_by,
                "at": stored.updated_at,
            },
        )
    if draft is not None and draft.revision != revision:
        # Often the same admin in another tab: said so, not "someone else".
        when = local_time(svc, floor_id, draft.updated_at)
        return LayoutRefused(
            409,
            "The draft was saved in another tab or by another admin since you opened it"
            f" ({who(draft.updated_by)}, {when}). Reload to see it.",
            "conflict",
            {
                "cause": "saved",
                "revision": draft.revision,
                "by": draft.updated_by,
                "at": draft.updated_at,
            },
        )
    if draft is None and revision:
        return LayoutRefused(
            409,
            "There is no draft any more: it was published or discarded since. Reload to see"
            " the floor as it is now.",
            "conflict",
            {"cause": "gone"},
        )
    return LayoutRefused(409, fallback, "conflict", {"cause": "conflict"})


def publish_draft(svc: Services, floor_id: str, body: Any, published_by: str | None) -> int:
    """Make the floor's draft live: {"revision": r, "base_version": v (optional: the published
    version the editor loaded, to say why a conflict happened)} -> the new published version.

    The layout, its kept version, the audit entry and the draft's "you are here" moves are one
    transaction: all of them, or (on any error) none. The floor's screens then reload."""
    if not isinstance(body, dict):
        raise LayoutRefused(400, 'the body must be a JSON object {"revision": r}')
    revision = version_field(body, "revision", "the draft's")
    base = (
        version_field(body, "base_version", "the published one") if "base_version" in body else None
    )
    history = LayoutHistory(svc.store)
    draft = history.draft(floor_id)
    # Revisions never repeat on a floor (store/plan_versions.py), so a draft at the caller's
    # revision is the very one they saw; history.publish checks it again under lock.
    if draft is None or draft.revision != revision:
        fallback = (
            "there is no draft to publish (published or discarded since)"
            if draft is None
            else f"the draft was changed or published by someone else since (revision"
            f" {draft.revision}, you had {revision}); reload to see it"
        )
        raise conflict(svc, floor_id, revision, base, fallback)
    # The floor's rooms may have changed since the draft was saved (or the draft is a restored
    # version): checked again against the last rooms Density listed.
    clean = checked_layout(svc, floor_id, draft.data, publishing=True)
    here: dict[int, list[float] | None] = {}
    for display_id, point in draft.here.items():
        if point is not None:
            try:
                point = check_point(point, clean, f"you are here of display {display_id}")
            except LayoutError as exc:
                raise LayoutRefused(400, str(exc)) from exc
        here[display_id] = point
    try:
        saved = publish_layout(
            svc,
            history,
            floor_id,
            clean,
            expected_version=draft.base_version,
            published_by=published_by,
            draft_revision=revision,
            restored_from=draft.restored_from,
            here=here,
        )
    except LayoutRefused as exc:
        if exc.status != 409:
            raise
        raise conflict(svc, floor_id, revision, base, exc.message) from exc
    closed = reload_pages(svc.store, svc.hub, floor_id)
    logger.info(
        "floor %s draft published (version %d, %d display(s) placed); %d screen(s) reloading",
        floor_id,
        saved.version,
        len(here),
        closed,
    )
    return saved.version


def discard_draft(svc: Services, floor_id: str, body: Any) -> None:
    """Drop the floor's draft: {"revision": r}; the editor goes back to the published layout."""
    if not isinstance(body, dict):
        raise LayoutRefused(400, 'the body must be a JSON object {"revision": r}')
    revision = version_field(body, "revision", "the draft's")
    try:
        with audit.change(svc.store, "layout.discard_draft", "layout", floor_id, floor_id):
            gone = LayoutHistory(svc.store).discard_draft(floor_id, revision)
    except StoreError as exc:
        raise conflict(svc, floor_id, revision, None, str(exc)) from exc
    if not gone:
        raise LayoutRefused(404, "there is no draft to discard", "not_found")
    logger.info("floor %s draft discarded", floor_id)


def restore_version(
    svc: Services, floor_id: str, version: int, body: Any, updated_by: str | None
) -> dict[str, Any]:
    """Take a published version back as the floor's draft (replacing the draft at `revision`):
    {"revision": r} -> the draft. Nothing goes live until the admin publishes it."""
    if not isinstance(body, dict):
        raise LayoutRefused(400, 'the body must be a JSON object {"revision": r}')
    revision = version_field(body, "revision", "the draft's, 0 when there is none")
    # 404 for a floor Density does not know; its rooms as Density last listed them.
    known = floor_context(svc, floor_id).space_ids
    history = LayoutHistory(svc.store)
    kept = history.version(floor_id, version)
    if kept is None:
        raise LayoutRefused(404, f"version {version} is not kept for this floor", "not_found")
    try:
        # The shape only: rooms that left the floor since are kept in the draft, named in its
        # "gone" (and the editor's warnings) for the admin to remove; publishing refuses them.
        data = validate_layout(kept.data)
    except LayoutError as exc:
        raise LayoutRefused(400, f"version {version} cannot be read any more: {exc}") from exc
    stored = svc.store.get_layout(floor_id)
    live = stored.version if stored is not None else 0
    gone = gone_rooms(data, known)
    try:
        with audit.change(
            svc.store,
            "layout.restore",
            "layout",
            floor_id,
            floor_id,
            after={"restored_version": version, "live": False, **({"gone": gone} if gone else {})},
        ):
            draft = history.save_draft(
                floor_id,
                data,
                expected_revision=revision,
                base_version=live,
                updated_by=updated_by,
                restored_from=version,
            )
    except StoreError as exc:
        raise conflict(svc, floor_id, revision, live, str(exc)) from exc
    logger.info("floor %s version %d restored as the draft", floor_id, version)
    return draft_info(draft, stored.data if stored else None, live, known)


def draft_document(svc: Services, floor_id: str) -> dict[str, Any]:
    """The floor's draft as the JSON API answers it: what the editor shows of it, its layout
    and its "you are here" moves; LayoutRefused 404 when the floor has no draft."""
    known = floor_context(svc, floor_id).space_ids
    draft = LayoutHistory(svc.store).draft(floor_id)
    if draft is None:
        raise LayoutRefused(404, "this floor has no draft", "not_found")
    stored = svc.store.get_layout(floor_id)
    live = stored.version if stored is not None else 0
    return {
        **draft_info(draft, stored.data if stored else None, live, known),
        "version": live,
        "layout": draft.data,
        "here": {str(k): v for k, v in draft.here.items()},
    }


def versions_document(svc: Services, floor_id: str) -> dict[str, Any]:
    """The floor's kept published versions, newest first, and which one is live."""
    floor_context(svc, floor_id)  # 404 for a floor Density does not know
    stored = svc.store.get_layout(floor_id)
    live = stored.version if stored is not None else 0
    return {
        "live": live,
        "versions": [_version_info(v, live) for v in LayoutHistory(svc.store).versions(floor_id)],
    }


def version_document(svc: Services, floor_id: str, version: int) -> dict[str, Any]:
    """One kept version with its layout; LayoutRefused 404 when it is not kept."""
    floor_context(svc, floor_id)
    kept = LayoutHistory(svc.store).version(floor_id, version)
    if kept is None:
        raise LayoutRefused(404, f"version {version} is not kept for this floor", "not_found")
    stored = svc.store.get_layout(floor_id)
    live = stored.version if stored is not None else 0
    return {**_version_info(kept, live), "layout": kept.data}


def draft_or_published(svc: Services, floor_id: str) -> tuple[dict[str, Any] | None, dict]:
    """The layout a preview shows (the draft, else the published one) and the draft's "you are
    here" changes by display id."""
    draft = LayoutHistory(svc.store).draft(floor_id)
    if draft is not None:
        return draft.data, draft.here
    stored = svc.store.get_layout(floor_id)
    return (stored.data if stored is not None else None), {}
