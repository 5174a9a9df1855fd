"""Floor plans: the SVG attack corpus in Chromium, benign plans intact, limits, atomic storage."""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from signage import auth, plans
from signage.hub import CLOSE_RELOAD
from tests.svg_harness import observe, screenshot

VECTORS = sorted((Path(__file__).parent / "svg_vectors").glob("*.svg"))
BENIGN = sorted((Path(__file__).parent / "svg_vectors" / "benign").glob("*.svg"))
# Refused outright (with a message) rather than cleaned: DTDs and entities, and a document
# whose SVG namespace is only under a prefix (nothing of it survives the allowlist).
REFUSED = {
    "entity_bomb",
    "entity_internal_script",
    "external_dtd",
    "xxe_file",
    "xxe_http",
    "script_prefixed_svg_ns",
}
LIMIT = 5_000_000


def png(width: int, height: int) -> bytes:
    """A valid PNG of the given size (one grey pixel row repeated)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(min(height, 4)))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg_header(width: int, height: int) -> bytes:
    """The start of a baseline JPEG: enough for the size check."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


# -- the corpus ----------------------------------------------------------------------------------
def test_the_corpus_covers_the_issue_s_attack_families():
    names = {p.stem for p in VECTORS}
    assert len(names) >= 30
    families = (
        "script_",
        "onload",
        "onclick",
        "a_javascript",
        "a_entity_encoded",
        "set_xlink_href_retarget",
        "animate_href_retarget",
        "foreignobject_",
        "use_external",
        "image_external",
        "feimage_external",
        "css_import",
        "css_url",
        "xxe_",
        "entity_bomb",
    )
    for family in families:
        assert any(n.startswith(family) for n in names), family


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("vector", VECTORS, ids=lambda p: p.stem)
def test_sanitised_vector_runs_no_script_and_fetches_nothing(browser, vector):
    try:
        clean = plans.check_upload(vector.read_bytes(), LIMIT)
    except plans.PlanError as exc:
        assert vector.stem in REFUSED, f"unexpectedly refused: {exc}"
        assert len(str(exc)) > 20  # a message an admin can act on
        return
    assert vector.stem not in REFUSED, "an XXE/entity vector must be refused, not cleaned"
    text = clean.data.decode()
    assert not re.search(r"(?i)script|evil\.example|foreignobject|\son[a-z]+=|@import", text)
    assert not re.search(r"(?i)(href|src)=\"(?!#)", text), "only same-document references"
    for mode in ("document", "inline"):
        seen = observe(browser, clean.data, mode)
        assert not seen.harmful, (mode, seen)


@pytest.mark.browser
@pytest.mark.slow
def test_the_harness_catches_the_raw_vectors(browser):
    """Calibration: unsanitised, most vectors do run or fetch, so silence above means something."""
    fired = {p.stem for p in VECTORS if observe(browser, p.read_bytes(), "document").harmful}
    assert len(fired) >= 25, sorted(fired)
    for must in (
        "script_inline",
        "onload_root",
        "a_javascript",
        "animate_href_retarget",
        "image_external",
        "feimage_external",
        "css_import",
        "foreignobject_script",
    ):
        assert must in fired, must


@pytest.mark.parametrize("plan", BENIGN, ids=lambda p: p.stem)
def test_benign_plans_keep_their_shapes(plan):
    from xml.etree import ElementTree as ET

    raw = plan.read_bytes()
    clean = plans.check_upload(raw, LIMIT).data

    def shapes(data: bytes) -> tuple[Counter, set[str]]:
        root = ET.fromstring(data)
        tags = Counter(
            e.tag.rsplit("}", 1)[-1]
            for e in root.iter()
            if e.tag.rsplit("}", 1)[-1]
            in {
                "rect",
                "path",
                "polygon",
                "polyline",
                "circle",
                "ellipse",
                "line",
                "text",
                "use",
                "g",
            }
        )
        ids = {e.get("id") for e in root.iter() if e.get("id")}
        return tags, ids

    assert shapes(clean) == shapes(raw)
    assert b"url(#hatch)" in clean or b"url(#" not in raw  # same-document paint servers stay


@pytest.mark.browser
@pytest.mark.parametrize("plan", BENIGN, ids=lambda p: p.stem)
def test_benign_plans_render_the_same_after_sanitising(browser, plan):
    raw = plan.read_bytes()
    clean = plans.check_upload(raw, LIMIT).data
    assert screenshot(browser, clean) == screenshot(browser, raw)


