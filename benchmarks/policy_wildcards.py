"""Cost of one ``authorize()`` with wildcard-heavy but ordinary policies, and with the review's
adversarial condition, in this process (no server). Run it with the ``src`` of two checkouts to
compare them::

    PYTHONPATH=src .venv/bin/python benchmarks/policy_wildcards.py
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from openkms.auth.policy import Caller, Request, authorize, parse_policy

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALICE = Caller(f"arn:aws:iam::{ACCOUNT}:user/alice", ACCOUNT, "IAMUser", "AIDAALICE", "alice", None, {})
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def _doc(*statements: dict[str, Any], kind: str = "key") -> Any:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}), kind=kind)  # type: ignore[arg-type]


KEY_POLICY = _doc(
    {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
    {
        "Sid": "deny-foreign-context",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": ["kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
        "Resource": "*",
        "Condition": {"StringNotLike": {"kms:EncryptionContext:app": ["app-*", "svc-??-*"]}},
    },
)
IDENTITY = _doc(
    {
        "Effect": "Allow",
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": f"arn:aws:kms:*:{ACCOUNT}:key/*",
        "Condition": {
            "StringLike": {"kms:EncryptionContext:app": "app-${aws:username}-*"},
            "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:user/*"},
        },
    },
    kind="identity",
)
ORDINARY = Request("kms:Encrypt", KEY, ACCOUNT, {"kms:EncryptionContext:app": "app-alice-orders"})
ISSUE = _doc(
    {
        "Effect": "Allow",
        "Principal": {"AWS": ROOT},
        "Action": "kms:Encrypt",
        "Resource": "*",
        "Condition": {"StringLike": {"kms:EncryptionContext:x": "*a*a*a*a*a*a*b"}},
    }
)


def _time(fn: Any, calls: int) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - started) / calls)
    return statistics.median(rounds) * 1e6


def main() -> None:
    def ordinary() -> bool:
        return authorize(ALICE, ORDINARY, key_policy=KEY_POLICY, identity_policies=[IDENTITY]).allowed

    if not ordinary():
        raise SystemExit("the ordinary request must be allowed")
    print(f"ordinary wildcard policies: {_time(ordinary, 20000):.2f} µs per authorize()")
    for length in (20, 24, 70):
        request = Request("kms:Encrypt", KEY, ACCOUNT, {"kms:EncryptionContext:x": "a" * length})
        calls = 1 if length > 24 else 5

        def issue(request: Request = request) -> bool:
            return authorize(ALICE, request, key_policy=ISSUE, identity_policies=[IDENTITY]).allowed

        print(f"*a*a*a*a*a*a*b on 'a'*{length}: {_time(issue, calls):.1f} µs per authorize()")


if __name__ == "__main__":
    main()
