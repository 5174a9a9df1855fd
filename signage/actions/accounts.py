"""Accounts and API tokens: the changes the console and `signage admin` make, each recorded in
the audit trail once (never a password, hash or token: only who, which account and its role).

Passwords are hashed by the caller (signage/web/auth.py): this layer never sees one in clear.
"""

from __future__ import annotations

import logging

from signage.actions import audit
from signage.store import Admin, ApiToken, Store, StoreError

logger = logging.getLogger(__name__)

__all__ = [
    "ROLES",
    "add_account",
    "add_token",
    "remove_account",
    "revoke_token",
    "set_role",
    "sign_in_failed",
    "signed_in",
    "signed_out",
]

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


# -- sign-ins: who came and went, and who tried ------------------------------------------------
# Failed sign-ins are tallied, not written one by one: one entry per account tried per minute
# (FAILED_WINDOW_S) counts the attempts and lists up to 10 addresses, and every name that is no
# account shares one entry a minute, with its addresses but not the names (a password typed into
# the name box would be kept, and viewers read the trail). A password-guessing
# loop, over one account or over invented names, so adds at most (accounts + 1) rows a minute
# whatever its rate (the sign-in form's limits slow it besides). A minute keeps a burst visible
# as one line, while separate mistakes a few minutes apart stay separate lines.
FAILED_WINDOW_S = 60.0
UNKNOWN_ACCOUNT = "(no such account)"
MAX_NAME_TRIED = 64  # a name typed into the form, as recorded: enough to recognise it


def signed_in(store: Store, account: Admin, address: str) -> None:
    """Record that an account signed in to the console, and from where."""
    with audit.change(
        store,
        "session.sign_in",
        "session",
        account.id,
        account.username,
        after={"address": address},
        actor=audit.Actor("account", account.username),
    ):
        pass  # nothing stored changes (the session is a signed cookie): recorded after


def signed_out(store: Store, account_id: int, username: str, address: str) -> None:
    """Sign an account out of every browser (see web/auth.py end_session), recorded."""
    with audit.change(
        store,
        "session.sign_out",
        "session",
        account_id,
        username,
        after={"address": address},
        actor=audit.Actor("account", username),
    ):
        store.end_admin_sessions(account_id)


def sign_in_failed(store: Store, username: str, address: str) -> None:
    """Tally a failed sign-in: the account tried (when it is one) and the address, never the
    password nor a name that is no account."""
    tried = username.strip()[:MAX_NAME_TRIED]
    account = store.admin_by_username(tried) if tried else None
    if account is not None:
        target_id, name, lists = account.id, account.username, {"addresses": address}
    else:
        # A name that is no account is not kept: people type their password into the name box,
        # and the trail is read by viewers and API tokens. Its count and addresses are enough
        # to see a guessing loop.
        target_id, name = None, UNKNOWN_ACCOUNT
        lists = {"addresses": address}
    audit.tally(
        store,
        "session.sign_in_failed",
        "session",
        target_id,
        name,
        window=FAILED_WINDOW_S,
        lists=lists,
        actor=audit.ANONYMOUS,
    )
