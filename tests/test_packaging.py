"""The app finds its templates and static files from a checkout, an editable install and a wheel.

static/ and templates/ sit beside signage/ in the repository; pyproject.toml maps them into the
package at build time, with an explicit list of packages that these tests keep complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import server_config

REPO = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")
ASSETS = ("static", "templates")

# Runs in a child whose import path starts with the folder given (nothing from PYTHONPATH or
# the current directory): it prints where signage and its folders came from, and what the app
# answered for pages and static files.
CHILD = """
import json, sys
if sys.argv[1]:
    sys.path.insert(0, sys.argv[1])
import signage
from signage import create_app
app = create_app(json.loads(sys.argv[2]))
client = app.test_client()
out = {"package": signage.__file__, "static": app.static_folder,
       "templates": app.template_folder, "answers": {}}
for path in ("/", "/kiosk/sw.js", "/static/kiosk/kiosk.js", "/static/admin/editor.js",
             "/admin/login"):
    response = client.get(path, follow_redirects=True)
    out["answers"][path] = [response.status_code, len(response.data)]
print(json.dumps(out))
"""


def _source(tmp_path: Path) -> Path:
    """A copy of what a build reads, so the checkout stays as it was (pip builds in place)."""
    source = tmp_path / "source"
    for name in ("signage", *ASSETS):
        shutil.copytree(REPO / name, source / name, ignore=IGNORE)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    return source


def _pip(*args: str) -> str:
    """Run pip verbosely (the build backend's warnings show only then); return its output.

    pip builds in an isolated environment, with setuptools from the package index, as any
    user's `pip install .` does.
    """
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args, "-v", "--no-deps"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _backend_warnings(log: str) -> list[str]:
    """The build backend's warnings: SetuptoolsDeprecationWarning, a package left out, ..."""
    return [line.strip() for line in log.splitlines() if re.search(r"\w+Warning:", line)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The wheel built from a copy of the checkout, and pip's verbose output."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    built = tmp_path / "dist"
    log = _pip("wheel", "-w", str(built), str(_source(tmp_path)))
    (path,) = built.glob("signage-*.whl")
    return path, log


def _serve(python: str, first_on_path: str, sim, tmp_path: Path) -> dict:
    """What the app answered in a child interpreter, run isolated (-I) from `tmp_path`."""
    config = server_config(sim, tmp_path, SIGNAGE_INSTANCE=str(tmp_path / "instance"))
    env = {**os.environ, "SIGNAGE_CONFIG": str(tmp_path / "none.toml")}
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    done = subprocess.run(
        [python, "-I", str(child), first_on_path, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for path, (status, size) in out["answers"].items():
        assert status == 200 and size > 0, (path, status)
    return out


def _assert_served_from(out: dict, package: Path, assets: Path) -> None:
    """signage came from `package`, its static/ and templates/ from `assets`."""
    assert Path(out["package"]).resolve() == (package / "__init__.py").resolve()
    for name in ASSETS:
        assert Path(out[name]).resolve() == (assets / name).resolve()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_built_wheel_serves_pages_without_the_checkout(wheel, sim, tmp_path):
    path, _ = wheel
    site = tmp_path / "site"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(site)
    # The unpacked wheel goes first, ahead of the editable install's finder, so a file read
    # from the checkout is not found.
    out = _serve(sys.executable, str(site), sim, tmp_path)
    _assert_served_from(out, site / "signage", site / "signage")


def test_a_checkout_serves_pages_from_the_top_level_folders(sim, tmp_path):
    out = _serve(sys.executable, str(REPO), sim, tmp_path)
    _assert_served_from(out, REPO / "signage", REPO)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_editable_install_serves_pages_from_the_top_level_folders(sim, tmp_path):
    """`pip install -e .`, as the Makefile installs, into a venv of its own."""
    source = _source(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    log = _pip("--python", python, "install", "-e", str(source))
    # The dependencies come from this venv: a path line, not a site folder, so its own
    # editable finder for the checkout is not installed.
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = _serve(python, "", sim, tmp_path)
    _assert_served_from(out, source / "signage", source)
    # setuptools says an editable install may pick up folders of the working directory: not
    # a deprecation, and only in pip's verbose output.
    warnings = [w for w in _backend_warnings(log) if "Editable installation" not in w]
    assert warnings == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_wheel_holds_every_subpackage_module_and_asset(wheel):
    """A subpackage missing from pyproject's explicit `packages` list fails here."""
    path, _ = wheel
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    inits = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "signage").rglob("__init__.py"))
    assert len(inits) > 5
    missing = [p for p in inits if p not in names]
    assert missing == [], f"add these packages to [tool.setuptools] packages: {missing}"
    modules = [p.relative_to(REPO).as_posix() for p in (REPO / "signage").rglob("*.py")]
    assert sorted(set(modules) - names) == []
    assets = [
        "signage/" + p.relative_to(REPO).as_posix()
        for name in ASSETS
        for p in (REPO / name).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert len(assets) > 20
    assert sorted(set(assets) - names) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_building_the_wheel_prints_no_warning(wheel):
    """No deprecation from our pyproject.toml, and no data folder left out of `packages`."""
    _, log = wheel
    assert _backend_warnings(log) == []


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
