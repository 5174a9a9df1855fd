"""Floor plans: check, sanitise and store uploaded SVG, PNG and JPEG files.

SVG is active content: a plan a kiosk loads could run script or call out to any host. So an SVG
is parsed first with defusedxml with DTDs forbidden (no entity bombs, no XXE), then sanitised by
py-svg-hush (an allowlist: no script, handlers, foreignObject or javascript: links), then passed
once more through our own check that keeps only same-document references (`#id`): py-svg-hush
rewrites external URLs to same-origin paths, and even those should not be fetched from a plan.

Files are written to a temporary file, fsynced and renamed into place, and recorded in the
database only after the rename: a crash leaves either the old plan or the new one, never a torn
file, and the database never names a file that is not there.

With PostgreSQL (several hosts share one database, not one disk) the plan's bytes live in the
database instead, written in the same transaction as its record.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import struct
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from signage.db import is_postgres
from signage.store import Plan, Store

logger = logging.getLogger(__name__)

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
MAX_SIDE = 16384  # pixels: larger images cost a kiosk more memory than it has
MAX_PIXELS = 100_000_000
MAX_ELEMENTS = 100_000
ORPHAN_AGE_S = 600.0  # a leftover file this old belongs to no upload in progress
_FLOOR_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# A CSS url(...) that does not point into the document itself.
_CSS_URL = re.compile(r"url\(\s*(?!['\"]?#)[^)]*\)", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"@import[^;]*;?", re.IGNORECASE)
_BARE_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s;{}]*", re.IGNORECASE)
_HREF_ATTRS = ("href", f"{{{XLINK_NS}}}href", "src")
_ANIMATIONS = {f"{{{SVG_NS}}}{t}" for t in ("animate", "set", "animateMotion", "animateTransform")}

CONTENT_TYPES = {"svg": "image/svg+xml", "png": "image/png", "jpg": "image/jpeg"}
# The only policy a plan file is served with: no script, no fetch, inline styles and data: images.
PLAN_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


class PlanError(ValueError):
    """An upload refused, with a message for the admin."""


@dataclass(frozen=True)
class CleanPlan:
    """An upload that passed: its bytes as they will be stored, and their kind."""

    data: bytes
    ext: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.ext]


def sniff(data: bytes) -> str | None:
    """The file's kind from its first bytes (the browser's filename and type are not trusted)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")):
        return "svg"
    return None


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise PlanError("the image has no size")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise PlanError(
            f"the image is {width}×{height} pixels; at most {MAX_SIDE} on a side and"
            f" {MAX_PIXELS // 1_000_000} megapixels"
        )


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise PlanError("not a valid PNG file")
    return struct.unpack(">II", data[16:24])


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the first start-of-frame marker."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            raise PlanError("not a valid JPEG file")
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise PlanError("not a valid JPEG file (no image size found)")


def _parse_guarded(data: bytes) -> ET.Element:
    """Parse with DTDs, entities and external references forbidden."""
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise PlanError(
            "the SVG declares a DTD or entities (refused: they can expand without bound or"
            " read files); export it again without a DOCTYPE"
        ) from exc
    except ET.ParseError as exc:
        raise PlanError(f"the SVG is not well-formed XML ({exc})") from exc


def _drop_link_animations(root: ET.Element) -> int:
    """Remove animations that could retarget a link or set a handler (or target nothing)."""
    removed = 0
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag not in _ANIMATIONS:
                continue
            target = child.get("attributeName", "").rsplit(":", 1)[-1].strip().lower()
            if not target or target == "href" or target.startswith("on"):
                parent.remove(child)
                removed += 1
    return removed


