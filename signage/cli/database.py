"""`signage init-db`, `backup` and `restore`: the database and the floor plans as a whole."""

from __future__ import annotations

import logging
import os

import click

from signage import config as settings
from signage.actions import backup as backups
from signage.cli.common import make_app
from signage.store.backup import BackupError
from signage.store.db import is_postgres, redact_url

logger = logging.getLogger(__name__)


@click.command("init-db")
def init_db() -> None:
    """Create the database or bring its schema up to date."""
    app = make_app()
    svc = app.extensions["signage"]
    version = svc.store.migrate()
    click.echo(f"database {svc.store.path} at schema version {version}")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
def backup(file: str) -> None:
    """Write a consistent copy of the database and the floor plans to FILE (a .tar.gz)."""

    values = settings.load(settings.instance_dir())
    try:
        manifest = backups.take(values, file)  # recorded in the audit trail
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backup written to {file} ({len(manifest['plans'])} plan file(s))")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--keep-credentials",
    is_flag=True,
    help="Keep the backup's kiosk credentials, phone links and sessions, including any revoked"
    " since it was taken.",
)
@click.option(
    "--create",
    is_flag=True,
    help="Create the database if there is none yet (a new server); without it, restore only"
    " replaces an existing one.",
)
def restore(file: str, yes: bool, keep_credentials: bool, create: bool) -> None:
    """Replace the database and floor plans with those in FILE. Stop the server first.

    Every display gets a new credential, so every screen shows a pairing code and must be
    paired again, and admins sign in again: a credential revoked after the backup was taken
    must not work again. --keep-credentials keeps the backup's credentials instead (when none
    has leaked, for example after losing the disk).
    """

    values = settings.load(settings.instance_dir())
    database = values["SIGNAGE_DATABASE"]
    # The URL of a PostgreSQL database may carry its password.
    target = redact_url(database) if is_postgres(database) else os.path.abspath(database)
    click.echo(f"database: {target}")
    if not is_postgres(database) and not os.path.exists(database) and not create:
        # Run from another folder, restore wrote a database that serve never reads.
        raise click.ClickException(
            f"there is no database at {target}: run restore where the server runs, or set"
            " SIGNAGE_INSTANCE or SIGNAGE_DATABASE as the server has them; --create starts a"
            " new database there"
        )
    if not yes:
        click.confirm(f"Replace {target} and its plans with the backup?", abort=True)
    try:
        # Recorded in the restored database's audit trail, after the restore.
        manifest = backups.restore(values, file, keep_credentials=keep_credentials)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"restored the backup of {manifest.get('created_at', '?')}; start the server again")
    if not keep_credentials:
        click.echo(
            "every display has a new credential: pair each screen again (it shows a code), and"
            " sign in to the console again"
        )
