"""`signage check`: walk what `serve` needs from Density and print a table of the steps."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import click
import httpx

from signage import config as settings
from signage.core.directory import build_tree
from signage.density.client import DensityClient
from signage.density.errors import AuthError, DensityError, RateLimited, StreamClosed, Unavailable
from signage.density.stream import PresenceStream
from signage.store import Store
from signage.store.db import is_postgres

logger = logging.getLogger(__name__)

CHECK_SOCKET_WAIT_S = 10.0  # how long `check` waits for the first frame on the floor's socket


class _CheckProblem(Exception):
    """A step's answer that is not an error from Density but still fails the step."""


class _CheckWarning(Exception):
    """A step's answer worth a look that serve copes with: a warning, not a failure."""


class _CheckRun:
    """The rows of one `signage check`, printed as they complete."""

    WIDTH = 34

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []  # (step, ok/FAIL/warn/skip, reason)
        click.echo(f"{'step':<{self.WIDTH}} {'result':<6} reason")

    def add(self, step: str, result: str, reason: str = "") -> None:
        self.rows.append((step, result, reason))
        click.echo(f"{step:<{self.WIDTH}} {result:<6} {reason}".rstrip())

    def attempt(self, step: str, action: Callable[[], Any], describe: Callable[[Any], str]) -> Any:
        """Run one step against Density: its result, or None when it failed (row added)."""
        try:
            result = action()
        except AuthError as exc:
            self.add(step, "FAIL", f"refused by Density ({exc}); check the credentials")
        except RateLimited as exc:
            self.add(step, "FAIL", f"rate limited by Density ({exc}); try again shortly")
        except StreamClosed as exc:
            self.add(step, "FAIL", f"{exc}")
        except Unavailable as exc:
            self.add(
                step, "FAIL", f"Density unreachable ({exc}); check DENSITY_API_URL and the network"
            )
        except DensityError as exc:
            self.add(step, "FAIL", f"unexpected answer from Density ({exc})")
        except _CheckProblem as exc:
            self.add(step, "FAIL", str(exc))
        except _CheckWarning as exc:
            self.add(step, "warn", str(exc))
        else:
            self.add(step, "ok", describe(result))
            return result
        return None

    @property
    def failed(self) -> list[str]:
        return [step.strip() for step, result, _ in self.rows if result == "FAIL"]


def _configured_displays(values: dict[str, Any], run: _CheckRun) -> list[Any]:
    """The displays serve would run, read without creating or migrating the database."""
    database = values["SIGNAGE_DATABASE"]
    if not is_postgres(database) and not os.path.exists(database):
        run.add("configured displays", "skip", f"no database yet at {database}")
        return []
    try:
        store = Store(database, "check")  # the key signs credentials; nothing is signed here
        try:
            displays = store.list_displays()
        finally:
            store.close()
    except Exception as exc:  # a missing table, an unreachable PostgreSQL: say so, go on
        run.add("configured displays", "FAIL", f"cannot read the database ({type(exc).__name__})")
        return []
    run.add("configured displays", "ok", f"{len(displays)} display(s)")
    return displays


@click.command()
@click.option("--display-id", default=None, help="Also check this Density display id's token.")
def check(display_id: str | None) -> None:
    """Walk what `serve` needs from Density, print a table, and exit 1 when anything fails.

    The organisation token; a display token for each configured display, used for a real
    call; the space tree and the rooms of each floor; presence-health for one floor; a
    ws_url and the floor socket's first frame; counts of entry-counted rooms and their own
    socket's first frame; sensor health. A step with nothing to check says "skip" and why.
    """
    values = settings.load(settings.instance_dir())
    url = values["DENSITY_API_URL"]
    has_token = bool(values["DENSITY_API_TOKEN"])
    has_oauth = bool(values["DENSITY_CLIENT_ID"] and values["DENSITY_CLIENT_SECRET"])
    click.echo(f"Density API: {url}")
    if not (has_token or has_oauth):
        raise click.ClickException(
            "no credentials: set DENSITY_API_TOKEN, or DENSITY_CLIENT_ID and DENSITY_CLIENT_SECRET"
        )
    if display_id and not has_oauth:
        raise click.ClickException(
            "--display-id needs DENSITY_CLIENT_ID and DENSITY_CLIENT_SECRET (display tokens"
            " come from client credentials)"
        )
    run = _CheckRun()
    displays = _configured_displays(values, run)
    timeout = values["SIGNAGE_HTTP_TIMEOUT"]
    with DensityClient(
        url,
        api_token=values["DENSITY_API_TOKEN"] or None,
        client_id=values["DENSITY_CLIENT_ID"] or None,
        client_secret=values["DENSITY_CLIENT_SECRET"] or None,
        audience=values["DENSITY_OAUTH_AUDIENCE"] or None,
        token_duration=values["DENSITY_TOKEN_DURATION"] or None,
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
    ) as client:
        _check_with(client, run, values, displays, display_id, PresenceStream, build_tree)
    failed = run.failed
    if failed:
        click.echo(f"check failed: {', '.join(failed)}", err=True)
        raise SystemExit(1)
    click.echo("check passed: serve has what it needs from Density")


