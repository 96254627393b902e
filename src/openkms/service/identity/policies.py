"""The identity policies of a principal (inline and attached managed), cached.

The server runtime makes one :class:`IdentityPolicyCache` for its store and hands it to the KMS
authorizer and the IAM operations. :meth:`IdentityPolicyCache.get` is called by the authorizer on
every request: when warm it is one dict lookup. Entries are dropped on ``("user", "<acct>/<name>")``,
``("role", "<acct>/<name>")`` changes and the whole cache on ``("policy", <arn>)`` changes (a managed
policy edited or deleted), from this process and from others: the runtime calls :meth:`invalidate`
for the store's local changes and for those its change feed hears of.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from openkms.domain.model import Principal
from openkms.storage.store import Store

CacheKey = tuple[str, str, str]  # ("user" | "role", account id, name)


def principal_key(principal: Principal) -> CacheKey | None:
    """Whose policies apply to a principal: the IAM user's, or the assumed role's; None for others."""
    if principal.identity_type == "IAMUser" and principal.user_name:
        return ("user", principal.account_id, principal.user_name)
    if principal.identity_type == "AssumedRole" and principal.role_name:
        return ("role", principal.account_id, principal.role_name)
    return None


def policy_text(document: Any) -> str:
    """A stored inline policy (the submitted text, or a JSON object in rows written before v3)."""
    return document if isinstance(document, str) else json.dumps(document)


class IdentityPolicyCache:
    def __init__(self, store: Store) -> None:
        self._store = store
        # key -> (the user's or role's id, its policies): a session of a deleted role gets nothing from
        # a new role of the same name (AWS tells them apart by role id, as done here).
        self._entries: dict[CacheKey, tuple[str, list[str]]] = {}
        self._lock = threading.Lock()
        self.epoch = 0

    def get(self, principal: Principal) -> list[str]:
        """The JSON texts of the identity policies of ``principal``: the IAM user's (or, for an
        assumed-role session, the role's) inline policies in name order, then its attached managed
        policies in ARN order. Empty for principals without identity policies (unknown user/role, root,
        services). The list is shared with the cache: do not modify it."""
        key = principal_key(principal)
        if key is None:
            return []
        found = self._entries.get(key)
        if found is None:
            epoch = self.epoch
            found = self._load(key)
            with self._lock:
                if epoch == self.epoch:
                    self._entries[key] = found
        owner, documents = found
        if key[0] == "role" and principal.principal_id.partition(":")[0] != owner:
            return []
        return documents

    def is_warm(self, principal: Principal) -> bool:
        """Whether :meth:`get` can answer without the database (hot-path callers check this first)."""
        key = principal_key(principal)
        return key is None or key in self._entries

    def _load(self, key: CacheKey) -> tuple[str, list[str]]:
        kind, account, name = key
        with self._store.read() as tx:
            if kind == "user":
                user = tx.get_user(account, name)
                found = (user.user_id, user.inline_policies) if user is not None else None
            else:
                role = tx.get_role(account, name)
                found = (role.role_id, role.inline_policies) if role is not None else None
            if found is None:
                return "", []
            managed = tx.attached_documents(account, kind, name)
        owner, inline = found
        return owner, [policy_text(doc) for _, doc in sorted(inline.items())] + managed

    def invalidate(self, changes: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            for kind, ident in changes:
                if kind in ("user", "role"):
                    self.epoch += 1
                    account, _, name = ident.partition("/")
                    self._entries.pop((kind, account, name), None)
                elif kind == "policy":
                    self.epoch += 1
                    self._entries.clear()

    def clear(self) -> None:
        with self._lock:
            self.epoch += 1
            self._entries.clear()
