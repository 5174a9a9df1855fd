"""`signage displays`: add, list, pair, revoke and remove displays."""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from signage.actions import audit
from signage.actions.displays import (
    phone_url,
    remove_display,
    revoke_display,
    revoke_phone_link,
)
from signage.actions.pairing import PairingRefused, claim_code
from signage.cli.common import make_app
from signage.store import StoreError

logger = logging.getLogger(__name__)


@click.group()
def displays() -> None:
    """Add, list, pair, revoke and remove displays."""


def _display_json(svc, display) -> dict[str, Any]:
    return {
        "id": display.id,
        "name": display.name,
        "floor_id": display.floor_id,
        "density_display_id": display.density_display_id,
        "kiosk_url": svc.kiosk_url(display),
        "socket_url": svc.socket_url(display),
        "state_url": svc.state_url(display),
        "phone_url": phone_url(svc, display),
    }


@displays.command("add")
@click.option("--name", required=True)
@click.option("--floor", "floor_id", required=True, help="Density floor id (spc_…).")
@click.option("--density-display-id", default=None, help="Density display id, for its token.")
@click.option("--json", "as_json", is_flag=True, help="Print the display as JSON.")
def displays_add(name: str, floor_id: str, density_display_id: str | None, as_json: bool) -> None:
    """Add a display for a floor."""

    svc = make_app().extensions["signage"]
    try:
        with audit.change(
            svc.store,
            "display.create",
            "display",
            None,
            name.strip(),
            after={
                "name": name.strip(),
                "floor_id": floor_id.strip(),
                "density_display_id": density_display_id,
            },
            created=True,
        ):
            display = svc.store.add_display(name, floor_id, density_display_id)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(_display_json(svc, display)))
    else:
        click.echo(f"display {display.id} added: {svc.kiosk_url(display)}")


@displays.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the displays as JSON.")
def displays_list(as_json: bool) -> None:
    """List displays with their kiosk URLs."""
    svc = make_app().extensions["signage"]
    rows = [_display_json(svc, d) for d in svc.store.list_displays()]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['id']:>4}  {row['name']:<24} {row['floor_id']:<20} {row['kiosk_url']}")


@displays.command("remove")
@click.argument("display_id", type=int)
def displays_remove(display_id: int) -> None:
    """Delete a display (its screens lose their credential)."""
    svc = make_app().extensions["signage"]
    display = svc.store.get_display(display_id)
    if display is None:
        raise click.ClickException(f"no display {display_id}")
    remove_display(svc.store, svc.hub, display)  # recorded in the audit trail there
    click.echo(f"display {display_id} removed")


@displays.command("revoke")
@click.argument("display_id", type=int)
@click.option(
    "--phone", is_flag=True, help="Revoke only the phone link (QR code); screens stay paired."
)
def displays_revoke(display_id: int, phone: bool) -> None:
    """Issue a new credential for a display; screens holding the old one return to pairing."""

    svc = make_app().extensions["signage"]
    current = svc.store.get_display(display_id)
    if current is None:
        raise click.ClickException(f"no display {display_id}")
    try:  # through the use cases, so the audit trail records them as the console's are
        if phone:
            display = revoke_phone_link(svc.store, svc.hub, current)
        else:
            display = revoke_display(svc.store, svc.hub, current)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if phone:
        # This process cannot reach a running server's screens: they show the new code when
        # their page next loads (at once with the console's or the API's revoke, or Reload).
        click.echo(f"display {display_id} phone link revoked; new: {phone_url(svc, display)}")
        click.echo("screens show the new QR code after their next reload", err=True)
        return
    click.echo(f"display {display_id} revoked; its new kiosk URL: {svc.kiosk_url(display)}")


@displays.command("pair")
@click.argument("code")
@click.argument("display_id", type=int)
def displays_pair(code: str, display_id: int) -> None:
    """Give the screen showing CODE the display DISPLAY_ID."""
    svc = make_app().extensions["signage"]
    if svc.store.get_display(display_id) is None:
        raise click.ClickException(f"no display {display_id}")
    try:
        display = claim_code(svc.store, code, display_id)
    except PairingRefused as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"paired: the screen becomes display {display.id} ({display.name}) within seconds")
