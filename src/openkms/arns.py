"""Identifiers: key IDs, key and alias ARNs, IAM principal ARNs, and region names."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

PARTITION = "aws"

_KEY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_MRK_ID = re.compile(r"mrk-[0-9a-f]{32}\Z")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}\Z")
_ACCOUNT = re.compile(r"\d{12}\Z")


def new_key_id() -> str:
    return str(uuid.uuid4())


def new_mrk_id() -> str:
    return "mrk-" + uuid.uuid4().hex


def is_key_id(value: str) -> bool:
    return bool(_KEY_ID.match(value) or _MRK_ID.match(value))


def is_region(value: str) -> bool:
    return bool(_REGION.match(value))


def is_account_id(value: str) -> bool:
    return bool(_ACCOUNT.match(value))


def key_arn(region: str, account: str, key_id: str) -> str:
    return f"arn:{PARTITION}:kms:{region}:{account}:key/{key_id}"


def alias_arn(region: str, account: str, alias_name: str) -> str:
    return f"arn:{PARTITION}:kms:{region}:{account}:{alias_name}"


def account_root_arn(account: str) -> str:
    return f"arn:{PARTITION}:iam::{account}:root"


def user_arn(account: str, user_name: str) -> str:
    return f"arn:{PARTITION}:iam::{account}:user/{user_name}"


def role_arn(account: str, path: str, name: str) -> str:
    return f"arn:{PARTITION}:iam::{account}:role{path}{name}"


def policy_arn(account: str, path: str, name: str) -> str:
    return f"arn:{PARTITION}:iam::{account}:policy{path}{name}"


@dataclass(frozen=True, slots=True)
class Arn:
    """A parsed ARN: ``arn:partition:service:region:account:resource``."""

    partition: str
    service: str
    region: str
    account: str
    resource: str


def parse_arn(value: str) -> Arn | None:
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    return Arn(parts[1], parts[2], parts[3], parts[4], parts[5])
