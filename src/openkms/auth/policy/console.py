"""The key policy the AWS KMS console writes (Id ``key-consolepolicy-3``), and reading it back.

Statements, by the Sids the console relies on to render its views (reference section 5.2):

1. ``Enable IAM User Permissions`` - the account root, ``kms:*`` (delegation to IAM);
2. ``Allow access for Key Administrators`` - the administrators, management actions (plus
   ``kms:ImportKeyMaterial`` for EXTERNAL keys, ``kms:ReplicateKey`` and ``kms:UpdatePrimaryRegion``
   for multi-Region keys; without ``kms:ScheduleKeyDeletion``/``kms:CancelKeyDeletion`` when
   administrators may not delete the key);
3. ``Allow use of the key`` - key users and other accounts' roots, the actions for the key type;
4. ``Allow attachment of persistent resources`` - the same principals, grant actions, only for
   symmetric encryption keys (the key type AWS services integrate with), conditioned on
   ``kms:GrantIsForAWSResource``.

Statements whose principal list is empty are omitted. The text is pretty-printed the way AWS returns
console-created policies from GetKeyPolicy (Jackson's default pretty printer: two-space indent,
``" : "`` separators, arrays on one line).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openkms.auth.policy.jsontext import load_policy_json
from openkms.auth.policy.matching import account_of_principal

CONSOLE_POLICY_ID = "key-consolepolicy-3"
SID_ROOT = "Enable IAM User Permissions"
SID_ADMINS = "Allow access for Key Administrators"
SID_USE = "Allow use of the key"
SID_GRANTS = "Allow attachment of persistent resources"

ADMIN_ACTIONS = (
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
)
DELETE_ACTIONS = ("kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion")
EXTERNAL_ADMIN_ACTIONS = ("kms:ImportKeyMaterial",)
MULTI_REGION_ADMIN_ACTIONS = ("kms:ReplicateKey", "kms:UpdatePrimaryRegion")
USE_ACTIONS: dict[str, tuple[str, ...]] = {
    "SYMMETRIC": ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"),
    "HMAC": ("kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"),
    "ASYMMETRIC_ENCRYPT": (
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:DescribeKey",
        "kms:GetPublicKey",
    ),
    "ASYMMETRIC_SIGN": ("kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"),
    "KEY_AGREEMENT": ("kms:DescribeKey", "kms:GetPublicKey", "kms:DeriveSharedSecret"),
}
GRANT_ACTIONS = ("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant")
#: Key types whose console policy has the "Allow attachment of persistent resources" statement.
GRANT_KEY_TYPES = frozenset({"SYMMETRIC"})


@dataclass(frozen=True, slots=True)
class ConsolePolicyView:
    """What the console's default key-policy view shows."""

    administrators: tuple[str, ...]
    allow_admin_delete: bool
    users: tuple[str, ...]
    other_accounts: tuple[str, ...]  # account ids


def _root(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


def _principal(arns: Sequence[str]) -> dict[str, Any]:
    return {"AWS": arns[0] if len(arns) == 1 else list(arns)}


def _statement(sid: str, principals: Sequence[str], actions: Sequence[str]) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": _principal(principals),
        "Action": actions[0] if len(actions) == 1 else list(actions),
        "Resource": "*",
    }


def build_console_key_policy(
    account_id: str,
    *,
    key_type: str,
    origin: str,
    multi_region: bool,
    administrators: Sequence[str],
    allow_admin_delete: bool,
    users: Sequence[str],
    other_accounts: Sequence[str],
) -> str:
    """The console-style key policy text for the choices made in the create-key wizard."""
    if key_type not in USE_ACTIONS:
        raise ValueError(f"unknown key type {key_type!r}")
    statements = [_statement(SID_ROOT, [_root(account_id)], ["kms:*"])]
    if administrators:
        actions = [a for a in ADMIN_ACTIONS if allow_admin_delete or a not in DELETE_ACTIONS]
        if origin == "EXTERNAL":
            actions += EXTERNAL_ADMIN_ACTIONS
        if multi_region:
            actions += MULTI_REGION_ADMIN_ACTIONS
        statements.append(_statement(SID_ADMINS, list(administrators), actions))
    key_users = list(users) + [_root(a) if account_of_principal(a) == a else a for a in other_accounts]
    if key_users:
        statements.append(_statement(SID_USE, key_users, USE_ACTIONS[key_type]))
        if key_type in GRANT_KEY_TYPES:
            grants = _statement(SID_GRANTS, key_users, GRANT_ACTIONS)
            grants["Condition"] = {"Bool": {"kms:GrantIsForAWSResource": "true"}}
            statements.append(grants)
    return pretty_json({"Version": "2012-10-17", "Id": CONSOLE_POLICY_ID, "Statement": statements})


def describe_console_key_policy(text: str) -> ConsolePolicyView | None:
    """The console's view of a policy carrying the console Sids; None for any other policy."""
    try:
        doc = load_policy_json(text, strict=False)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    raw = doc.get("Statement")
    statements = [raw] if isinstance(raw, dict) else raw if isinstance(raw, list) else []
    by_sid = {s.get("Sid"): s for s in statements if isinstance(s, dict)}
    if SID_ADMINS not in by_sid and SID_USE not in by_sid and doc.get("Id") != CONSOLE_POLICY_ID:
        return None
    admin = by_sid.get(SID_ADMINS)
    administrators = _aws_principals(admin)
    allow_delete = True
    if admin is not None:
        actions = admin.get("Action")
        names = (
            {actions} if isinstance(actions, str) else set(actions) if isinstance(actions, list) else set()
        )
        allow_delete = "kms:ScheduleKeyDeletion" in names
    users: list[str] = []
    accounts: list[str] = []
    for principal in _aws_principals(by_sid.get(SID_USE)):
        account = account_of_principal(principal)
        if account is None:
            users.append(principal)
        else:
            accounts.append(account)
    return ConsolePolicyView(tuple(administrators), allow_delete, tuple(users), tuple(accounts))


def _aws_principals(statement: dict[str, Any] | None) -> list[str]:
    if statement is None:
        return []
    principal = statement.get("Principal")
    if not isinstance(principal, dict):
        return []
    aws = principal.get("AWS")
    if isinstance(aws, str):
        return [aws]
    if isinstance(aws, list):
        return [a for a in aws if isinstance(a, str)]
    return []


def pretty_json(value: Any) -> str:
    """JSON in the layout of Jackson's DefaultPrettyPrinter (how AWS returns console policies)."""
    return _pretty(value, 0)


def _pretty(value: Any, level: int) -> str:
    if isinstance(value, dict):
        if not value:
            return "{ }"
        inner = "  " * (level + 1)
        fields = [
            f"{inner}{json.dumps(k, ensure_ascii=False)} : {_pretty(v, level + 1)}" for k, v in value.items()
        ]
        return "{\n" + ",\n".join(fields) + "\n" + "  " * level + "}"
    if isinstance(value, list):
        if not value:
            return "[ ]"
        return "[ " + ", ".join(_pretty(v, level) for v in value) + " ]"
    return json.dumps(value, ensure_ascii=False)
