"""Phone links (the kiosk's QR code) can be revoked from the console, the API and the CLI, and
turning the QR code off and on again issues a new one (issue 15, finding 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from signage.core.protocol import CLOSE_RELOAD
from signage.web import auth

# The simulator answers in its own shapes and in the reference's (tests/conftest.py).


def floor_of(server) -> str:
    return server.svc.directory.floors()[0].id


def phone_path(server, display_id: int) -> str:
    store = server.svc.store
    return f"/phone/{store.phone_credential(store.get_display(display_id))}"


def opens(server, path: str) -> bool:
    """Whether a phone gets the view at `path` (200) rather than a 404."""
    status = server.app.test_client().get(path).status_code
    assert status in (200, 404), status
    return status == 200


def token_headers(svc, role: str = "admin") -> dict[str, str]:
    token = auth.new_api_token()
    svc.store.add_api_token(f"phone-{role}", auth.token_hash(token), role)
    return {"Authorization": f"Bearer {token}"}


def test_console_revokes_the_phone_link_and_screens_reload_with_the_new_code(server, console):
    display, credential = server.add_display(floor_of(server))
    old = phone_path(server, display.id)
    assert opens(server, old)
    page = console.get(f"/admin/displays/{display.id}").get_data(as_text=True)
    action = f"/admin/displays/{display.id}/revoke-phone"
    assert f'action="{action}"' in page and old in page  # the button, and the link it revokes
    # Like every console form: no form token, no change.
    assert console.post(action, csrf=False).status_code in (400, 403)
    assert opens(server, old)
    with connect(server.socket_url(credential), open_timeout=5) as ws:
        ws.recv(timeout=5)  # the snapshot
        done = console.post(action, {"confirm": "yes"})
        assert done.status_code == 302
        with pytest.raises(ConnectionClosed) as closed:  # its screens reload to show the new QR
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == CLOSE_RELOAD
    new = phone_path(server, display.id)
    assert new != old and not opens(server, old) and opens(server, new)
    flashed = console.get(f"/admin/displays/{display.id}").get_data(as_text=True)
    assert "Phone link revoked" in flashed
    # The kiosk credential is another thing: the screen itself stays paired.
    assert server.svc.store.display_for_credential(credential) is not None


def test_api_revokes_the_phone_link_and_documents_it(server):
    client = server.app.test_client()
    headers = token_headers(server.svc)
    display, credential = server.add_display(floor_of(server))
    old = phone_path(server, display.id)
    shown = client.get(f"/api/admin/displays/{display.id}", headers=headers).json
    assert shown["phone_url"].endswith(old)
    viewer = token_headers(server.svc, "viewer")
    path = f"/api/admin/displays/{display.id}/revoke-phone"
    assert client.post(path, headers=viewer).status_code == 403
    assert "phone_url" not in client.get(f"/api/admin/displays/{display.id}", headers=viewer).json
    revoked = client.post(path, headers=headers)
    assert revoked.status_code == 200, revoked.json
    new = phone_path(server, display.id)
    assert revoked.json["phone_url"].endswith(new) and new != old
    assert not opens(server, old) and opens(server, new)
    assert client.post("/api/admin/displays/999/revoke-phone", headers=headers).status_code == 404
    doc = client.get("/api/admin/openapi.json", headers=headers).json
    assert "post" in doc["paths"]["/displays/{display_id}/revoke-phone"]
    assert server.svc.store.display_for_credential(credential) is not None


def test_turning_the_qr_code_off_and_on_issues_a_new_link(server, console):
    client = server.app.test_client()
    headers = token_headers(server.svc)
    display, _ = server.add_display(floor_of(server))
    url = f"/api/admin/displays/{display.id}"
    first = phone_path(server, display.id)
    # Saving with the QR code still on keeps the link (phones that scanned it keep working).
    assert (
        client.patch(url, json={"settings": {"theme": "dark"}}, headers=headers).status_code == 200
    )
    assert phone_path(server, display.id) == first and opens(server, first)
    off = client.patch(url, json={"settings": {"qr": False}}, headers=headers)
    assert off.status_code == 200 and not opens(server, first)
    on = client.patch(url, json={"settings": {"qr": True}}, headers=headers)
    assert on.status_code == 200
    second = phone_path(server, display.id)
    assert second != first and not opens(server, first) and opens(server, second)
    # The console's form does the same.
    form = {"settings_form": "1", "name": display.name, "floor_id": display.floor_id}
    assert console.post(f"/admin/displays/{display.id}", form).status_code == 302  # qr off
    assert not opens(server, second)
    assert console.post(f"/admin/displays/{display.id}", {**form, "qr": "on"}).status_code == 302
    third = phone_path(server, display.id)
    assert third not in (first, second) and opens(server, third) and not opens(server, second)


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signage", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_revokes_the_phone_link_only(tmp_path):
    env = {
        "SIGNAGE_CONFIG": str(tmp_path / "none.toml"),
        "SIGNAGE_DATABASE": str(tmp_path / "db.sqlite3"),
        "SIGNAGE_SECRET_KEY": "cli-test",
        "SIGNAGE_PUBLIC_URL": "http://signage.test",
        "DENSITY_API_TOKEN": "",
        "DENSITY_CLIENT_ID": "",
        "DENSITY_CLIENT_SECRET": "",
    }
    added = run_cli(env, "displays", "add", "--name", "Lobby", "--floor", "spc_1", "--json")
    assert added.returncode == 0, added.stderr
    before = json.loads(added.stdout)
    assert before["phone_url"].startswith("http://signage.test/phone/")
    done = run_cli(env, "displays", "revoke", str(before["id"]), "--phone")
    assert done.returncode == 0, done.stderr
    (after,) = json.loads(run_cli(env, "displays", "list", "--json").stdout)
    assert after["phone_url"] != before["phone_url"] and after["phone_url"] in done.stdout
    assert after["kiosk_url"] == before["kiosk_url"]  # the screen keeps its credential
    missing = run_cli(env, "displays", "revoke", "999", "--phone")
    assert missing.returncode != 0 and "no display 999" in missing.stderr
