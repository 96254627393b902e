"""The console's key policy helpers: the key type the console policy is written for, and the edits of
the key policy's *default view* (add or remove key administrators, key users and other accounts),
which change only the principals of the statements with the console's Sids and keep the rest of the
document as it is, as AWS's console does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openkms.auth.policy import build_console_key_policy, pretty_json
from openkms.auth.policy.console import DELETE_ACTIONS, SID_ADMINS, SID_GRANTS, SID_ROOT, SID_USE
from openkms.auth.policy.jsontext import load_policy_json


def console_key_type(metadata: dict[str, Any]) -> str:
    """The key type of :func:`build_console_key_policy` for a KeyMetadata."""
    usage = metadata.get("KeyUsage")
    if usage == "GENERATE_VERIFY_MAC":
        return "HMAC"
    if usage == "SIGN_VERIFY":
        return "ASYMMETRIC_SIGN"
    if usage == "KEY_AGREEMENT":
        return "KEY_AGREEMENT"
    if metadata.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT":
        return "SYMMETRIC"
    return "ASYMMETRIC_ENCRYPT"


def account_root(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:root"


def _set_principals(statement: dict[str, Any], arns: Sequence[str]) -> None:
    statement["Principal"] = {"AWS": arns[0] if len(arns) == 1 else list(arns)}


def update_console_policy(
    text: str,
    *,
    account_id: str,
    metadata: dict[str, Any],
    administrators: Sequence[str],
    allow_admin_delete: bool,
    users: Sequence[str],
    other_accounts: Sequence[str],
) -> str:
    """``text`` with the console statements' principals replaced (statements added or removed as the
    lists become non-empty or empty). Raises ValueError when ``text`` is not a JSON object."""
    doc = load_policy_json(text, strict=False)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    raw = doc.get("Statement")
    statements: list[Any] = [raw] if isinstance(raw, dict) else list(raw) if isinstance(raw, list) else []
    fresh_text = build_console_key_policy(
        account_id,
        key_type=console_key_type(metadata),
        origin=str(metadata.get("Origin", "AWS_KMS")),
        multi_region=bool(metadata.get("MultiRegion")),
        administrators=list(administrators) or [account_root(account_id)],
        allow_admin_delete=allow_admin_delete,
        users=list(users) or [account_root(account_id)],
        other_accounts=[],
    )
    fresh = {s["Sid"]: s for s in load_policy_json(fresh_text, strict=True)["Statement"]}

    def find(sid: str) -> int | None:
        for i, s in enumerate(statements):
            if isinstance(s, dict) and s.get("Sid") == sid:
                return i
        return None

    def place(sid: str, statement: dict[str, Any] | None, after: Sequence[str]) -> None:
        index = find(sid)
        if statement is None:
            if index is not None:
                statements.pop(index)
            return
        if index is not None:
            statements[index] = statement
            return
        positions = [p for p in (find(a) for a in after) if p is not None]
        statements.insert(max(positions) + 1 if positions else len(statements), statement)

    admins_statement: dict[str, Any] | None = None
    if administrators:
        index = find(SID_ADMINS)
        admins_statement = dict(statements[index]) if index is not None else dict(fresh[SID_ADMINS])
        _set_principals(admins_statement, administrators)
        actions = admins_statement.get("Action", [])
        names = [actions] if isinstance(actions, str) else list(actions)
        names = [a for a in names if a not in DELETE_ACTIONS]
        if allow_admin_delete:
            names += list(DELETE_ACTIONS)
        admins_statement["Action"] = names[0] if len(names) == 1 else names
    place(SID_ADMINS, admins_statement, [SID_ROOT])

    key_users = list(users) + [account_root(a) for a in other_accounts]
    for sid, after in ((SID_USE, [SID_ROOT, SID_ADMINS]), (SID_GRANTS, [SID_ROOT, SID_ADMINS, SID_USE])):
        statement: dict[str, Any] | None = None
        if key_users and (sid in fresh or find(sid) is not None):
            index = find(sid)
            statement = dict(statements[index]) if index is not None else dict(fresh[sid])
            _set_principals(statement, key_users)
        place(sid, statement, after)
    doc["Statement"] = statements
    return pretty_json(doc)
