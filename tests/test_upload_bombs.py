"""Uploads that are small on the wire and huge in a kiosk: an SVG whose <use> references nest,
a PNG that decodes to far more pixels than its bytes suggest, an animated or 16-bit PNG, and a
chunked body that states no length. Each is refused with a message before anything is stored.

The sanitiser's checks without a server; the logo routes against the real server over loopback.
"""

from __future__ import annotations

import struct
import zlib

import httpx
import pytest

from signage.store.branding import LogoError, check_logo
from signage.store.plans import MAX_USE_COPIES, PlanError, sanitise_svg
from signage.web import auth

SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">{}</svg>'


def use_bomb(levels: int, fan: int = 10) -> bytes:
    """`levels` groups, each drawing the previous one `fan` times: fan**levels rectangles."""
    parts = ['<defs><rect id="l0" width="1" height="1"/>']
    for level in range(1, levels + 1):
        uses = "".join(f'<use href="#l{level - 1}"/>' for _ in range(fan))
        parts.append(f'<g id="l{level}">{uses}</g>')
    parts.append(f'</defs><use href="#l{levels}"/>')
    return SVG.format("".join(parts)).encode()


def test_nested_use_references_past_the_limit_are_refused():
    with pytest.raises(
        PlanError, match=r"references and markers would draw over .* at most 30,000"
    ):
        sanitise_svg(use_bomb(8))  # 10^8 rectangles from about 2 kB
    with pytest.raises(PlanError, match="at most 30,000"):
        sanitise_svg(use_bomb(5))  # 10^5
    assert MAX_USE_COPIES == 30_000


def test_references_are_found_as_the_browser_finds_them():
    """Chromium takes the first element of an id and decodes percent-escapes in a reference: a
    count that took the last, or read "#%6C1" as no reference, let 10^7 copies through."""
    bomb = use_bomb(7).decode()
    # Empty look-alikes after the real groups, with the same ids.
    decoys = "".join(f'<g id="l{n}"/>' for n in range(8))
    with pytest.raises(PlanError, match="at most 30,000"):
        sanitise_svg(bomb.replace("</svg>", decoys + "</svg>").encode())
    escaped = bomb.replace('href="#l', 'href="#%6C')
    with pytest.raises(PlanError, match="at most 30,000"):
        sanitise_svg(escaped.encode())
    # A <use> of nothing draws nothing: removed, not counted, not kept for a browser to find.
    clean = sanitise_svg(
        SVG.format('<rect id="a"/><use href="#nowhere"/><use href="#a"/>').encode()
    )
    assert clean.count(b"<use") == 1


def test_markers_count_once_per_vertex_they_are_drawn_at():
    """A marker is drawn at every vertex of a shape: 20,000 points times a 1,000-copy marker
    took Chromium 35 s, with no nested <use> past the first."""
    points = " ".join(f"{i % 200},{i // 200}" for i in range(20_000))
    inner = "".join('<rect width="1" height="1"/>' for _ in range(5))
    marker = f'<marker id="m"><g id="five">{inner}</g><use href="#five"/></marker>'
    bomb = SVG.format(f'<defs>{marker}</defs><polyline points="{points}" marker-mid="url(#m)"/>')
    with pytest.raises(PlanError, match="references and markers would draw"):
        sanitise_svg(bomb.encode())
    arrow = '<marker id="a"><path d="M0,0 L4,2 L0,4 z"/></marker>'
    lines = "".join(
        f'<line x1="0" y1="{i}" x2="50" y2="{i}" marker-end="url(#a)"/>' for i in range(500)
    )
    assert b"<marker" in sanitise_svg(SVG.format(f"<defs>{arrow}</defs>{lines}").encode())