# -- kinds and sizes -------------------------------------------------------------------------------
def test_png_and_jpeg_pass_unchanged_and_huge_images_are_refused():
    small = png(640, 480)
    assert plans.check_upload(small, LIMIT).data == small
    assert plans.check_upload(small, LIMIT).content_type == "image/png"
    jpeg = jpeg_header(800, 600)
    assert plans.check_upload(jpeg, LIMIT).content_type == "image/jpeg"
    with pytest.raises(plans.PlanError, match="at most 16384 on a side"):
        plans.check_upload(png(20000, 10), LIMIT)
    with pytest.raises(plans.PlanError, match="megapixels"):
        plans.check_upload(jpeg_header(12000, 12000), LIMIT)


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"GIF89a....", "must be SVG, PNG or JPEG"),
        (b"<html><script>x</script></html>", "must be SVG, PNG or JPEG"),
        (b"<?xml version='1.0'?><plan/>", "not an SVG"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><rect></svg>", "not well-formed"),
        (b"\x89PNG\r\n\x1a\nshort", "not a valid PNG"),
        (b"<svg " + b"x" * (LIMIT + 1), "at most 5.0 MB"),
    ],
)
def test_refusals_say_why(data, message):
    with pytest.raises(plans.PlanError, match=message):
        plans.check_upload(data, LIMIT)


# -- storage -------------------------------------------------------------------------------------
@pytest.fixture
def floor(server):
    return server.svc.directory.floors()[0].id


def upload(console, floor_id, data: bytes, name: str = "plan.svg"):
    import io

    return console.post(
        f"/admin/plans/{floor_id}",
        {"plan": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_upload_through_the_console_is_sanitised_stored_and_replaced(server, console, floor):
    folder = plans.plans_dir(server.svc.config)
    dirty = (VECTORS[0].parent / "script_inline.svg").read_bytes()
    display, credential = server.add_display(floor)
    with connect(server.socket_url(credential), open_timeout=5) as ws:
        ws.recv(timeout=5)
        assert upload(console, floor, dirty).status_code == 302
        with pytest.raises(ConnectionClosed) as closed:  # its screens reload to show it
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == CLOSE_RELOAD
    first = server.svc.store.get_plan(floor)
    stored = (folder / first.filename).read_bytes()
    assert b"script" not in stored and b"<rect" in stored
    served = console.get(f"/admin/plans/{floor}/file")
    assert served.data == stored and served.mimetype == "image/svg+xml"
    assert served.headers["Content-Security-Policy"].startswith("default-src 'none'")
    page = console.get("/admin/plans").get_data(as_text=True)
    assert f"/admin/plans/{floor}/file" in page
    # Replacing removes the old file; nothing temporary is left behind.
    assert upload(console, floor, png(10, 10), "plan.png").status_code == 302
    second = server.svc.store.get_plan(floor)
    assert second.content_type == "image/png" and second.filename != first.filename
    assert sorted(p.name for p in folder.iterdir()) == [second.filename]
    assert console.post(f"/admin/plans/{floor}/delete").status_code == 302
    assert server.svc.store.get_plan(floor) is None and list(folder.iterdir()) == []


def test_bad_uploads_get_a_clear_message(server, console, floor):
    bomb = (VECTORS[0].parent / "entity_bomb.svg").read_bytes()
    refused = upload(console, floor, bomb)
    assert refused.status_code == 400
    assert "DTD or entities" in refused.get_data(as_text=True)
    server.svc.config["SIGNAGE_PLAN_MAX_BYTES"] = 10_000
    big = upload(console, floor, b"<svg>" + b" " * 200_000 + b"</svg>")
    assert big.status_code == 413
    assert "larger than the 10 kB a plan may have" in big.get_data(as_text=True)
    assert server.svc.store.get_plan(floor) is None


def test_a_failed_write_records_nothing_and_keeps_the_old_plan(server, floor, monkeypatch):
    store, config = server.svc.store, server.svc.config
    old = plans.store_plan(store, config, floor, png(4, 4), "test")
    folder = plans.plans_dir(config)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(plans.os, "replace", broken_replace)
    with pytest.raises(OSError):
        plans.store_plan(store, config, floor, png(8, 8), "test")
    assert store.get_plan(floor) == old
    assert sorted(p.name for p in folder.iterdir()) == [old.filename]  # no temporary file left


def test_api_uploads_and_serves_plans(server, floor):
    token = auth.new_api_token()
    server.svc.store.add_api_token("ci", auth.token_hash(token), "admin")
    headers = {"Authorization": f"Bearer {token}"}
    client = server.app.test_client()
    svg = (VECTORS[0].parent / "benign" / "office.svg").read_bytes()
    put = client.put(
        f"/api/admin/floors/{floor}/plan",
        data=svg,
        headers={**headers, "Content-Type": "image/svg+xml"},
    )
    assert put.status_code == 200 and put.json["content_type"] == "image/svg+xml"
    got = client.get(f"/api/admin/floors/{floor}/plan", headers=headers)
    assert got.status_code == 200 and b"room-fjord" in got.data
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    floors = client.get("/api/admin/floors", headers=headers).json["floors"]
    assert [f["has_plan"] for f in floors if f["id"] == floor] == [True]
    bomb = (VECTORS[0].parent / "xxe_file.svg").read_bytes()
    refused = client.put(f"/api/admin/floors/{floor}/plan", data=bomb, headers=headers)
    assert refused.status_code == 400 and "DTD" in json.dumps(refused.json)
    assert client.delete(f"/api/admin/floors/{floor}/plan", headers=headers).status_code == 204
