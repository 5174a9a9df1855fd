"""The `signage` command: demo, serve, sim, check, init-db, displays and admin.

Each group of commands lives in its own module (serve, check, database, displays, admins); this
one assembles them under `main`, the entry point of the `signage` script and `python -m signage`.
"""

from __future__ import annotations

import logging

import click

from signage.actions import audit
from signage.cli.admins import admin
from signage.cli.check import check
from signage.cli.database import backup, init_db, restore
from signage.cli.displays import displays
from signage.cli.serve import demo, serve, sim
from signage.config import __version__

logger = logging.getLogger(__name__)


@click.group()
@click.version_option(__version__, prog_name="signage")
def main() -> None:
    """Self-hosted wayfinding displays, live from Density's occupancy sensors."""
    # What a command changes is recorded in the audit trail as done by the system user running it.
    audit.bind(audit.cli_actor())


for command in (serve, sim, demo, check, init_db, displays, admin, backup, restore):
    main.add_command(command)

__all__ = ["main"]