def test_a_plan_that_repeats_a_symbol_a_thousand_times_is_kept():
    chair = '<symbol id="chair"><rect width="4" height="4"/><circle r="1"/></symbol>'
    uses = "".join(
        f'<use href="#chair" x="{i % 100 * 5}" y="{i // 100 * 5}"/>' for i in range(3000)
    )
    clean = sanitise_svg(SVG.format(chair + uses).encode()).decode()
    assert clean.count("<use") == 3000 and 'id="chair"' in clean
    assert b"<use" in sanitise_svg(use_bomb(3))  # 1,000 copies through three levels
    # 1,000 desks of a 22-path symbol: 22,000 copies, as a real office plan may hold.
    desk = '<symbol id="desk">' + '<path d="M0,0 h4 v2 z"/>' * 22 + "</symbol>"
    desks = "".join(f'<use href="#desk" x="{i % 40 * 6}" y="{i // 40 * 4}"/>' for i in range(1000))
    assert sanitise_svg(SVG.format(desk + desks).encode()).count(b"<use") == 1000


def test_a_use_that_draws_itself_is_refused():
    loop = '<g id="a"><use href="#b"/></g><g id="b"><use href="#a"/></g>'
    with pytest.raises(PlanError, match="draws itself"):
        sanitise_svg(SVG.format(loop).encode())
    xlink = SVG.format('<g id="a"><use xlink:href="#a"/></g>').replace(
        "<svg ", '<svg xmlns:xlink="http://www.w3.org/1999/xlink" '
    )
    with pytest.raises(PlanError, match="draws itself"):
        sanitise_svg(xlink.encode())


def png(width: int, height: int, depth: int = 8, colour: int = 6, extra: bytes = b"") -> bytes:
    """A valid PNG of one flat colour: tiny on the wire whatever its size in pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    channels = {0: 1, 2: 3, 6: 4}[colour]
    row = b"\x00" + b"\x00" * (width * channels * depth // 8)
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + (chunk(b"acTL", struct.pack(">II", 6, 0)) if extra == b"apng" else b"")
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def test_a_png_that_decodes_to_too_many_pixels_is_refused():
    bomb = png(4096, 4096)  # 64 MiB of RGBA in every kiosk showing it
    assert len(bomb) < 100_000
    with pytest.raises(LogoError, match=r"4096×4096 pixels; .* and 4 megapixels"):
        check_logo(bomb)
    assert check_logo(png(2000, 2000))[1] == "image/png"  # 4.0 megapixels: kept


def test_a_16_bit_or_animated_png_is_refused():
    with pytest.raises(LogoError, match="16 bits a channel; save it with 8"):
        check_logo(png(64, 64, depth=16))
    with pytest.raises(LogoError, match="animated; a logo must be a still image"):
        check_logo(png(64, 64, extra=b"apng"))
    assert check_logo(png(64, 64))[1] == "image/png"


def test_the_logo_routes_refuse_every_bomb_and_store_nothing(sim, server):
    display = server.svc.store.add_display("Lobby", sim.world.portfolio.floor_ids[0])
    token = auth.new_api_token()
    server.svc.store.add_api_token("ci", auth.token_hash(token), "admin")
    url = f"{server.url}/api/admin/displays/{display.id}/logo"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=headers, timeout=30) as client:
        for body, kind, words in (
            (use_bomb(8), "image/svg+xml", "at most 30,000"),
            (png(4096, 4096), "image/png", "4 megapixels"),
            (png(64, 64, extra=b"apng"), "image/png", "animated"),
        ):
            answer = client.put(url, content=body, headers={"Content-Type": kind})
            assert answer.status_code == 400, answer.text
            assert words in answer.json()["fields"]["logo"]

        # A chunked body (no Content-Length) past the limit: refused after reading one byte past
        # the limit, not the 40 MB.
        def chunks():
            for _ in range(40):
                yield b"\0" * 1_000_000

        chunked = client.put(url, content=chunks(), headers={"Content-Type": "image/png"})
        assert chunked.status_code == 400, chunked.text
        assert chunked.json()["fields"]["logo"] == "a logo may have at most 512 kB"
        assert chunked.request.headers.get("transfer-encoding") == "chunked"
    assert server.svc.store.get_display(display.id).settings.get("logo_url", "") == ""
