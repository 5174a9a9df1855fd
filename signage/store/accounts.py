"""Changing an account's role: a mixin of the Store (store.py holds the accounts' other
methods), kept apart so that store.py stays under the size the layer test allows."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any

from signage.store.db import StoreError

logger = logging.getLogger(__name__)

__all__ = ["AccountRoles"]


class AccountRoles:
    """An account's role: owner, admin or viewer; never the last owner demoted."""

    _for_update: str  # the Store's

    def transaction(self) -> AbstractContextManager[Any]:  # the Store's
        raise NotImplementedError

    def set_admin_role(self, admin_id: int, role: str) -> str | None:
        """Give an account a role; its role before (None: no such account). The role is read
        from the database on every request, so the change holds from the account's next click.
        """
        if role not in ("owner", "admin", "viewer"):
            raise StoreError(f"unknown role {role!r}")
        with self.transaction() as conn:
            # Owners locked first, in id order, as remove_admin does: two demotions at once
            # cannot both see another owner left.
            owners = conn.execute(
                f"SELECT id FROM admins WHERE role = 'owner' ORDER BY id{self._for_update}"
            ).fetchall()
            row = conn.execute("SELECT role FROM admins WHERE id = ?", (admin_id,)).fetchone()
            if row is None:
                return None
            before = str(row["role"])
            if before == "owner" and role != "owner" and len(owners) <= 1:
                raise StoreError("the last owner cannot stop being an owner")
            if before != role:
                conn.execute("UPDATE admins SET role = ? WHERE id = ?", (role, admin_id))
        return before