def _strip_external(root: ET.Element) -> int:
    """Keep only same-document references; returns how many were removed."""
    removed = _drop_link_animations(root)
    count = 0
    for element in root.iter():
        count += 1
        if count > MAX_ELEMENTS:
            raise PlanError(f"the SVG has more than {MAX_ELEMENTS} elements")
        for attr in list(element.attrib):
            value = element.attrib[attr]
            local = attr.rsplit("}", 1)[-1].lower()
            if attr in _HREF_ATTRS or local == "href":
                if not value.strip().startswith("#"):
                    del element.attrib[attr]
                    removed += 1
            elif local == "style" or "url(" in value.lower():
                cleaned = _CSS_IMPORT.sub("", _CSS_URL.sub("none", value))
                if cleaned != value:
                    element.attrib[attr] = cleaned
                    removed += 1
        if element.tag == f"{{{SVG_NS}}}style" and element.text:
            # Also bare URLs: the remains of an @import the sanitiser cut short.
            cleaned = _CSS_IMPORT.sub("", _CSS_URL.sub("none", element.text))
            cleaned = _BARE_URL.sub("", cleaned)
            if cleaned != element.text:
                element.text = cleaned
                removed += 1
    return removed


def _serialise(root: ET.Element) -> bytes:
    # Default namespace for SVG and the usual xlink prefix, so the output reads like the input.
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    out = io.BytesIO()
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    return out.getvalue()


def sanitise_svg(data: bytes) -> bytes:
    """A safe SVG from an uploaded one, or PlanError saying why it cannot be made safe."""
    from py_svg_hush import filter_svg

    root = _parse_guarded(data)
    if root.tag != f"{{{SVG_NS}}}svg":
        raise PlanError("the file is XML but not an SVG image (its root is not <svg>)")
    try:
        filtered = filter_svg(data)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a Rust panic surfaces as a BaseException (FINDINGS)
        raise PlanError("the SVG could not be read by the sanitiser") from exc
    root = _parse_guarded(filtered)
    if root.tag != f"{{{SVG_NS}}}svg":
        raise PlanError("nothing of the SVG survived sanitising")
    removed = _strip_external(root)
    if removed:
        logger.info("plan sanitising removed %d external reference(s)", removed)
    return _serialise(root)


def human_size(size: float) -> str:
    """Bytes as people read them: 850 bytes, 12 kB, 4.8 MB."""
    if size < 1000:
        return f"{int(size)} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.0f} kB"
    return f"{size / 1e6:.1f} MB"


def check_upload(data: bytes, max_bytes: int) -> CleanPlan:
    """Check an upload's kind and size and sanitise it; PlanError with a message if refused."""
    if not data:
        raise PlanError("the file is empty")
    if len(data) > max_bytes:
        raise PlanError(
            f"the file has {human_size(len(data))}; plans may have at most {human_size(max_bytes)}"
        )
    kind = sniff(data)
    if kind == "png":
        _check_size(*_png_size(data))
        return CleanPlan(data, "png")
    if kind == "jpg":
        _check_size(*_jpeg_size(data))
        return CleanPlan(data, "jpg")
    if kind == "svg":
        return CleanPlan(sanitise_svg(data), "svg")
    raise PlanError("plans must be SVG, PNG or JPEG files")


# -- storage ------------------------------------------------------------------------------------
def plans_dir(config: dict) -> Path:
    """Where plan files live: SIGNAGE_PLANS_DIR, else `plans/` beside the database."""
    configured = config.get("SIGNAGE_PLANS_DIR") or ""
    if configured:
        return Path(configured)
    if is_postgres(config["SIGNAGE_DATABASE"]):
        # Never a path made from a URL (it holds a password): plans are in the database then.
        raise ValueError("with PostgreSQL, plans are kept in the database: there is no folder")
    return Path(config["SIGNAGE_DATABASE"]).resolve().parent / "plans"


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file so that a crash leaves the old content or the new, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # The rename itself is durable only once the folder's entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def sweep(store: Store, config: dict, min_age: float = ORPHAN_AGE_S) -> int:
    """Remove what a crash can leave: temporary files, and plan files no record names."""
    if store.plans_in_database:
        # Bytes and record are written in one transaction: nothing young to spare.
        removed = store.sweep_plan_data()
        if removed:
            logger.info("removed %d leftover plan file(s) from the database", removed)
        return removed
    folder = plans_dir(config)
    if not folder.is_dir():
        return 0
    recorded = {p.filename for p in store.list_plans()}
    cutoff = time.time() - min_age  # younger files may belong to an upload in progress
    removed = 0
    for path in folder.iterdir():
        if path.name in recorded or not path.is_file():
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    if removed:
        logger.info("removed %d leftover plan file(s)", removed)
    return removed


