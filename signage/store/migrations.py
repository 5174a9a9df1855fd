"""The database's schema as a sequence of migrations, oldest first.

A migration is SQLite DDL, which store/db.py translates for PostgreSQL, or a mapping from backend
name to the script for that backend where the two cannot share one.
"""

from __future__ import annotations

import logging

from signage.store.db import Migration

logger = logging.getLogger(__name__)

# Each entry moves the schema one version forward; applied in order, never edited once shipped.
MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE displays (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        floor_id TEXT NOT NULL,
        density_display_id TEXT,
        key_generation INTEGER NOT NULL DEFAULT 1,
        settings TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX displays_floor ON displays (floor_id);
    """,
    # The phone view's read-only link ("take this map with you") is revocable on its own.
    """
    ALTER TABLE displays ADD COLUMN phone_key_generation INTEGER NOT NULL DEFAULT 1;
    """,
    # Admin console accounts. session_generation is in every session cookie: bumping it (new
    # password, account removed) signs out every browser at once.
    """
    CREATE TABLE admins (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('owner', 'admin')),
        session_generation INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
    );
    """,
    # API tokens for automation: only a hash is kept, the token is shown once.
    """
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
        created_at TEXT NOT NULL,
        last_used_at TEXT
    );
    """,
    # Pairing codes live here (not in memory) so that `signage displays pair` in another process
    # can claim them. Times are Unix seconds: they are compared across processes.
    """
    CREATE TABLE pairing_codes (
        id INTEGER PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        display_id INTEGER REFERENCES displays (id) ON DELETE CASCADE,
        claimed_at REAL,
        client_ip TEXT
    );
    CREATE INDEX pairing_codes_expiry ON pairing_codes (expires_at);
    """,
    # One floor plan per floor; the row is written only after the file is renamed into place.
    """
    CREATE TABLE plans (
        floor_id TEXT PRIMARY KEY,
        filename TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        uploaded_at TEXT NOT NULL,
        uploaded_by TEXT
    );
    """,
    # What an admin draws over a floor's plan: room outlines, doors, the corridor graph. One JSON
    # document per floor (signage/core/layout.py checks it); version counts saves, so two editors
    # cannot overwrite each other unnoticed.
    """
    CREATE TABLE layouts (
        floor_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        data TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT
    );
    """,
    # Messages pushed to screens: to one display, a floor or all; "emergency" takes the screen.
    # Times are Unix seconds, compared across processes.
    """
    CREATE TABLE announcements (
        id INTEGER PRIMARY KEY,
        scope TEXT NOT NULL CHECK (scope IN ('display', 'floor', 'all')),
        target TEXT,
        kind TEXT NOT NULL CHECK (kind IN ('message', 'emergency')),
        title TEXT NOT NULL,
        body TEXT NOT NULL DEFAULT '',
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT,
        cancelled_at REAL
    );
    CREATE INDEX announcements_end ON announcements (ends_at);
    """,
    # The last space tree Density gave (JSON, parent links resolved) and when (Unix seconds):
    # a restart inside an outage still shows every room by name.
    """
    CREATE TABLE space_cache (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        data TEXT NOT NULL,
        fetched_at REAL NOT NULL
    );
    """,
    # A credential or session names one row for its whole life. SQLite hands a freed highest id
    # of a plain INTEGER PRIMARY KEY to the next row, so a deleted display's kiosk link (or a
    # deleted admin's cookie) opened the next one: the tables are rebuilt with AUTOINCREMENT.
    # pairing_codes is rebuilt with them because it refers to displays, and dropping a table
    # others refer to would cascade. PostgreSQL's identity columns never give a value twice.
    # `secret` is random per row and part of every credential and session; rows from before
    # keep '' (the formula without it), so screens paired and admins signed in carry on.
    # Versions before this one left a deleted display's announcements live, naming its id: they
    # are cancelled, and SQLite's id counter starts above every display id still named anywhere
    # (the rebuild seeds it with the highest id left in the table, which may be below a deleted
    # one), so an old emergency never reaches the next display created.
    {
        "sqlite": """
    CREATE TABLE displays_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        floor_id TEXT NOT NULL,
        density_display_id TEXT,
        key_generation INTEGER NOT NULL DEFAULT 1,
        settings TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        phone_key_generation INTEGER NOT NULL DEFAULT 1,
        secret TEXT NOT NULL DEFAULT ''
    );
    INSERT INTO displays_new (id, name, floor_id, density_display_id, key_generation, settings,
        created_at, updated_at, phone_key_generation)
        SELECT id, name, floor_id, density_display_id, key_generation, settings, created_at,
        updated_at, phone_key_generation FROM displays;
    CREATE TABLE pairing_codes_new (
        id INTEGER PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        display_id INTEGER REFERENCES displays_new (id) ON DELETE CASCADE,
        claimed_at REAL,
        client_ip TEXT
    );
    INSERT INTO pairing_codes_new (id, code, secret_hash, created_at, expires_at, display_id,
        claimed_at, client_ip)
        SELECT id, code, secret_hash, created_at, expires_at, display_id, claimed_at, client_ip
        FROM pairing_codes;
    DROP TABLE pairing_codes;
    DROP TABLE displays;
    ALTER TABLE displays_new RENAME TO displays;
    ALTER TABLE pairing_codes_new RENAME TO pairing_codes;
    CREATE INDEX displays_floor ON displays (floor_id);
    CREATE INDEX pairing_codes_expiry ON pairing_codes (expires_at);
    CREATE TABLE admins_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('owner', 'admin')),
        session_generation INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        secret TEXT NOT NULL DEFAULT ''
    );
    INSERT INTO admins_new (id, username, password_hash, role, session_generation, created_at)
        SELECT id, username, password_hash, role, session_generation, created_at FROM admins;
    DROP TABLE admins;
    ALTER TABLE admins_new RENAME TO admins;
    UPDATE announcements SET cancelled_at = CAST(strftime('%s', 'now') AS REAL)
        WHERE scope = 'display' AND cancelled_at IS NULL
        AND coalesce(target, '') NOT IN (SELECT CAST(id AS TEXT) FROM displays);
    DELETE FROM sqlite_sequence WHERE name = 'displays';
    INSERT INTO sqlite_sequence (name, seq) SELECT 'displays', max(
        (SELECT coalesce(max(id), 0) FROM displays),
        (SELECT coalesce(max(display_id), 0) FROM pairing_codes),
        (SELECT coalesce(max(CAST(target AS INTEGER)), 0) FROM announcements
            WHERE scope = 'display' AND length(target) <= 18 AND target NOT GLOB '*[^0-9]*'))
    """,
        "postgresql": """
    ALTER TABLE displays ADD COLUMN secret TEXT NOT NULL DEFAULT '';
    ALTER TABLE admins ADD COLUMN secret TEXT NOT NULL DEFAULT '';
    UPDATE announcements SET cancelled_at = extract(epoch FROM now())
        WHERE scope = 'display' AND cancelled_at IS NULL
        AND coalesce(target, '') NOT IN (SELECT CAST(id AS TEXT) FROM displays)
    """,
    },
    # A building's floors in the order an admin set (a JSON list of floor ids), over the order
    # Density lists them in: the console, the API and the kiosks' other-floors panel follow it.
    """
    CREATE TABLE floor_order (
        building_id TEXT PRIMARY KEY,
        floor_ids TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # Each room's calendar link (an iCalendar URL, a secret): bookings beside sensor truth.
    """
    CREATE TABLE calendar_sources (
        space_id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # When each display first had a screen connected: one that never had is "not installed" (no
    # alert), and a restart must not turn a dead screen back into one.
    """
    CREATE TABLE display_first_screens (
        display_id INTEGER PRIMARY KEY,
        first_at REAL NOT NULL
    );
    """,
    # A floor's layout as drafted in the editor (kiosks keep the published one in `layouts` until
    # an admin publishes), and the last published versions, with who and when, to restore one.
    # `here` holds the draft's "you are here" changes by display id (JSON), applied on publishing.
    """
    CREATE TABLE layout_drafts (
        floor_id TEXT PRIMARY KEY,
        base_version INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        data TEXT NOT NULL,
        here TEXT NOT NULL DEFAULT '{}',
        updated_at TEXT NOT NULL,
        updated_by TEXT,
        restored_from INTEGER
    );
    CREATE TABLE layout_versions (
        id INTEGER PRIMARY KEY,
        floor_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        data TEXT NOT NULL,
        published_at TEXT NOT NULL,
        published_by TEXT,
        restored_from INTEGER,
        UNIQUE (floor_id, version)
    );
    """,
    # People who may read the console but change nothing: the 'viewer' role, as read-only API
    # tokens have. SQLite cannot alter a CHECK, so the table is rebuilt; its id counter keeps
    # the highest id ever issued (a deleted account's id, and so its old cookies, never return).
    {
        "sqlite": """
    CREATE TABLE admins_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
        session_generation INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        secret TEXT NOT NULL DEFAULT ''
    );
    INSERT INTO admins_new (id, username, password_hash, role, session_generation, created_at,
        secret)
        SELECT id, username, password_hash, role, session_generation, created_at, secret
        FROM admins;
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'admins_keep', coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'admins';
    DROP TABLE admins;
    ALTER TABLE admins_new RENAME TO admins;
    DELETE FROM sqlite_sequence WHERE name = 'admins';
    INSERT INTO sqlite_sequence (name, seq) SELECT 'admins', max(
        (SELECT coalesce(max(id), 0) FROM admins),
        (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'admins_keep'));
    DELETE FROM sqlite_sequence WHERE name = 'admins_keep'
    """,
        "postgresql": """
    ALTER TABLE admins DROP CONSTRAINT IF EXISTS admins_role_check;
    ALTER TABLE admins ADD CONSTRAINT admins_role_check
        CHECK (role IN ('owner', 'admin', 'viewer'))
    """,
    },
    # The audit trail: who changed what and when, with the settings before and after (JSON,
    # never a secret). actor_kind is account, token, cli or system; times are Unix seconds.
    """
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor_kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target_kind TEXT NOT NULL,
        target_id TEXT,
        target_name TEXT,
        before_json TEXT,
        after_json TEXT
    );
    CREATE INDEX audit_log_at ON audit_log (at);
    CREATE INDEX audit_log_target ON audit_log (target_kind, target_id)
    """,
    # Display names an admin gives a floor or a room, per language ('' is the default): kept
    # with us, never written to Density. core/names.py resolves them for each screen.
    """
    CREATE TABLE display_names (
        space_id TEXT NOT NULL,
        language TEXT NOT NULL,
        name TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (space_id, language)
    );
    """,
    # Uploaded logos (PNG, or SVG after sanitising), by the SHA-256 of their bytes: served from
    # our origin under that digest, so a URL never changes content and may be cached for good.
    # In the database on both backends (at most 512 KB each), so every host serves the same.
    """
    CREATE TABLE logos (
        sha256 TEXT PRIMARY KEY,
        content_type TEXT NOT NULL,
        data BLOB NOT NULL,
        size INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    # A room's calendar can be CalDAV (URL, user name, password) as well as an ICS link; the
    # link and the password are kept sealed with the server's key (store/calendars.py), and a
    # plain `url` from before is sealed the first time the worker reads it.
    """
    ALTER TABLE calendar_sources ADD COLUMN kind TEXT NOT NULL DEFAULT 'ics';
    ALTER TABLE calendar_sources ADD COLUMN username TEXT NOT NULL DEFAULT '';
    ALTER TABLE calendar_sources ADD COLUMN sealed TEXT NOT NULL DEFAULT ''
    """,
    # The last draft revision issued for each floor, kept when a draft is published or
    # discarded: a new draft continues from it, so an editor tab still holding an old draft's
    # revision can never match (and overwrite or publish) a later draft it has not seen.
    """
    CREATE TABLE layout_draft_revisions (
        floor_id TEXT PRIMARY KEY,
        revision INTEGER NOT NULL
    );
    INSERT INTO layout_draft_revisions (floor_id, revision)
        SELECT floor_id, revision FROM layout_drafts
    """,
    # A counter per kind of data every process keeps in memory, bumped in the transaction that
    # changes it: a process compares one row instead of re-reading the whole table. Display
    # names first (store/names.py): 1,000 screens reopening after a restart read it 1,000 times.
    """
    CREATE TABLE generations (
        name TEXT PRIMARY KEY,
        generation BIGINT NOT NULL
    );
    INSERT INTO generations (name, generation) VALUES ('display_names', 1)
    """,
    # When a screen of each display was last seen connected (store/screens.py): fleet health
    # says "Down for 12 min" from it on its first page view after a restart.
    """
    CREATE TABLE display_last_seen (
        display_id INTEGER PRIMARY KEY,
        seen_at REAL NOT NULL
    );
    """,
    # Each floor's live layout kept as a version (store/plan_versions.py): one written before
    # drafts existed was never one, so publishing a bad draft over it could not be undone.
    """
    INSERT INTO layout_versions (floor_id, version, data, published_at, published_by)
        SELECT l.floor_id, l.version, l.data, l.updated_at, l.updated_by FROM layouts l
        WHERE NOT EXISTS (SELECT 1 FROM layout_versions v
                          WHERE v.floor_id = l.floor_id AND v.version = l.version)
    """,
)

__all__ = ["MIGRATIONS"]
