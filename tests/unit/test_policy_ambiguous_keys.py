"""Encryption context keys that differ only in case, on the policy side: condition key names are matched
without regard to case, so ``{"A": "1", "a": "2"}`` makes ``kms:EncryptionContext:a`` ambiguous. A
condition on an ambiguous key never lets an Allow statement apply and always lets a Deny statement
apply, whatever the order of the pairs and whichever spelling the policy uses; keys that do not
collide are unaffected."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from openkms.auth.policy import Caller, Effect, Request, evaluate, parse_policy
from openkms.service.kms.authz import encryption_context_conditions

A = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BOB = Caller(f"arn:aws:iam::{A}:user/bob", A, "IAMUser", "AIDAEXAMPLEBOB", "bob", None, {})


def effect(deny: bool, condition: dict[str, Any], context: dict[str, str]) -> Effect:
    statement = {
        "Effect": "Deny" if deny else "Allow",
        "Action": "kms:Encrypt",
        "Resource": "*",
        "Condition": condition,
    }
    doc = parse_policy(json.dumps({"Version": "2012-10-17", "Statement": [statement]}), kind="identity")
    request = Request("kms:Encrypt", KEY, A, encryption_context_conditions(context))
    return evaluate(doc, BOB, request, resource_policy=False)


CONDITIONS = [
    {"StringEquals": {"kms:EncryptionContext:a": "2"}},
    {"StringEquals": {"kms:EncryptionContext:A": "1"}},
    {"StringEquals": {"KMS:ENCRYPTIONCONTEXT:a": "2"}},
    {"StringNotEquals": {"kms:EncryptionContext:a": "9"}},
    {"StringLike": {"kms:EncryptionContext:a": "*"}},
    {"StringEqualsIfExists": {"kms:EncryptionContext:a": "2"}},
    {"Null": {"kms:EncryptionContext:a": "false"}},
    {"StringEquals": {"kms:EncryptionContext:a": "${aws:username}"}},
    {"StringEquals": {"aws:username": "${kms:EncryptionContext:a}"}},
]
COLLIDING = [[("A", "1"), ("a", "2")], [("a", "2"), ("A", "9")], [("a", "2"), ("A", "2"), ("b", "x")]]


@pytest.mark.parametrize("condition", CONDITIONS, ids=[json.dumps(c) for c in CONDITIONS])
@pytest.mark.parametrize("pairs", COLLIDING, ids=["A1-a2", "a2-A9", "a2-A2-b"])
def test_ambiguous_key_never_allows_always_denies(
    condition: dict[str, Any], pairs: list[tuple[str, str]]
) -> None:
    for order in itertools.permutations(pairs):
        context = dict(order)
        assert effect(False, condition, context) is Effect.NONE, context
        assert effect(True, condition, context) is Effect.DENY, context


def test_keys_that_do_not_collide_are_unaffected() -> None:
    context = {"a": "2", "A": "9", "b": "x"}
    condition = {"StringEquals": {"kms:EncryptionContext:b": "x"}}
    assert effect(False, condition, context) is Effect.ALLOW
    assert effect(True, {"StringEquals": {"kms:EncryptionContext:b": "y"}}, context) is Effect.NONE
    # kms:EncryptionContextKeys lists every key as given.
    keys = {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "A"}}
    assert effect(False, keys, context) is Effect.ALLOW


def test_one_spelling_is_not_ambiguous() -> None:
    for context in ({"a": "2"}, {"A": "2"}):
        assert effect(False, {"StringEquals": {"kms:EncryptionContext:a": "2"}}, context) is Effect.ALLOW
        assert effect(True, {"StringEquals": {"kms:EncryptionContext:a": "9"}}, context) is Effect.NONE


def test_request_keys_in_two_spellings_are_ambiguous_whatever_their_source() -> None:
    """The engine's own rule, for any condition key (e.g. two tags differing only in case)."""
    doc = parse_policy(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "kms:Encrypt",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"aws:resourcetag/env": "prod"}},
                    }
                ],
            }
        ),
        kind="identity",
    )
    for order in itertools.permutations([("aws:ResourceTag/Env", "prod"), ("aws:ResourceTag/ENV", "dev")]):
        request = Request("kms:Encrypt", KEY, A, dict(order))
        assert evaluate(doc, BOB, request, resource_policy=False) is Effect.NONE