def store_plan(
    store: Store, config: dict, floor_id: str, upload: bytes, uploaded_by: str | None
) -> Plan:
    """Sanitise, write and record a floor's plan; the file it replaces is removed after."""
    if not _FLOOR_ID.match(floor_id):
        raise PlanError("invalid floor id")
    clean = check_upload(upload, int(config.get("SIGNAGE_PLAN_MAX_BYTES") or 5_000_000))
    digest = hashlib.sha256(clean.data).hexdigest()
    safe_floor = re.sub(r"[^A-Za-z0-9_-]", "_", floor_id)
    filename = f"{safe_floor}-{digest[:16]}.{clean.ext}"
    plan = Plan(
        floor_id=floor_id,
        filename=filename,
        content_type=clean.content_type,
        size=len(clean.data),
        sha256=digest,
        uploaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        uploaded_by=uploaded_by,
    )
    if store.plans_in_database:
        # One transaction writes the bytes and the record, and drops the replaced plan's bytes.
        store.put_plan(plan, clean.data)
        plan = replace(plan, storage=store)
    else:
        folder = plans_dir(config)
        sweep(store, config)
        atomic_write(folder / filename, clean.data)
        old = store.put_plan(plan)
        if old is not None and old.filename != filename:
            _unlink_quietly(folder / old.filename)
    logger.info("floor %s plan stored (%s, %d bytes)", floor_id, clean.ext, len(clean.data))
    return plan


def delete_plan(store: Store, config: dict, floor_id: str) -> bool:
    """Forget a floor's plan and remove its file; True when there was one."""
    old = store.remove_plan(floor_id)
    if old is None:
        return False
    if not store.plans_in_database:  # in the database, the bytes went with the record
        _unlink_quietly(plans_dir(config) / old.filename)
    return True


def plan_file(config: dict, plan: Plan) -> Path:
    """The file of a recorded plan."""
    return plans_dir(config) / Path(plan.filename).name


def read_plan(config: dict, plan: Plan) -> bytes | None:
    """A recorded plan's bytes, or None when its file is missing (logged).

    Every reader goes through here (admin console, kiosks, phones, backup), so where plans are
    kept can change in one place: a file on disk, or the database a PostgreSQL store keeps.
    """
    if plan.storage is not None:
        data = plan.storage.plan_data(plan.filename)
        if data is None:
            logger.error("plan data of floor %s is missing from the database", plan.floor_id)
        return data
    try:
        return plan_file(config, plan).read_bytes()
    except FileNotFoundError:
        logger.error("plan file of floor %s is missing", plan.floor_id)
        return None


_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(px)?\s*$")


def plan_dimensions(data: bytes, content_type: str) -> tuple[float, float] | None:
    """The plan's own coordinate space: pixels for PNG/JPEG, the viewBox (or width and height)
    for SVG. The floor editor draws in these units, and kiosks scale them to their screen."""
    try:
        if content_type == CONTENT_TYPES["png"]:
            w, h = _png_size(data)
            return float(w), float(h)
        if content_type == CONTENT_TYPES["jpg"]:
            w, h = _jpeg_size(data)
            return float(w), float(h)
        root = _parse_guarded(data)
    except PlanError:
        return None
    box = (root.get("viewBox") or "").replace(",", " ").split()
    if len(box) == 4:
        try:
            w, h = float(box[2]), float(box[3])
        except ValueError:
            w = h = 0.0
        if w > 0 and h > 0:
            return w, h
    width, height = _LENGTH.match(root.get("width") or ""), _LENGTH.match(root.get("height") or "")
    if width and height and float(width.group(1)) > 0 and float(height.group(1)) > 0:
        return float(width.group(1)), float(height.group(1))
    return None


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
