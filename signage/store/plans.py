"""Floor plans: check, sanitise and store uploaded SVG, PNG and JPEG files.

SVG is active content: a plan a kiosk loads could run script or call out to any host. So an SVG
is parsed first with defusedxml with DTDs forbidden (no entity bombs, no XXE) and with its nesting
and element count limited while it is read, then sanitised by py-svg-hush (an allowlist: no
script, handlers, foreignObject or javascript: links), then passed once more through our own
check that keeps only same-document references (`#id`): py-svg-hush rewrites external URLs to
same-origin paths, and even those should not be fetched from a plan. Styles are read with a real
CSS tokenizer (tinycss2), so `url()`, `image-set()`, `@import` and `@font-face` go in whatever
spelling (escapes included): the stored file fetches nothing wherever it is opened.

py-svg-hush runs in a process of its own (signage/store/svgworker.py) with memory, CPU and time
limits: fed 20,000 nested groups it grew the server to 1.6 GB, and 50,000 aborted the whole
process inside its Rust code (SIGABRT). The depth limit refuses those before it runs; the
process is there for whatever else it may choke on. It adds 20 to 30 ms to an upload.

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
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import tinycss2
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from signage.store import Plan, Store
from signage.store.db import is_postgres
from signage.store.svgworker import EXIT_TOO_LARGE

logger = logging.getLogger(__name__)

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
MAX_SIDE = 16384  # pixels: larger images cost a kiosk more memory than it has
MAX_PIXELS = 100_000_000
# Floor plans from CAD and drawing tools nest groups a dozen deep; py-svg-hush's output grows
# with the square of the depth (2·depth² bytes), and ElementTree recurses once per level.
MAX_DEPTH = 64
MAX_ELEMENTS = 100_000  # a busy 5 MB plan; the sanitiser takes ~0.2 s for this many
# Copies drawn through <use>: each copies its target, which may hold <use> elements too, so a
# 2 kB file of 8 levels of 10 draws 10^8 shapes. Chromium took 1.9 s on 10^4 copies and had not
# finished 10^6 after 150 s; a plan's repeated symbols are tens of thousands of elements at
# most (1,000 desks of 22 paths: 22,000 copies).
MAX_USE_COPIES = 30_000
MAX_DRAWN = 150_000  # the document's own elements and every copy, one budget
# The sanitiser indents by depth, so its output may be larger than the upload, but not by this.
OUTPUT_FACTOR = 2
SANITISER_MEMORY = 1 << 30  # bytes of address space for the sanitiser's process
SANITISER_CPU_S = 10
SANITISER_TIMEOUT_S = 20.0
_WORKER = Path(__file__).with_name("svgworker.py")
SANITISER_PYTHON = sys.executable  # the interpreter the sanitiser's process runs in
ORPHAN_AGE_S = 600.0  # a leftover file this old belongs to no upload in progress
_FLOOR_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# CSS functions that load something (CSS Images 4, Fonts 4, Paint API); url() is checked apart,
# since url(#id) names a paint server in the document itself.
_CSS_FETCHING = frozenset(
    {"src", "image", "cross-fade", "-webkit-cross-fade", "element", "-moz-element", "paint"}
)
# Block at-rules kept (when nothing inside fetches); @import, @font-face and the rest go.
_CSS_AT_RULES = frozenset({"media", "supports", "keyframes", "-webkit-keyframes", "layer"})
_CSS_MAX_NESTING = 16  # tinycss2 serialises recursively: deeper blocks are dropped, not written
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


class _LimitedTreeBuilder(ET.TreeBuilder):
    """A tree builder that refuses, as the parser goes, nesting and element counts past the
    limits: a 140 KB file of 20,000 nested groups stops at the 65th, having built almost nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.count = 0

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        self.depth += 1
        self.count += 1
        if self.depth > MAX_DEPTH:
            raise PlanError(
                f"the SVG has elements nested more than {MAX_DEPTH} deep; flatten its groups"
                " (ungroup in the drawing tool) and export it again"
            )
        if self.count > MAX_ELEMENTS:
            raise PlanError(
                f"the SVG has more than {MAX_ELEMENTS:,} elements; simplify the drawing"
                " (merge paths, drop hidden layers) and export it again"
            )
        return super().start(tag, attrs)

    def end(self, tag: str) -> ET.Element:
        self.depth -= 1
        return super().end(tag)


