"""Accounts and API tokens: the changes the console and `signage admin` make, each recorded in
the audit trail once (never a password, hash or token: only who, which account and its role).

Passwords are hashed by the caller (signage/web/auth.py): this layer never sees one in clear.
"""

from __future__ import annotations

import logging

from signage.actions import audit
from signage.store import Admin, ApiToken, Store, StoreError

logger = logging.getLogger(__name__)

__all__ = ["ROLES", "add_account", "add_token", "remove_account", "revoke_token", "set_role"]

# An account's role: owner (also manages accounts), admin (changes things), viewer (reads).
ROLES = ("owner", "admin", "viewer")


def add_account(store: Store, username: str, password_hash: str, role: str | None) -> Admin:
    """Create an account (the first one is the owner when no role is given)."""
    # The role the store gave (owner for the first account) is read in its own transaction.
    with audit.change(
        store,
        "account.create",
        "account",
        None,
        username.strip(),
        created=True,
        after_from="account",
    ):
        return store.add_admin(username, password_hash, role)


def remove_account(store: Store, account: Admin) -> bool:
    """Remove an account (never the last owner: StoreError); whether one was removed."""
    with audit.change(
        store,
        "account.remove",
        "account",
        account.id,
        account.username,
        before={"role": account.role},
        only_changes=False,
    ):
        return store.remove_admin(account.id)


def set_role(store: Store, account: Admin, role: str) -> bool:
    """Give an account another role (never the last owner's: StoreError); whether it changed.
    The account's next request already has the new role."""
    if role not in ROLES:
        raise StoreError(f"unknown role {role!r}")
    with audit.change(
        store,
        "account.role",
        "account",
        account.id,
        account.username,
        before={"role": account.role},
        after={"role": role},
        # Recorded only if the store's transaction wrote the role: the same role writes nothing,
        # so nothing is recorded. Whether it is the same is the database's word, read under its
        # lock; `account` may be a moment old, so both roles are kept, never an empty diff.
        only_changes=False,
    ):
        before = store.set_admin_role(account.id, role)
    if before is None:
        raise StoreError(f"no account {account.username}")
    return before != role


def set_password(store: Store, account: Admin, password_hash: str, *, sign_out: bool) -> Admin:
    """Store a new password (the trail says it changed, never what to)."""
    with audit.change(
        store,
        "account.password",
        "account",
        account.id,
        account.username,
        after={"signed_out": sign_out},
        only_changes=False,
    ):
        return store.set_admin_password(account.id, password_hash, sign_out=sign_out)


def add_token(store: Store, name: str, token_hash: str, role: str) -> ApiToken:
    """Record a new API token by its hash (its value is the caller's to show, once)."""
    with audit.change(
        store, "token.create", "token", None, name.strip(), after={"role": role}, created=True
    ):
        return store.add_api_token(name, token_hash, role)


def revoke_token(store: Store, token_id: int) -> bool:
    """Delete an API token; whether there was one."""
    token = next((t for t in store.list_api_tokens() if t.id == token_id), None)
    if token is None:
        return False
    with audit.change(
        store,
        "token.revoke",
        "token",
        token.id,
        token.name,
        before={"role": token.role},
        only_changes=False,
    ):
        return store.remove_api_token(token_id)
