"""A display's booking settings through the admin API and to its kiosk page's config: stored with
the display, checked field by field (400 naming the field), carried to the page."""

from __future__ import annotations

import json
import re

from signage.web import auth

BOOKING_KEYS = ("booking_margin_min", "booking_grace_min", "offer_booked_empty", "free_for_min")


def test_booking_settings_through_the_api_and_into_the_kiosk_config(server) -> None:
    token = auth.new_api_token()
    server.svc.store.add_api_token("bookings", auth.token_hash(token), "admin")
    headers = {"Authorization": f"Bearer {token}"}
    client = server.app.test_client()
    floor = server.svc.directory.floors()[0].id
    created = client.post(
        "/api/admin/displays", json={"name": "Lobby", "floor_id": floor}, headers=headers
    )
    assert created.status_code == 201, created.json
    display = created.json
    defaults = {k: display["settings"][k] for k in BOOKING_KEYS}
    assert defaults == {
        "booking_margin_min": 10,
        "booking_grace_min": 10,
        "offer_booked_empty": False,
        "free_for_min": 0,
    }
    url = f"/api/admin/displays/{display['id']}"
    chosen = {
        "booking_margin_min": 15,
        "booking_grace_min": 5,
        "offer_booked_empty": True,
        "free_for_min": 30,
    }
    patched = client.patch(url, json={"settings": chosen}, headers=headers)
    assert patched.status_code == 200, patched.json
    assert {k: patched.json["settings"][k] for k in BOOKING_KEYS} == chosen
    bad = client.patch(
        url,
        json={"settings": {"booking_grace_min": 9999, "offer_booked_empty": 1}},
        headers=headers,
    )
    assert bad.status_code == 400
    assert {"booking_grace_min", "offer_booked_empty"} <= set(bad.json["fields"]), bad.json
    # Stored with the display (the bad change left it as it was), and on its kiosk page.
    stored = server.svc.store.get_display(display["id"])
    assert {k: stored.settings[k] for k in BOOKING_KEYS} == chosen
    page = client.get(f"/kiosk/{server.svc.store.credential(stored)}").get_data(as_text=True)
    block = re.search(r'<script id="kiosk-config" type="application/json">(.*?)</script>', page)
    config = json.loads(block[1])
    assert {k: config["settings"][k] for k in BOOKING_KEYS} == chosen
