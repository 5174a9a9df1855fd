"""Settings: every one documented, layered in the right order, secrets kept out of the way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from signage import config

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_in_the_readme_table():
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README.read_text(), re.MULTILINE))
    declared = {s.name for s in config.SETTINGS}
    assert declared - documented == set(), "settings missing from README's table"
    assert documented - declared == set(), "README documents settings that do not exist"


def test_layers_defaults_file_environment_overrides(tmp_path):
    (tmp_path / "signage.toml").write_text(
        'SIGNAGE_POLL_INTERVAL = 30\nDENSITY_API_URL = "http://from-file"\n'
        'SIGNAGE_LOG_LEVEL = "DEBUG"\n'
    )
    values = config.load(
        tmp_path,
        environ={"SIGNAGE_POLL_INTERVAL": "7.5", "DENSITY_CLIENT_ID": "env-id"},
        overrides={"DENSITY_CLIENT_ID": "test-id"},
    )
    assert values["SIGNAGE_POLL_INTERVAL"] == 7.5  # environment beats the file
    assert values["DENSITY_API_URL"] == "http://from-file"  # the file beats the default
    assert values["SIGNAGE_LOG_LEVEL"] == "DEBUG"
    assert values["DENSITY_CLIENT_ID"] == "test-id"  # test overrides beat everything
    assert values["SIGNAGE_STALE_AFTER"] == 120.0  # untouched default
    assert values["SIGNAGE_DATABASE"] == str(tmp_path / "signage.sqlite3")


def test_config_file_named_by_environment(tmp_path):
    other = tmp_path / "elsewhere.toml"
    other.write_text("SIGNAGE_KIOSK_QUEUE = 8\n")
    values = config.load(tmp_path / "instance", environ={"SIGNAGE_CONFIG": str(other)})
    assert values["SIGNAGE_KIOSK_QUEUE"] == 8


def test_bad_value_names_the_setting(tmp_path):
    with pytest.raises(ValueError, match="SIGNAGE_POLL_INTERVAL"):
        config.load(tmp_path, environ={"SIGNAGE_POLL_INTERVAL": "often"})


def test_default_density_url_is_production(tmp_path):
    assert config.load(tmp_path, environ={})["DENSITY_API_URL"] == "https://api.density.io"


def test_default_app_is_not_in_testing_mode(tmp_path, monkeypatch):
    from signage import create_app

    monkeypatch.setenv("SIGNAGE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("SIGNAGE_DATABASE", str(tmp_path / "db.sqlite3"))
    monkeypatch.setenv("SIGNAGE_SECRET_KEY", "k")
    assert not create_app().testing
    assert create_app({"TESTING": True}).testing


def test_allowed_origins_include_public_url():
    origins = config.allowed_origins(
        {
            "SIGNAGE_PUBLIC_URL": "https://signs.example.com/",
            "SIGNAGE_ALLOWED_ORIGINS": "http://a, http://b/",
        }
    )
    assert origins == {"https://signs.example.com", "http://a", "http://b"}
