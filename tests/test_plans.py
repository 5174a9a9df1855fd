"""Floor plans: the SVG attack corpus in Chromium, benign plans intact, limits, atomic storage."""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest
from websockets.sync.client import connect

from signage.store import plans
from signage.web import auth
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
        "css_style_child_tail",  # text after a child of <style>: Chromium fetched it
        "css_style_cdata_child_import",
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
        # Its screens load their page again to show it (the plan is part of the page).
        kinds: list[str] = []
        while "reload" not in kinds and len(kinds) < 20:  # heartbeats come in between
            kinds.append(json.loads(ws.recv(timeout=5))["type"])
        assert kinds[-1] == "reload", kinds
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
    assert console.post(f"/admin/plans/{floor}/delete", {"confirm": "yes"}).status_code == 302
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


# -- depth and size bombs (issue 15, finding 3) ---------------------------------------------------
def nested(depth: int, leaves: int = 1) -> bytes:
    """An SVG with `depth` nested groups around `leaves` rectangles."""
    return (
        b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
        + b"<g>" * depth
        + b'<rect width="1" height="1"/>' * leaves
        + b"</g>" * depth
        + b"</svg>"
    )


def test_nesting_and_element_count_are_limited_while_parsing():
    assert b"<rect" in plans.check_upload(nested(plans.MAX_DEPTH - 2), LIMIT).data
    for depth in (plans.MAX_DEPTH + 1, 1000, 20_000):
        with pytest.raises(plans.PlanError, match=f"nested more than {plans.MAX_DEPTH} deep"):
            plans.check_upload(nested(depth), LIMIT)
    many = nested(1, plans.MAX_ELEMENTS)
    with pytest.raises(plans.PlanError, match=f"more than {plans.MAX_ELEMENTS:,} elements"):
        plans.check_upload(many, len(many))


def test_a_crash_inside_the_sanitiser_is_a_refusal_and_this_process_lives_on():
    """Depth 50,000 aborts py-svg-hush (SIGABRT in Rust): only its own process may die."""
    with pytest.raises(plans.PlanError, match="could not be read by the sanitiser"):
        plans.run_sanitiser(nested(50_000), LIMIT)
    # Depth 20,000 took 1.6 GB inside the server: now the sanitiser's memory limit ends it.
    with pytest.raises(plans.PlanError, match="could not be read by the sanitiser"):
        plans.run_sanitiser(nested(20_000), 10**10)
    # A sanitiser output above its limit is refused, not stored.
    with pytest.raises(plans.PlanError, match="larger than"):
        plans.run_sanitiser(nested(200), 10_000)


def test_a_sanitiser_that_takes_too_long_is_stopped(monkeypatch):
    monkeypatch.setattr(plans, "SANITISER_TIMEOUT_S", 0.001)
    with pytest.raises(plans.PlanError, match="took more than"):
        plans.run_sanitiser(nested(10), LIMIT)


def test_a_sanitiser_that_cannot_be_started_is_a_refusal_saying_try_again(
    server, console, floor, monkeypatch
):
    """fork/exec can fail under load (EAGAIN, ENOMEM): that is a 400 saying so, not a 500.
    A configured interpreter that does not exist makes the spawn fail the same way."""
    monkeypatch.setattr(plans, "SANITISER_PYTHON", "/nonexistent/python3")
    with pytest.raises(plans.PlanError, match="try again"):
        plans.run_sanitiser(nested(3), LIMIT)
    refused = upload(console, floor, nested(3))
    assert refused.status_code == 400
    assert "try again" in refused.get_data(as_text=True)
    assert "/nonexistent" not in refused.get_data(as_text=True)  # no server paths shown
    assert server.svc.store.get_plan(floor) is None


def test_the_console_refuses_a_depth_bomb_with_a_message(server, console, floor):
    refused = upload(console, floor, nested(50_000))
    assert refused.status_code == 400
    assert "nested more than 64 deep" in refused.get_data(as_text=True)
    assert server.svc.store.get_plan(floor) is None


def vm_rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (MiB)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def gunicorn_worker(proc) -> int:
    """The one gunicorn worker of a `signage serve` process."""
    pid = proc.proc.pid
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        (worker,) = (int(p) for p in fh.read().split())
    return worker


@pytest.mark.slow
def test_depth_bombs_uploaded_to_the_served_app_get_a_400_and_leave_memory_alone(sim, tmp_path):
    import time

    import httpx

    from tests.helpers import ServeProcess, serve_env

    proc = ServeProcess(serve_env(sim, tmp_path))
    token = proc.cli("admin", "token", "create", "bombs").strip()
    floor_id = sorted(set(sim.world.displays.values()))[0]
    proc.start(tmp_path / "serve.log")
    try:
        worker = gunicorn_worker(proc)
        url = f"{proc.url}/api/admin/floors/{floor_id}/plan"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/svg+xml"}
        ok = httpx.put(url, content=nested(3), headers=headers, timeout=30)
        assert ok.status_code == 200, ok.text  # warmed up: the first upload's imports are paid
        before = vm_rss_mib(worker)
        for depth in (20_000, 50_000):
            started = time.monotonic()
            refused = httpx.put(url, content=nested(depth), headers=headers, timeout=60)
            took = time.monotonic() - started
            after = vm_rss_mib(worker) if gunicorn_worker(proc) == worker else float("nan")
            print(
                f"depth {depth}: {refused.status_code} in {took * 1000:.0f} ms,"
                f" worker RSS {before:.0f} -> {after:.0f} MiB"
            )
            assert refused.status_code == 400, (depth, refused.status_code, refused.text[:200])
            assert "nested more than" in refused.json()["fields"]["plan"], refused.text
            assert after - before < 100, (depth, before, after)
        assert gunicorn_worker(proc) == worker  # the same worker: nothing crashed
        assert httpx.get(f"{proc.url}/healthz", timeout=5).status_code == 200
    finally:
        proc.stop()


