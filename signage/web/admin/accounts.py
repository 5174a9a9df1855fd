"""Console pages for accounts: one's own password, and every account with its role (owners).

An account is an owner (also manages accounts), an admin (changes things) or a viewer (reads
every page, changes nothing: refused by `auth.require_write` before any view runs).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for

from signage.actions import accounts as account_actions
from signage.store import StoreError
from signage.web import auth
from signage.web.admin.base import ask_first, bp
from signage.web.current import services

logger = logging.getLogger(__name__)

USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
ROLE_HELP = {
    "owner": "changes everything, and manages accounts",
    "admin": "changes displays, plans, announcements",
    "viewer": "reads every page, changes nothing",
}


@bp.route("/account", methods=["GET", "POST"])
def account() -> Any:
    """Change one's own password (signs out every other session); a viewer may too."""
    svc = services()
    principal = auth.current_principal()
    assert principal is not None
    errors: dict[str, str] = {}
    if request.method == "POST":
        admin = svc.store.get_admin(principal.id)
        current = request.form.get("current_password", "")
        new = request.form.get("new_password", "")
        if admin is None or not auth.verify_password(admin.password_hash, current):
            errors["current_password"] = "wrong password"
        elif new != request.form.get("confirm_password", ""):
            errors["confirm_password"] = "the two new passwords differ"
        else:
            try:
                updated = account_actions.set_password(
                    svc.store, admin, auth.hash_password(new), sign_out=True
                )
            except auth.PasswordError as exc:
                errors["new_password"] = str(exc)
            else:
                auth.start_session(updated)  # this browser stays signed in
                flash("Password changed; other sessions are signed out.", "ok")
                return redirect(url_for("admin.account"))
    body = render_template("admin/account.html", errors=errors)
    return Response(body, status=400 if errors else 200)


def _owner() -> auth.Principal:
    principal = auth.current_principal()
    assert principal is not None
    if not principal.is_owner:
        abort(403, "only owners manage accounts")
    return principal


@bp.route("/admins", methods=["GET", "POST"])
def admins() -> Any:
    """Owners see every account with its role, add accounts and change roles."""
    svc = services()
    _owner()
    errors: dict[str, str] = {}
    form: dict[str, str] = {}
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        role = request.form.get("role", "admin")
        password = request.form.get("password", "")
        form = {"username": username[:64], "role": role}
        if not USERNAME.fullmatch(username):
            errors["username"] = "1-64 letters, digits, _ . @ -"
        if role not in account_actions.ROLES:
            errors["role"] = "owner, admin or viewer"
        try:  # checked with the other fields, so the form names every problem at once
            auth.check_password_policy(password)
        except auth.PasswordError as exc:
            errors["password"] = str(exc)
        if not errors:
            try:
                account_actions.add_account(svc.store, username, auth.hash_password(password), role)
            except auth.PasswordError as exc:
                errors["password"] = str(exc)
            except StoreError as exc:
                errors["username"] = str(exc)
            else:
                flash(f"Account {username} added ({role}).", "ok")
                return redirect(url_for("admin.admins"))
    body = render_template(
        "admin/accounts.html",
        admins=svc.store.list_admins(),
        errors=errors,
        form=form,
        roles=account_actions.ROLES,
        role_help=ROLE_HELP,
    )
    return Response(body, status=400 if errors else 200)


@bp.post("/admins/<int:admin_id>/role")
def admin_role(admin_id: int) -> Response:
    """An owner gives an account another role (never the last owner's); it holds from the
    account's next request."""
    svc = services()
    _owner()
    account = svc.store.get_admin(admin_id)
    if account is None:
        abort(404)
    role = request.form.get("role", "")
    if role not in account_actions.ROLES:
        flash("Role: choose owner, admin or viewer.", "warn")
        return redirect(url_for("admin.admins"))
    try:
        changed = account_actions.set_role(svc.store, account, role)
    except StoreError as exc:
        flash(f"Role: {exc}.", "warn")
        return redirect(url_for("admin.admins"))
    if changed:
        flash(f"{account.username} is now {role}.", "ok")
    return redirect(url_for("admin.admins"))


@bp.post("/admins/<int:admin_id>/delete")
def admin_delete(admin_id: int) -> Any:
    """Remove an account (never the last owner); its sessions end at once. A page asks first:
    one click on the list once removed an owner."""
    svc = services()
    _owner()
    account = svc.store.get_admin(admin_id)
    if account is None:
        abort(404)
    asking = ask_first(
        title="Remove this account?",
        text=f"{account.username} ({account.role}) can no longer sign in, and any session"
        " it has open ends at once. This cannot be undone: the account would have to be"
        " created again.",
        subject=account.username,
        button="Remove account",
        cancel=url_for("admin.admins"),
    )
    if asking is not None:
        return asking
    try:
        removed = account_actions.remove_account(svc.store, account)
    except StoreError as exc:
        flash(str(exc), "warn")
        return redirect(url_for("admin.admins"))
    if not removed:
        abort(404)
    flash("Account removed.", "ok")
    return redirect(url_for("admin.admins"))
