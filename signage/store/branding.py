"""Uploaded logos: checked, sanitised and kept in the database by the SHA-256 of their bytes.

A logo is a PNG or an SVG of at most MAX_LOGO_BYTES. A PNG is read chunk by chunk (signature,
IHDR first, every chunk's CRC, image data, IEND last) and its size bounded; an SVG goes through
the floor plans' sanitiser (store/plans.py: parsed without DTDs, py-svg-hush in a process of
its own, then only same-document references kept), so no script, handler or external fetch
survives. Logos live in the `logos` table on both backends: they are small, and every host of
a fleet then serves the same bytes. Their URL names the digest (`/branding/logo/<sha256>.png`),
so it may be cached for a year: another logo is another URL.
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from signage.store.plans import PlanError, human_size, sanitise_svg, sniff

if TYPE_CHECKING:
    from signage.store.store import Store

logger = logging.getLogger(__name__)

MAX_LOGO_BYTES = 512_000  # 512 kB, as the console says
MAX_LOGO_SIDE = 4096  # pixels: a header logo is shown a few hundred pixels wide
# A PNG compresses a plain field thousands of times over: 4096×4096 RGBA fits in 65 kB and
# decodes to 64 MiB in every kiosk that shows it. Pixels, not bytes, are what a Pi pays for.
MAX_LOGO_PIXELS = 4_000_000
# An animated PNG (APNG) carries its frames in these chunks: each frame is another full image
# decoded in a loop, and a logo has no reason to move.
_APNG_CHUNKS = {b"acTL", b"fcTL", b"fdAT"}
LOGO_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
LOGO_PATH = "/branding/logo/"
_LOGO_URL = re.compile(r"^/branding/logo/([0-9a-f]{64})\.(png|svg)$")
ORPHAN_AGE_S = 600.0  # a logo no display names is removed once this old (an upload in flight)


class LogoError(ValueError):
    """A logo refused, with a message for the admin."""


@dataclass(frozen=True)
class Logo:
    """A stored logo: its digest, type and bytes."""

    sha256: str
    content_type: str
    data: bytes

    @property
    def ext(self) -> str:
        return "svg" if self.content_type == LOGO_TYPES["svg"] else "png"

    @property
    def url(self) -> str:
        """Its path on our origin, digest included."""
        return f"{LOGO_PATH}{self.sha256}.{self.ext}"


def _png_checked(data: bytes) -> tuple[int, int]:
    """Width and height of a well-formed PNG; LogoError for anything else."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise LogoError("not a PNG file")
    pos, size, seen_data, chunks = 8, None, False, 0
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise LogoError("the PNG file is cut short")
        body = data[pos + 8 : end - 4]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4 : end])[0]:
            raise LogoError("the PNG file is damaged (a chunk's checksum is wrong)")
        if chunks == 0:
            if kind != b"IHDR" or length != 13:
                raise LogoError("not a valid PNG file (no header chunk)")
            size = struct.unpack(">II", body[:8])
            if body[8] > 8:  # bit depth: 16 bits a channel doubles the decoded size for nothing
                raise LogoError("the PNG has 16 bits a channel; save it with 8")
        elif kind in _APNG_CHUNKS:
            raise LogoError("the PNG is animated; a logo must be a still image")
        elif kind == b"IDAT":
            seen_data = True
        elif kind == b"IEND":
            if not seen_data:
                raise LogoError("the PNG file has no image data")
            assert size is not None
            return size
        chunks += 1
        pos = end
    raise LogoError("the PNG file is cut short (no end chunk)")


def check_logo(data: bytes, max_bytes: int = MAX_LOGO_BYTES) -> tuple[bytes, str]:
    """An upload as it will be stored and its content type; LogoError saying why if refused."""
    if not data:
        raise LogoError("the file is empty")
    if len(data) > max_bytes:
        raise LogoError(
            f"the file has {human_size(len(data))}; a logo may have at most {human_size(max_bytes)}"
        )
    kind = sniff(data)
    if kind == "png":
        width, height = _png_checked(data)
        if not (0 < width <= MAX_LOGO_SIDE and 0 < height <= MAX_LOGO_SIDE) or (
            width * height > MAX_LOGO_PIXELS
        ):
            raise LogoError(
                f"the PNG is {width}×{height} pixels; a logo may have at most {MAX_LOGO_SIDE}"
                f" on a side and {MAX_LOGO_PIXELS // 1_000_000} megapixels"
            )
        return data, LOGO_TYPES["png"]
    if kind == "svg":
        try:
            clean = sanitise_svg(data, 2 * max_bytes)
        except PlanError as exc:
            raise LogoError(str(exc)) from exc
        return clean, LOGO_TYPES["svg"]
    raise LogoError("a logo must be a PNG or an SVG file")


def logo_digest(url: str | None) -> str | None:
    """The digest in one of our logo URLs, or None for any other URL."""
    match = _LOGO_URL.match(url or "")
    return match.group(1) if match else None


class Logos:
    """The logos table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def put(self, data: bytes, content_type: str, now: float | None = None) -> Logo:
        """Keep a checked logo (the same bytes twice are one row); returns it."""
        digest = hashlib.sha256(data).hexdigest()
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO logos (sha256, content_type, data, size, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
                (digest, content_type, data, len(data), time.time() if now is None else now),
            )
        return Logo(digest, content_type, data)

    def get(self, digest: str) -> Logo | None:
        """A logo by its digest."""
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT sha256, content_type, data FROM logos WHERE sha256 = ?", (digest,)
            ).fetchone()
        if row is None:
            return None
        return Logo(row["sha256"], row["content_type"], bytes(row["data"]))

    def sweep(self, keep: set[str], min_age: float = ORPHAN_AGE_S) -> int:
        """Remove logos no display names any more (older than `min_age`); how many."""
        cutoff = time.time() - min_age
        with self.store.transaction() as conn:
            rows = conn.execute(
                "SELECT sha256 FROM logos WHERE created_at < ?", (cutoff,)
            ).fetchall()
            gone = [r["sha256"] for r in rows if r["sha256"] not in keep]
            for digest in gone:
                conn.execute("DELETE FROM logos WHERE sha256 = ?", (digest,))
        if gone:
            logger.info("removed %d logo(s) no display shows", len(gone))
        return len(gone)


__all__ = [
    "LOGO_PATH",
    "LOGO_TYPES",
    "MAX_LOGO_BYTES",
    "Logo",
    "LogoError",
    "Logos",
    "check_logo",
    "logo_digest",
]
