"""Console pages for accounts: one's own password, and the admins (owners only)."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for

from signage.store import StoreError
from signage.web import auth
from signage.web.admin.base import bp
from signage.web.current import services

logger = logging.getLogger(__name__)


@bp.route("/account", methods=["GET", "POST"])
def account() -> Any:
    """Change one's own password (signs out every other session)."""
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
                updated = svc.store.set_admin_password(
                    admin.id, auth.hash_password(new), sign_out=True
                )
            except auth.PasswordError as exc:
                errors["new_password"] = str(exc)
            else:
                auth.start_session(updated)  # this browser stays signed in
                flash("Password changed; other sessions are signed out.", "ok")
                return redirect(url_for("admin.account"))
    body = render_template("admin/account.html", errors=errors)
    return Response(body, status=400 if errors else 200)


@bp.route("/admins", methods=["GET", "POST"])
def admins() -> Any:
    """Owners add and remove admins."""
    svc = services()
    principal = auth.current_principal()
    assert principal is not None
    if not principal.is_owner:
        abort(403)
    errors: dict[str, str] = {}
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        role = request.form.get("role", "admin")
        password = request.form.get("password", "")
        if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", username):
            errors["username"] = "1-64 letters, digits, _ . @ -"
        if role not in ("owner", "admin"):
            errors["role"] = "owner or admin"
        if not errors:
            try:
                svc.store.add_admin(username, auth.hash_password(password), role)
            except auth.PasswordError as exc:
                errors["password"] = str(exc)
            except StoreError as exc:
                errors["username"] = str(exc)
            else:
                flash(f"Admin {username} added.", "ok")
                return redirect(url_for("admin.admins"))
    body = render_template("admin/admins.html", admins=svc.store.list_admins(), errors=errors)
    return Response(body, status=400 if errors else 200)


@bp.post("/admins/<int:admin_id>/delete")
def admin_delete(admin_id: int) -> Response:
    """Remove an admin (never the last owner); their sessions end at once."""
    svc = services()
    principal = auth.current_principal()
    assert principal is not None
    if not principal.is_owner:
        abort(403)
    try:
        removed = svc.store.remove_admin(admin_id)
    except StoreError as exc:
        flash(str(exc), "warn")
        return redirect(url_for("admin.admins"))
    if not removed:
        abort(404)
    flash("Admin removed.", "ok")
    return redirect(url_for("admin.admins"))