def _parse_guarded(data: bytes) -> ET.Element:
    """Parse with DTDs, entities and external references forbidden, depth and size limited."""
    parser = DefusedXMLParser(
        target=_LimitedTreeBuilder(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(data)
        return parser.close()
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


def _css_fetches(tokens: list, depth: int = 0) -> bool:
    """True when CSS component values could load something (or nest too deep to check)."""
    if depth > _CSS_MAX_NESTING:
        return True
    for token in tokens:
        kind = token.type
        if kind == "url":  # url(x) unquoted; escapes (u\72l) are already decoded here
            if not token.value.strip().startswith("#"):
                return True
        elif kind == "function":
            name = token.lower_name
            if name == "url":  # url("x"): a function holding a string
                args = [t for t in token.arguments if t.type not in ("whitespace", "comment")]
                if not (len(args) == 1 and args[0].type == "string" and args[0].value[:1] == "#"):
                    return True
            elif name in _CSS_FETCHING or name.endswith("image-set"):
                return True
            if _css_fetches(token.arguments, depth + 1):
                return True
        elif kind in ("() block", "[] block", "{} block"):
            if _css_fetches(token.content, depth + 1):
                return True
        elif kind in ("error", "at-keyword"):
            return True
    return False


def _clean_declarations(tokens: list) -> tuple[str, int]:
    """A declaration list without the declarations that fetch; and how many went."""
    kept: list[str] = []
    removed = 0
    for node in tinycss2.parse_blocks_contents(tokens, skip_comments=True, skip_whitespace=True):
        if node.type == "declaration" and not _css_fetches(node.value):
            kept.append(node.serialize())
        elif node.type == "qualified-rule" and not _css_fetches([*node.prelude, *node.content]):
            kept.append(node.serialize())  # a nested rule (CSS nesting) that fetches nothing
        else:
            removed += 1
    return ";".join(kept), removed


def _clean_stylesheet(text: str) -> tuple[str, int]:
    """A <style> sheet without rules, declarations or at-rules that fetch; how many went."""
    out: list[str] = []
    removed = 0
    for rule in tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True):
        if rule.type == "qualified-rule" and not _css_fetches(rule.prelude):
            body, dropped = _clean_declarations(rule.content)
            out.append(f"{tinycss2.serialize(rule.prelude).strip()} {{{body}}}")
            removed += dropped
        elif (
            rule.type == "at-rule"
            and rule.lower_at_keyword in _CSS_AT_RULES
            and not _css_fetches([*rule.prelude, *(rule.content or [])])
        ):
            out.append(rule.serialize())
        else:
            removed += 1
    return "\n".join(out), removed


def _strip_external(root: ET.Element) -> int:
    """Keep only same-document references; returns how many were removed."""
    removed = _drop_link_animations(root)
    for element in list(root.iter()):  # a list: <style> children are removed on the way
        for attr in list(element.attrib):
            value = element.attrib[attr]
            local = attr.rsplit("}", 1)[-1].lower()
            if attr in _HREF_ATTRS or local == "href":
                if not value.strip().startswith("#"):
                    del element.attrib[attr]
                    removed += 1
            elif local == "style":
                tokens = tinycss2.parse_component_value_list(value, skip_comments=True)
                if _css_fetches(tokens):  # rewritten only when needed: the rest stays as drawn
                    element.attrib[attr], dropped = _clean_declarations(tokens)
                    removed += dropped
            elif "(" in value:
                # Presentation attributes are CSS values too (fill="url(…)"); a function needs
                # a literal "(", so values without one cannot fetch.
                if _css_fetches(tinycss2.parse_component_value_list(value, skip_comments=True)):
                    del element.attrib[attr]
                    removed += 1
        if element.tag.rsplit("}", 1)[-1] == "style":  # any namespace: XHTML's applies too
            removed += _flatten_style(element)
    return removed


_COPYING = {"use", "feImage"}  # elements that draw another element of the document again
_MARKED = {"path", "line", "polyline", "polygon"}  # shapes that draw markers at their vertices
_MARKER_PROPS = ("marker-start", "marker-mid", "marker-end", "marker")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _local(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _vertices(element: ET.Element) -> int:
    """An upper bound on the vertices a shape draws markers at: half its numbers."""
    data = element.get("d") or element.get("points") or ""
    return 2 if _local(element) == "line" else len(_NUMBER.findall(data)) // 2 + 1


def _bound_copies(root: ET.Element) -> int:
    """Refuse an SVG whose <use> references (and markers, drawn at every vertex of a shape) would
    draw more than MAX_USE_COPIES copies, or MAX_DRAWN elements in all, or reference themselves;
    remove a <use> whose target is not in the document (it draws nothing, and a target only a
    browser would find must not escape the count). Returns how many were removed.

    References are found as Chromium finds them: percent-escapes decoded, the first element of
    an id (a later duplicate is ignored)."""
    by_id: dict[str, ET.Element] = {}
    for element in root.iter():
        if element.get("id"):
            by_id.setdefault(element.get("id"), element)
    parents = {child: parent for parent in root.iter() for child in parent}
    removed = 0

    def target(element: ET.Element) -> ET.Element | None:
        href = (element.get("href") or element.get(f"{{{XLINK_NS}}}href") or "").strip()
        return by_id.get(unquote(href[1:])) if href.startswith("#") else None

    for element in list(root.iter()):
        if _local(element) in _COPYING and target(element) is None:
            parents[element].remove(element)
            removed += 1
    # A sheet may give any shape markers: every shape then counts as marked.
    sheet_marks = any(_local(e) == "style" and "marker" in (e.text or "") for e in root.iter())

    def has_markers(element: ET.Element) -> bool:
        return _local(element) in _MARKED and (
            sheet_marks
            or any(element.get(k) for k in _MARKER_PROPS)
            or "marker" in (element.get("style") or "")
        )

    cap = MAX_DRAWN + 1  # counts stop growing past any limit

    def drawn_by(start: ET.Element, marker_cost: int) -> int:
        drawn: dict[int, int] = {}  # element -> elements it draws, itself and copies included
        on_path: set[int] = set()
        stack: list[tuple[ET.Element, bool]] = [(start, False)]
        while stack:  # iterative: a chain of 100,000 <use> would overflow Python's recursion
            element, done = stack.pop()
            copied = target(element) if _local(element) in _COPYING else None
            parts = [*element, *([copied] if copied is not None else [])]
            if done:
                count = 1 + sum(drawn[id(p)] for p in parts)
                if marker_cost and has_markers(element):
                    count += _vertices(element) * marker_cost
                drawn[id(element)] = min(cap, count)
                on_path.discard(id(element))
                continue
            if id(element) in drawn:
                continue
            on_path.add(id(element))
            stack.append((element, True))
            for part in parts:
                if id(part) in on_path:
                    raise PlanError("the SVG has a <use> that draws itself; remove the loop")
                if id(part) not in drawn:
                    stack.append((part, False))
        return drawn[id(start)]

    markers = [e for e in root.iter() if _local(e) == "marker"]
    marker_cost = max((drawn_by(m, 0) for m in markers), default=0)
    total = drawn_by(root, marker_cost)
    own = sum(1 for _ in root.iter())
    copies = total - own
    if copies > MAX_USE_COPIES or total > MAX_DRAWN:
        over = "over " if total >= cap else ""
        raise PlanError(
            f"the SVG's <use> references and markers would draw {over}{copies:,} copies of"
            f" elements; at most {MAX_USE_COPIES:,}, and {MAX_DRAWN:,} elements in all"
            " (flatten nested symbols)"
        )
    return removed


def _flatten_style(element: ET.Element) -> int:
    """Make a <style> one clean text: its own text and every child's text and tail, no children.

    Browsers read a sheet from text that follows a child element (`a{}<g/>rect{fill:url(…)}`
    fetched in Chromium), and py-svg-hush moves text into such children, so checking `.text`
    alone misses rules. CDATA sections and comments are already plain text or gone here: the
    parser merges the one and drops the other.
    """
    text = "".join(element.itertext())
    children = len(element)
    for child in list(element):
        element.remove(child)
    element.text = text or None
    if not text:
        return children
    tokens = tinycss2.parse_stylesheet(text, skip_comments=True)
    if any(
        r.type != "qualified-rule" or _css_fetches([*r.prelude, *r.content])
        for r in tokens
        if r.type not in ("whitespace", "comment")
    ):
        element.text, dropped = _clean_stylesheet(text)
        return children + dropped
    return children


def _serialise(root: ET.Element) -> bytes:
    # Default namespace for SVG and the usual xlink prefix, so the output reads like the input.
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    out = io.BytesIO()
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    return out.getvalue()


def run_sanitiser(data: bytes, max_output: int) -> bytes:
    """py-svg-hush's output for `data`, from a process of its own; PlanError if it fails.

    A crash, a timeout or the memory limit ends that process only, and becomes a refusal.
    """
    # The child reads untrusted input: it gets none of our settings or secrets.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LD_LIBRARY_PATH", "LANG")}
    args = [SANITISER_PYTHON, "-I", str(_WORKER), str(max_output)]
    args += [str(SANITISER_MEMORY), str(SANITISER_CPU_S)]
    try:
        done = subprocess.run(
            args, input=data, capture_output=True, timeout=SANITISER_TIMEOUT_S, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise PlanError(
            f"the sanitiser took more than {SANITISER_TIMEOUT_S:.0f} s on this SVG; simplify it"
        ) from exc
    except OSError as exc:
        # fork/exec fails under load (EAGAIN, ENOMEM): the upload is fine, the moment is not.
        logger.warning("SVG sanitiser could not be started: %s", exc)
        raise PlanError(
            "the server could not start the SVG sanitiser just now (it is busy); try again in"
            " a moment"
        ) from exc
    if done.returncode == EXIT_TOO_LARGE or len(done.stdout) > max_output:
        raise PlanError(
            f"the sanitised SVG would be larger than {human_size(max_output)}; flatten its"
            " groups or simplify it"
        )
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        logger.warning("SVG sanitiser failed (exit %s) %s", done.returncode, why[0][:200])
        raise PlanError("the SVG could not be read by the sanitiser; export it again")
    return done.stdout


def sanitise_svg(data: bytes, max_output: int | None = None) -> bytes:
    """A safe SVG from an uploaded one, or PlanError saying why it cannot be made safe."""
    root = _parse_guarded(data)
    if root.tag != f"{{{SVG_NS}}}svg":
        raise PlanError("the file is XML but not an SVG image (its root is not <svg>)")
    del root  # only the check was wanted: the sanitiser reads the upload itself
    filtered = run_sanitiser(data, max_output or OUTPUT_FACTOR * max(len(data), 1_000_000))
    root = _parse_guarded(filtered)
    if root.tag != f"{{{SVG_NS}}}svg":
        raise PlanError("nothing of the SVG survived sanitising")
    removed = _strip_external(root)
    removed += _bound_copies(root)
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
        return CleanPlan(sanitise_svg(data, OUTPUT_FACTOR * max_bytes), "svg")
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
    filename = plan_filename(floor_id, digest, clean.ext)
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
            _unlink_unless_named(store, folder, old.filename)
    logger.info("floor %s plan stored (%s, %d bytes)", floor_id, clean.ext, len(clean.data))
    return plan


def delete_plan(store: Store, config: dict, floor_id: str) -> bool:
    """Forget a floor's plan and remove its file; True when there was one."""
    old = store.remove_plan(floor_id)
    if old is None:
        return False
    if not store.plans_in_database:  # in the database, the bytes went with the record
        _unlink_unless_named(store, plans_dir(config), old.filename)
    return True


def plan_filename(floor_id: str, digest: str, ext: str) -> str:
    """A plan's file name: readable floor id, a digest of the exact id, a digest of the bytes.

    The floor id is sanitised for the file system, so `a:b` and `a_b` read alike; the digest of
    the id keeps their files apart. Plans stored under the older names (no id digest) stay
    readable: every reader takes the name from the plan's record.
    """
    safe_floor = re.sub(r"[^A-Za-z0-9_-]", "_", floor_id)
    floor_digest = hashlib.sha256(floor_id.encode()).hexdigest()[:8]
    return f"{safe_floor}-{floor_digest}-{digest[:16]}.{ext}"


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


def _unlink_unless_named(store: Store, folder: Path, filename: str) -> None:
    """Remove a replaced plan's file unless another floor's record still names it (two floors
    could share one under the older names)."""
    if any(p.filename == filename for p in store.list_plans()):
        return
    _unlink_quietly(folder / Path(filename).name)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
