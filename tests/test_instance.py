"""One instance folder: config file, database, secret key and plans, wherever the app runs from.

The folder is SIGNAGE_INSTANCE, else `instance/` in the working directory; never the installed
package's folder (read-only under systemd, and shared by every server using that install). A
generated secret key lives beside the SQLite database it signs for.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from signage import create_app
from signage.services import PACKAGE_ROOT
from tests.conftest import server_config
from tests.helpers import serve_env


@pytest.fixture
def apps():
    """Apps built in the test, their services closed at the end."""
    made = []

    def build(config: dict):
        app = create_app(config)
        made.append(app)
        return app

    yield build
    for app in made:
        app.extensions["signage"].close()


def test_two_servers_with_different_databases_issue_different_credentials(
    sim, tmp_path, monkeypatch, apps
):
    monkeypatch.setenv("SIGNAGE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("SIGNAGE_SECRET_KEY", raising=False)
    floor = sorted(sim.world.displays.values())[0]
    credentials, keys = [], []
    for name in ("a", "b"):
        config = server_config(
            sim, tmp_path, SIGNAGE_DATABASE=str(tmp_path / name / "signage.sqlite3")
        )
        config["SIGNAGE_SECRET_KEY"] = ""  # generated, as in an installation that sets none
        app = apps(config)
        svc = app.extensions["signage"]
        credentials.append(svc.store.credential(svc.store.add_display("Lobby", floor)))
        keys.append(app.config["SECRET_KEY"])
        key_file = tmp_path / name / "secret_key"
        assert key_file.read_text().strip() == app.config["SECRET_KEY"]
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert keys[0] != keys[1]
    assert credentials[0] != credentials[1]

    # The same database after a restart: the same key, so paired screens keep working.
    config = server_config(sim, tmp_path, SIGNAGE_DATABASE=str(tmp_path / "a" / "signage.sqlite3"))
    config["SIGNAGE_SECRET_KEY"] = ""
    again = apps(config).extensions["signage"]
    assert again.store.credential(again.store.get_display(1)) == credentials[0]


def test_the_instance_folder_holds_config_database_key_and_plans(sim, tmp_path, monkeypatch, apps):
    from signage.store.plans import plans_dir

    instance = tmp_path / "instance-here"
    instance.mkdir()
    (instance / "signage.toml").write_text('SIGNAGE_PHONE_URL = "https://guest.example"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("SIGNAGE_CONFIG", raising=False)
    monkeypatch.delenv("SIGNAGE_DATABASE", raising=False)
    monkeypatch.setenv("SIGNAGE_INSTANCE", str(instance))
    config = server_config(sim, tmp_path, SIGNAGE_SECRET_KEY="")
    del config["SIGNAGE_DATABASE"]
    app = apps(config)
    svc = app.extensions["signage"]
    assert Path(app.instance_path) == instance
    assert svc.config["SIGNAGE_PHONE_URL"] == "https://guest.example"
    assert Path(svc.config["SIGNAGE_DATABASE"]) == instance / "signage.sqlite3"
    assert (instance / "signage.sqlite3").is_file()
    assert (instance / "secret_key").read_text().strip() == app.config["SECRET_KEY"]
    assert plans_dir(svc.config) == instance / "plans"
    assert list(elsewhere.iterdir()) == []


def test_the_default_instance_is_in_the_working_directory_not_the_package(
    sim, tmp_path, monkeypatch, apps
):
    monkeypatch.chdir(tmp_path)
    for name in ("SIGNAGE_CONFIG", "SIGNAGE_DATABASE", "SIGNAGE_INSTANCE"):
        monkeypatch.delenv(name, raising=False)
    config = server_config(sim, tmp_path, SIGNAGE_SECRET_KEY="")
    del config["SIGNAGE_DATABASE"]
    app = apps(config)
    assert Path(app.instance_path) == tmp_path / "instance"
    assert (tmp_path / "instance" / "secret_key").is_file()
    assert (tmp_path / "instance" / "signage.sqlite3").is_file()
    assert not Path(app.instance_path).is_relative_to(PACKAGE_ROOT)


def _cli(env: dict, cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "signage", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_restore_from_another_directory_writes_the_database_serve_reads(sim, tmp_path):
    server_dir = tmp_path / "srv"
    admin_home = tmp_path / "admin-home"
    server_dir.mkdir()
    admin_home.mkdir()
    env = {**os.environ, **serve_env(sim, tmp_path)}
    for name in ("SIGNAGE_DATABASE", "SIGNAGE_SECRET_KEY", "PYTHONPATH"):
        env.pop(name, None)
    env["SIGNAGE_INSTANCE"] = str(server_dir / "instance")
    floor = sorted(sim.world.displays.values())[0]
    repo = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(repo)

    _cli(env, server_dir, "displays", "add", "--name", "Before", "--floor", floor)
    _cli(env, admin_home, "backup", str(tmp_path / "backup.tar.gz"))
    _cli(env, server_dir, "displays", "add", "--name", "After", "--floor", floor)
    _cli(env, admin_home, "restore", "--yes", str(tmp_path / "backup.tar.gz"))

    # What `serve` reads, from its own working directory.
    listed = json.loads(_cli(env, server_dir, "displays", "list", "--json"))
    assert [d["name"] for d in listed] == ["Before"]
    assert not (admin_home / "instance").exists()
    assert (server_dir / "instance" / "signage.sqlite3").is_file()


def test_restore_where_no_database_is_says_where_and_creates_one_only_when_asked(sim, tmp_path):
    server_dir, elsewhere = tmp_path / "srv", tmp_path / "elsewhere"
    server_dir.mkdir()
    elsewhere.mkdir()
    env = {**os.environ, **serve_env(sim, tmp_path)}
    for name in ("SIGNAGE_DATABASE", "SIGNAGE_SECRET_KEY", "SIGNAGE_INSTANCE"):
        env.pop(name, None)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    floor = sorted(sim.world.displays.values())[0]
    _cli(env, server_dir, "displays", "add", "--name", "Before", "--floor", floor)
    archive = str(tmp_path / "backup.tar.gz")
    _cli(env, server_dir, "backup", archive)
    # The review: from another folder without the environment, restore reported success and
    # wrote ./instance/signage.sqlite3, a database serve never reads.
    refused = subprocess.run(
        [sys.executable, "-m", "signage", "restore", "--yes", archive],
        env=env,
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    target = str(elsewhere / "instance" / "signage.sqlite3")
    assert refused.returncode != 0
    assert target in refused.stdout + refused.stderr and "--create" in refused.stderr
    assert not (elsewhere / "instance" / "signage.sqlite3").exists()
    # Asked to, it starts a new database there and says where.
    created = _cli(env, elsewhere, "restore", "--yes", "--create", archive)
    assert target in created
    listed = json.loads(_cli(env, elsewhere, "displays", "list", "--json"))
    assert [d["name"] for d in listed] == ["Before"]


def test_an_existing_database_keeps_the_key_an_older_version_kept_in_the_package(
    sim, tmp_path, monkeypatch, apps
):
    from signage import services
    from signage.store import Store

    legacy = tmp_path / "old-package-instance" / "secret_key"
    legacy.parent.mkdir()
    legacy.write_text("the-key-paired-screens-were-given\n")
    monkeypatch.setattr(services, "_legacy_secret_keys", lambda: [legacy])
    monkeypatch.setenv("SIGNAGE_CONFIG", str(tmp_path / "none.toml"))
    existing = tmp_path / "existing" / "signage.sqlite3"
    existing.parent.mkdir()
    store = Store(str(existing), "the-key-paired-screens-were-given")
    store.migrate()
    store.close()

    config = server_config(sim, tmp_path, SIGNAGE_DATABASE=str(existing))
    config["SIGNAGE_SECRET_KEY"] = ""
    assert apps(config).config["SECRET_KEY"] == "the-key-paired-screens-were-given"
    assert (existing.parent / "secret_key").read_text() == "the-key-paired-screens-were-given"

    # A new database never takes it: unrelated servers must not share a key.
    config = server_config(sim, tmp_path, SIGNAGE_DATABASE=str(tmp_path / "new" / "db.sqlite3"))
    config["SIGNAGE_SECRET_KEY"] = ""
    assert apps(config).config["SECRET_KEY"] != "the-key-paired-screens-were-given"