# -- styles that fetch (issue 15, finding 12) -----------------------------------------------------
CSS_VECTORS = ("css_image_set", "css_escaped_url", "css_media_import", "css_import", "css_url_fill")


@pytest.mark.parametrize("vector", VECTORS, ids=lambda p: p.stem)
def test_no_style_is_left_that_could_fetch(vector):
    """url(), image-set() and @import go from <style> and style=, escaped spellings included;
    the stored file must fetch nothing wherever it is opened (a backup, a browser)."""
    if vector.stem in REFUSED:
        return
    text = plans.check_upload(vector.read_bytes(), LIMIT).data.decode()
    assert "evil.example" not in text
    assert not re.search(r"(?i)image-set|@import|\\", text)
    assert not re.search(r"(?i)url\(\s*['\"]?(?!#)", text)


def test_styles_keep_what_does_not_fetch():
    text = plans.check_upload((VECTORS[0].parent / "css_image_set.svg").read_bytes(), LIMIT)
    styles = text.data.decode()
    assert "fill:#8ac" in styles.replace(" ", "") and "fill:#c84" in styles.replace(" ", "")
    mixed = (
        b'<svg xmlns="http://www.w3.org/2000/svg"><style>rect { fill: #8ac;'
        b" background: url(http://evil.example/x.png) } @media screen { rect { stroke: red } }"
        b' .hatch { fill: url(#hatch) }</style><rect width="1" height="1"/></svg>'
    )
    kept = plans.check_upload(mixed, LIMIT).data.decode().replace(" ", "")
    assert "fill:#8ac" in kept and "@mediascreen{rect{stroke:red}}" in kept
    assert "fill:url(#hatch)" in kept and "evil" not in kept
    assert set(CSS_VECTORS) <= {p.stem for p in VECTORS}


STYLE_CHILD_VECTORS = (
    "css_style_child_tail",
    "css_style_cdata_child_import",
    "css_style_comment_cdata_url",
    "css_style_nested_child_text",
    "css_style_other_namespace",
)


@pytest.mark.parametrize("name", STYLE_CHILD_VECTORS)
def test_a_style_is_flattened_to_one_clean_text(name):
    """Issue 15 review: rules after a child of <style> (`a{}<g/>rect{fill:url(…)}`), in CDATA,
    after a comment, inside children, or in an XHTML <style> were not all checked."""
    from xml.etree import ElementTree as ET

    clean = plans.check_upload((VECTORS[0].parent / f"{name}.svg").read_bytes(), LIMIT).data
    styles = [e for e in ET.fromstring(clean).iter() if e.tag.rsplit("}", 1)[-1] == "style"]
    assert styles
    for style in styles:
        assert len(style) == 0, "a <style> keeps no child elements"
        text = style.text or ""
        assert "evil" not in text and "@import" not in text and "url(" not in text, text
    if name not in ("css_style_other_namespace", "css_style_nested_child_text"):
        assert "fill:red" in styles[0].text.replace(" ", "")  # what fetches nothing stays


# -- plan file names (issue 15, finding 16) -------------------------------------------------------
def test_floors_whose_ids_sanitise_alike_do_not_share_a_plan_file(server):
    store, config = server.svc.store, server.svc.config
    same = png(6, 6)
    colon = plans.store_plan(store, config, "a:b", same, "test")
    under = plans.store_plan(store, config, "a_b", same, "test")
    assert colon.filename != under.filename
    assert plans.delete_plan(store, config, "a:b")
    assert plans.read_plan(config, store.get_plan("a_b")) == same


def test_plans_stored_under_the_old_names_stay_readable_and_are_not_removed_while_shared(server):
    """Names from before (floor id sanitised + content digest) are read as recorded, and a
    file two floors already share outlives the removal of one of them."""
    import hashlib
    from dataclasses import replace

    store, config = server.svc.store, server.svc.config
    data = png(5, 5)
    digest = hashlib.sha256(data).hexdigest()
    old_name = f"x_y-{digest[:16]}.png"
    plans.atomic_write(plans.plans_dir(config) / old_name, data)
    first = plans.Plan("x:y", old_name, "image/png", len(data), digest, "2026-01-01T00:00:00", "t")
    store.put_plan(first)
    store.put_plan(replace(first, floor_id="x_y"))
    assert plans.read_plan(config, store.get_plan("x:y")) == data
    assert plans.delete_plan(store, config, "x:y")
    assert plans.read_plan(config, store.get_plan("x_y")) == data
    plans.store_plan(store, config, "x_y", png(7, 7), "test")  # replaced: now the file can go
    assert not (plans.plans_dir(config) / old_name).exists()