def _check_with(client, run: _CheckRun, values, displays, extra_display, stream_cls, build_tree):
    """The steps of `check` after the database: each adds its row; later ones skip when an
    earlier one they need failed."""

    def org() -> str:
        kind = "static API token" if values["DENSITY_API_TOKEN"] else "OAuth token"
        client.org_token()
        client.hello_world(retries=0)  # the token works for a real call, not only exists
        left = client.token_expiry("org")
        return kind + (f", valid {left:.0f} s" if left is not None else "") + ", hello-world ok"

    if run.attempt("organisation token", org, lambda text: text) is None:
        for step in ("display tokens", "space tree", "presence-health", "floor socket",
                     "entry occupancy", "occupancy socket", "sensor health"):  # fmt: skip
            run.add(step, "skip", "needs the organisation token")
        return

    tree = run.attempt(
        "space tree",
        lambda: build_tree(client.spaces()),
        lambda t: f"{len(t)} spaces, {len(t.floors())} floor(s)",
    )
    floors = tree.floors() if tree is not None else []
    display_floors = {d.floor_id for d in displays}
    for floor in floors:
        rooms = tree.rooms_of(floor.id)
        needed = floor.id in display_floors
        # A floor without rooms shows an empty kiosk: an error where a display is configured.
        result = "ok" if rooms else ("FAIL" if needed else "warn")
        building = tree.building_of(floor.id)
        where = f"{building.name} / " if building else ""
        reason = f"{len(rooms)} room(s)" + ("" if rooms else ": the kiosk would show no room")
        run.add(f"  floor {where}{floor.name}", result, reason)
    if tree is not None and not floors:
        run.add("floors", "FAIL", "no space of type floor: kiosks would have nothing to show")
    for floor_id in sorted(display_floors - {f.id for f in floors}):
        if tree is not None:
            run.add(
                f"  floor {floor_id}", "FAIL", "a display shows it but Density does not list it"
            )

    # The floor the next steps use: the first display's, else the first floor with rooms.
    floor = None
    if tree is not None:
        by_id = {f.id: f for f in floors}
        floor = next((by_id[d.floor_id] for d in displays if d.floor_id in by_id), None)
        floor = floor or next((f for f in floors if tree.rooms_of(f.id)), None)
    rooms = tree.rooms_of(floor.id) if floor is not None else []
    room_ids = [r.id for r in rooms if r.counting_mode != "entry"]

    # Display tokens: each configured display's, then one real call made with it.
    wanted = list(dict.fromkeys([d.density_display_id for d in displays if d.density_display_id]))
    if extra_display and extra_display not in wanted:
        wanted.append(extra_display)
    if not wanted:
        run.add("display tokens", "skip", "no display has a Density display id: serve uses the"
                " organisation token")  # fmt: skip
    elif not client.has_client_credentials:
        run.add("display tokens", "FAIL", "displays name Density display ids, but display tokens"
                " need DENSITY_CLIENT_ID and DENSITY_CLIENT_SECRET")  # fmt: skip
    for density_id in wanted if client.has_client_credentials else []:
        # Its own floor's rooms; one not configured (--display-id) is asked for all it may see.
        floor_of = next((d.floor_id for d in displays if d.density_display_id == density_id), None)
        own = [r.id for r in tree.rooms_of(floor_of)] if tree is not None and floor_of else []

        def display_call(density_id: str = density_id, own: list[str] = own) -> int:
            client.display_token(density_id)
            return len(client.presence_health(own or None, display_id=density_id, retries=0))

        run.attempt(
            f"display token {density_id}",
            display_call,
            lambda n: f"token issued; presence-health with it answered for {n} space(s)",
        )

    token_display = next(
        (d.density_display_id for d in displays
         if floor is not None and d.floor_id == floor.id and d.density_display_id),
        None,
    )  # fmt: skip
    if not client.has_client_credentials:
        token_display = None
    if floor is None:
        for step in ("presence-health", "floor socket", "entry occupancy", "occupancy socket",
                     "sensor health"):  # fmt: skip
            run.add(step, "skip", "no floor with rooms to check")
        return

    def presence() -> str:
        answer = client.presence_health(room_ids, display_id=token_display, retries=0)
        healthy = sum(1 for p in answer.values() if p.health == "healthy")
        if not answer:
            raise _CheckProblem(f"no room of {floor.name} in the answer")
        return f"{floor.name}: {len(answer)} room(s), {healthy} healthy"

    if not room_ids:
        # Only doorway-counted rooms: serve opens no presence socket and polls no presence.
        for step in ("presence-health", "floor socket"):
            run.add(step, "skip", f"{floor.name} has no presence-counted rooms")
    else:
        run.attempt("presence-health", presence, lambda text: text)

    def first_frame(on: Any, display_id: str | None, kind: str, polls: str) -> str:
        """Open the floor's socket as serve would (ws_url, connect) and wait for a frame."""
        stream = stream_cls(client, on.id, kind=kind, display_id=display_id, ping_interval=None)
        try:
            stream.connect()
            message = stream.wait_first(CHECK_SOCKET_WAIT_S)
        finally:
            stream.close()
        if message is None:
            # Whether Density sends a refresh on connect is not documented; serve takes a REST
            # snapshot until the first frame, so a quiet start is worth a look, not a failure.
            raise _CheckWarning(
                f"ws_url issued and the socket opened, but no frame within"
                f" {CHECK_SOCKET_WAIT_S:.0f} s (serve polls {polls}until one comes)"
            )
        return (
            f"{on.name}: ws_url, socket open, first {message.update_type} frame"
            f" ({len(message.updates)} space(s))"
        )

    if room_ids:
        run.attempt(
            "floor socket",
            lambda: first_frame(floor, token_display, "presence", ""),
            lambda text: text,
        )

    # Entry-counted rooms: this floor's, else those of the first floor that has any, each
    # read with the token serve would use for that floor (a display token sees its floor only).
    entry_floor = floor
    entry = [r.id for r in rooms if r.counting_mode == "entry"]
    for other in floors if not entry else []:
        entry = [r.id for r in tree.rooms_of(other.id) if r.counting_mode == "entry"]
        if entry:
            entry_floor = other
            break
    entry_display = next(
        (d.density_display_id for d in displays
         if d.floor_id == entry_floor.id and d.density_display_id),
        None,
    ) if client.has_client_credentials else None  # fmt: skip
    if not entry:
        for step in ("entry occupancy", "occupancy socket"):
            run.add(step, "skip", "no entry-counted rooms: serve reads no counts")
    else:

        def counts() -> str:
            answer = client.current_occupancy(entry, display_id=entry_display, retries=0)
            counted = sum(1 for sid in entry if sid in answer)
            text = f"{entry_floor.name}: {counted} of {len(entry)} entry room(s) counted"
            # A room Density leaves out has no count: its kiosks would show it unknown.
            if counted == 0:
                raise _CheckProblem(text + ": every entry room would show unknown")
            if counted < len(entry):
                raise _CheckWarning(text + ": the others would show unknown")
            return text

        run.attempt("entry occupancy", counts, lambda text: text)

        run.attempt(
            "occupancy socket",
            lambda: first_frame(entry_floor, entry_display, "occupancy", "counts "),
            lambda text: text,
        )

    def sensors() -> str:
        asked = [r.id for r in rooms]
        found = client.sensor_health(space_ids=asked, retries=0)
        if not found:
            # Nothing to look at is not a pass: entry rooms are vouched for by their sensors.
            raise _CheckWarning(f"Density reported no sensor for the {len(asked)} room(s) asked")
        unwell = sum(1 for s in found if s.health != "healthy")
        text = f"{len(found)} sensor(s), {unwell} not healthy"
        unplaced = sum(1 for s in found if not s.space_id)
        if unplaced:
            # Serve maps a sensor that names a doorway to its spaces through GET /v3/doorways.
            doorways = client.doorways(retries=0)
            text += f"; {unplaced} name a doorway, {len(doorways)} doorway(s) read"
        return text

    run.attempt("sensor health", sensors, lambda text: text)
