"""Test knobs (`?no_contact_s=`, `?clock=`, `?tz=`) only in SIGNAGE_TEST_MODE, never in production.

A kiosk URL with `?no_contact_s=100000` kept its rooms "free" long after the server was gone.
The knobs are now parsed by the server and handed to the page in its config only when test mode
is on with a loopback Density; the page's scripts no longer read them from their own URL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from signage import config as settings
from signage import create_app

PRODUCTION = "https://api.density.io"
STATIC = Path(__file__).resolve().parent.parent / "static" / "kiosk"


def page_config(body: str) -> dict:
    found = re.search(r'<script id="kiosk-config" type="application/json">(.*?)</script>', body)
    assert found, "the page has no kiosk-config block"
    return json.loads(found.group(1))


@pytest.fixture
def make_app(tmp_path, monkeypatch) -> Iterator:
    """An app with no Density credentials (nothing is ever called), one display; closed after."""
    monkeypatch.setenv("SIGNAGE_CONFIG", str(tmp_path / "none.toml"))
    apps = []

    def factory(**overrides):
        app = create_app(
            {
                "TESTING": True,
                "DENSITY_API_TOKEN": "",
                "DENSITY_CLIENT_ID": "",
                "DENSITY_CLIENT_SECRET": "",
                "SIGNAGE_DATABASE": str(tmp_path / f"db{len(apps)}.sqlite3"),
                "SIGNAGE_SECRET_KEY": "test-mode",
                **overrides,
            }
        )
        apps.append(app)
        svc = app.extensions["signage"]
        display = svc.store.add_display("Lobby", "spc_floor_1")
        svc.store.update_display_settings(display.id, {"qr": True})
        display = svc.store.get_display(display.id)
        return app, svc.store.credential(display), svc.store.phone_credential(display)

    yield factory
    for app in apps:
        app.extensions["signage"].close()


KNOBS = "?no_contact_s=100000&clock=2025-01-15T22:30:00Z&tz=Europe/Berlin"


@pytest.mark.parametrize(
    "overrides",
    [
        {"DENSITY_API_URL": PRODUCTION},  # production, test mode off (the default)
        {"DENSITY_API_URL": PRODUCTION, "SIGNAGE_TEST_MODE": True},  # never with real Density
        {"DENSITY_API_URL": "http://127.0.0.1:9"},  # the simulator, but test mode is off
    ],
    ids=["production", "production-with-test-mode", "simulator-without-test-mode"],
)
def test_a_production_page_never_receives_the_knobs(make_app, overrides) -> None:
    app, credential, phone = make_app(**overrides)
    client = app.test_client()
    for path in (f"/kiosk/{credential}", f"/phone/{phone}"):
        response = client.get(path + KNOBS)
        assert response.status_code == 200, path
        body = response.get_data(as_text=True)
        config = page_config(body)
        assert "test" not in config
        assert "100000" not in body and "Europe/Berlin" not in body
        # Not even a malformed knob is looked at: it is simply not there.
        assert client.get(path + "?no_contact_s=lots").status_code == 200


def test_test_mode_with_the_simulator_hands_the_knobs_to_the_page(make_app) -> None:
    app, credential, phone = make_app(DENSITY_API_URL="http://127.0.0.1:9", SIGNAGE_TEST_MODE=True)
    client = app.test_client()
    for path in (f"/kiosk/{credential}", f"/phone/{phone}"):
        config = page_config(client.get(path + KNOBS).get_data(as_text=True))
        assert config["test"] == {
            "no_contact_s": 100000.0,
            "clock": "2025-01-15T22:30:00Z",
            "tz": "Europe/Berlin",
        }
        # Test mode without knobs still tells the page it may take the window hooks.
        assert page_config(client.get(path).get_data(as_text=True))["test"] == {}
    for bad in ("?no_contact_s=lots", "?no_contact_s=-1", "?clock=teatime", "?tz=Mars/Olympus"):
        response = client.get(f"/kiosk/{credential}{bad}")
        assert response.status_code == 400, bad
        assert bad.split("=")[0].lstrip("?") in response.get_data(as_text=True)


def test_the_page_scripts_never_read_the_knobs_from_their_url() -> None:
    for name in ("kiosk.js", "floors.js"):
        source = (STATIC / name).read_text()
        for knob in ("no_contact_s", "clock", "tz"):
            assert f'params.get("{knob}")' not in source, (name, knob)
            assert f"params.get('{knob}')" not in source, (name, knob)
        # The window hooks are honoured only when the server's config says test mode.
        assert "config.test" in source


@pytest.mark.parametrize(
    ("url", "conflict"),
    [
        (PRODUCTION, True),
        ("https://density.example.com", True),
        ("http://10.0.0.5:8765", True),
        ("", True),
        ("http://127.0.0.1:8765", False),
        ("http://localhost:8765", False),
        ("http://[::1]:8765", False),
    ],
)
def test_test_mode_conflicts_only_with_a_non_loopback_density(url: str, conflict: bool) -> None:
    on = {"SIGNAGE_TEST_MODE": True, "DENSITY_API_URL": url}
    assert (settings.mode_conflict(on) is not None) is conflict
    assert settings.knobs_allowed(on) is not conflict
    assert settings.mode_conflict({"SIGNAGE_TEST_MODE": False, "DENSITY_API_URL": url}) is None


def test_serve_refuses_test_mode_with_a_production_density(tmp_path) -> None:
    env = {
        **os.environ,
        "SIGNAGE_CONFIG": str(tmp_path / "none.toml"),
        "SIGNAGE_DATABASE": str(tmp_path / "db.sqlite3"),
        "SIGNAGE_SECRET_KEY": "test-mode",
        "DENSITY_API_URL": PRODUCTION,
        "DENSITY_API_TOKEN": "tok_x",
        "SIGNAGE_TEST_MODE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "signage", "serve", "--port", "0", "--server", "waitress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SIGNAGE_TEST_MODE is on while DENSITY_API_URL is https://api.density.io" in done.stderr
    assert "serving on" not in done.stdout
