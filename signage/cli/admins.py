"""`signage admin`: console accounts (owner, admin or viewer) and API tokens.

Every change goes through signage/actions/accounts.py, so the audit trail records it as done by
the operating-system user running the command.
"""

from __future__ import annotations

import logging
import re
import sys

import click

from signage.actions import accounts
from signage.cli.common import make_app
from signage.store import StoreError
from signage.web import auth

logger = logging.getLogger(__name__)


@click.group()
def admin() -> None:
    """Admin console accounts and API tokens."""


def _read_password(password_stdin: bool) -> str:
    """A new password: the first line of stdin (scripts), else prompted twice (people)."""
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@admin.command("create")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(list(accounts.ROLES)),
    default=None,
    help="owner (also manages accounts), admin, or viewer (reads, changes nothing)."
    " Default: owner for the first account, admin after.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def admin_create(username: str, role: str | None, password_stdin: bool) -> None:
    """Create a console account (the first one is the owner)."""
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", username):
        raise click.ClickException("a username has 1-64 letters, digits or _ . @ -")
    svc = make_app().extensions["signage"]
    password = _read_password(password_stdin)
    try:
        created = accounts.add_account(svc.store, username, auth.hash_password(password), role)
    except (auth.PasswordError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"admin {created.username} created ({created.role})")


@admin.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def admin_password(username: str, password_stdin: bool) -> None:
    """Set an admin's password (signs out all their sessions)."""
    svc = make_app().extensions["signage"]
    found = svc.store.admin_by_username(username)
    if found is None:
        raise click.ClickException(f"no admin {username}")
    try:
        accounts.set_password(
            svc.store, found, auth.hash_password(_read_password(password_stdin)), sign_out=True
        )
    except auth.PasswordError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"password of {found.username} changed")


@admin.command("list")
def admin_list() -> None:
    """List admin accounts."""
    svc = make_app().extensions["signage"]
    for a in svc.store.list_admins():
        click.echo(f"{a.id:>4}  {a.username:<24} {a.role:<6} {a.created_at}")


@admin.command("role")
@click.argument("username")
@click.argument("role", type=click.Choice(list(accounts.ROLES)))
def admin_role(username: str, role: str) -> None:
    """Give an account another role (never the last owner's)."""
    svc = make_app().extensions["signage"]
    found = svc.store.admin_by_username(username)
    if found is None:
        raise click.ClickException(f"no admin {username}")
    try:
        changed = accounts.set_role(svc.store, found, role)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{found.username} is now {role}" if changed else f"{found.username} was {role}")


@admin.command("remove")
@click.argument("username")
def admin_remove(username: str) -> None:
    """Remove an admin account (never the last owner)."""

    svc = make_app().extensions["signage"]
    found = svc.store.admin_by_username(username)
    if found is None:
        raise click.ClickException(f"no admin {username}")
    try:
        accounts.remove_account(svc.store, found)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"admin {found.username} removed")


@admin.group("token")
def admin_token() -> None:
    """API tokens for automation (Authorization: Bearer …)."""


@admin_token.command("create")
@click.argument("name")
@click.option("--read-only", is_flag=True, help="The token may read but not change anything.")
def admin_token_create(name: str, read_only: bool) -> None:
    """Create an API token and print it (once: only its hash is kept)."""
    svc = make_app().extensions["signage"]
    token = auth.new_api_token()
    try:
        record = accounts.add_token(
            svc.store, name, auth.token_hash(token), "viewer" if read_only else "admin"
        )
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"token {record.id} ({record.name}, {record.role}); shown only now:", err=True)
    click.echo(token)


@admin_token.command("list")
def admin_token_list() -> None:
    """List API tokens (never their values)."""
    svc = make_app().extensions["signage"]
    for t in svc.store.list_api_tokens():
        click.echo(f"{t.id:>4}  {t.name:<24} {t.role:<6} {t.created_at}")


@admin_token.command("revoke")
@click.argument("token_id", type=int)
def admin_token_revoke(token_id: int) -> None:
    """Delete an API token."""
    svc = make_app().extensions["signage"]
    if not accounts.revoke_token(svc.store, token_id):
        raise click.ClickException(f"no token {token_id}")
    click.echo(f"token {token_id} revoked")
