"""A built wheel carries the templates and static files and serves pages without the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import server_config

REPO = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")

# Runs in a child whose import path holds only the unpacked wheel (and the venv's
# dependencies): it prints where signage came from and what the app answered.
CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import signage
from signage import create_app
app = create_app(json.loads(sys.argv[2]))
client = app.test_client()
out = {"package": signage.__file__}
for path in ("/", "/kiosk/sw.js", "/static/kiosk/kiosk.js", "/static/admin/editor.js",
             "/admin/login"):
    response = client.get(path, follow_redirects=True)
    out[path] = [response.status_code, len(response.data)]
print(json.dumps(out))
"""


@pytest.mark.slow
# pip builds in an isolated environment (setuptools from the package index, as any user's
# `pip install .` does): allow for a slow index beyond the suite's 120 s per test.
@pytest.mark.timeout(600)
def test_a_built_wheel_serves_pages_without_the_checkout(sim, tmp_path):
    # Built from a copy: pip builds in the source tree, and the checkout stays as it was.
    source = tmp_path / "source"
    shutil.copytree(REPO / "signage", source / "signage", ignore=IGNORE)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    built = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(built), str(source)],
        check=True,
        timeout=600,
        cwd=tmp_path,
    )
    (wheel,) = built.glob("signage-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        site = tmp_path / "site"
        archive.extractall(site)
    shipped = [
        p.relative_to(REPO).as_posix()
        for folder in ("signage/templates", "signage/static")
        for p in (REPO / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert len(shipped) > 20
    missing = sorted(set(shipped) - names)
    assert missing == [], missing

    config = server_config(sim, tmp_path)
    env = {**os.environ, "SIGNAGE_CONFIG": str(tmp_path / "none.toml")}
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    # -I: neither the checkout nor PYTHONPATH is on the path; the unpacked wheel goes first,
    # ahead of the editable install's finder, so a file read from the checkout is not found.
    done = subprocess.run(
        [sys.executable, "-I", str(child), str(site), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(out.pop("package")).is_relative_to(site)
    for path, (status, size) in out.items():
        assert status == 200 and size > 0, (path, status)


# -- what we run is pinned -----------------------------------------------------------------------
def _pyproject() -> dict:
    import tomllib

    with (REPO / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def _constraints() -> dict[str, str]:
    """constraints.txt as {normalised name: exact version}; anything but `name==version` fails."""
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version and not any(c in version for c in "<>=!~*,;"), line
        pins[canonicalize_name(name)] = version
    return pins


def _runtime_requirements():
    """pyproject's dependencies and its `scale` extra (a fleet's runtime), as Requirements."""
    from packaging.requirements import Requirement

    project = _pyproject()["project"]
    return [
        Requirement(r)
        for r in [*project["dependencies"], *project["optional-dependencies"]["scale"]]
    ]


def test_constraints_pin_every_runtime_dependency_within_pyproject_ranges():
    from packaging.utils import canonicalize_name

    pins = _constraints()
    for requirement in _runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {requirement}"
        )


def test_constraints_pin_the_dependencies_of_the_dependencies():
    """Transitively: what each pinned package needs (its installed metadata) is pinned too."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = _constraints()
    todo = [(r, set(r.extras)) for r in _runtime_requirements()]
    seen: set[str] = set()
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} (needed transitively) is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, requirement)
        if (name, tuple(sorted(extras))) in seen:
            continue
        seen.add((name, tuple(sorted(extras))))
        for text in metadata.distribution(name).requires or []:
            needed = Requirement(text)
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in ["", *extras]
            ):
                todo.append((needed, set(needed.extras)))
    # Nothing pinned that nothing needs: a stale pin would hide a removed dependency.
    assert set(pins) == {n for n, _ in seen}, sorted(set(pins) - {n for n, _ in seen})


def test_the_license_is_an_spdx_string_that_the_build_backend_understands():
    """A `license = { text = ... }` table makes every install print a deprecation warning."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    data = _pyproject()
    assert data["project"]["license"] == "MIT"
    (setuptools,) = [
        Requirement(r) for r in data["build-system"]["requires"] if r.startswith("setuptools")
    ]
    # PEP 639 license expressions: setuptools 77 and later.
    floors = [Version(s.version) for s in setuptools.specifier if s.operator in (">=", "==")]
    assert floors and min(floors) >= Version("77"), setuptools
