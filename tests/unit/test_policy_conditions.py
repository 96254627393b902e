"""Condition operators, table-driven: every family, IfExists, set qualifiers, Null, missing keys,
case rules, IPv4/IPv6, dates (ISO and epoch) and policy variables.

Each case is a Condition block put in a one-statement identity policy (Allow kms:Encrypt on ``*``);
the expectation is whether the statement applies (ALLOW) or not (NONE) for the given request context.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from openkms.auth.policy import Caller, Effect, Request, evaluate, parse_policy

A = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BOB = Caller(f"arn:aws:iam::{A}:user/bob", A, "IAMUser", "AIDAEXAMPLEBOB", "bob", None, {"Team": "blue"})
SESSION = Caller(
    f"arn:aws:sts::{A}:assumed-role/App/s1",
    A,
    "AssumedRole",
    "AROAEXAMPLEAPP:s1",
    None,
    f"arn:aws:iam::{A}:role/App",
    {},
)
ROOT = Caller(f"arn:aws:iam::{A}:root", A, "Root", A, None, None, {})
NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def applies(
    condition: Mapping[str, Any],
    context: Mapping[str, Any],
    caller: Caller = BOB,
    *,
    resource: str | list[str] = "*",
    version: str = "2012-10-17",
) -> bool:
    statement = {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": resource, "Condition": condition}
    doc = parse_policy(json.dumps({"Version": version, "Statement": [statement]}), kind="identity")
    effect = evaluate(doc, caller, Request("kms:Encrypt", KEY, A, context), resource_policy=False)
    return effect is Effect.ALLOW


EC = "kms:EncryptionContext:dept"

STRING_CASES = [
    pytest.param({"StringEquals": {EC: "it"}}, {EC: "it"}, True, id="StringEquals-match"),
    pytest.param({"StringEquals": {EC: "it"}}, {EC: "IT"}, False, id="StringEquals-value-case-sensitive"),
    pytest.param({"StringEquals": {EC: "it"}}, {}, False, id="StringEquals-missing-key-false"),
    pytest.param({"StringEquals": {EC: ["hr", "it"]}}, {EC: "it"}, True, id="StringEquals-values-ORed"),
    pytest.param(
        {"StringEquals": {"KMS:ENCRYPTIONCONTEXT:Dept": "it"}}, {EC: "it"}, True, id="key-name-ci-policy"
    ),
    pytest.param(
        {"StringEquals": {EC: "it"}}, {"Kms:EncryptionContext:DEPT": "it"}, True, id="key-name-ci-request"
    ),
    pytest.param({"StringNotEquals": {EC: "it"}}, {EC: "hr"}, True, id="StringNotEquals-differs"),
    pytest.param({"StringNotEquals": {EC: "it"}}, {EC: "it"}, False, id="StringNotEquals-same"),
    pytest.param({"StringNotEquals": {EC: "it"}}, {}, True, id="StringNotEquals-missing-key-true"),
    pytest.param(
        {"StringNotEquals": {EC: ["hr", "it"]}}, {EC: "it"}, False, id="StringNotEquals-values-NORed"
    ),
    pytest.param(
        {"StringNotEquals": {EC: ["hr", "it"]}}, {EC: "ops"}, True, id="StringNotEquals-none-listed"
    ),
    pytest.param({"StringEqualsIgnoreCase": {EC: "IT"}}, {EC: "it"}, True, id="StringEqualsIgnoreCase"),
    pytest.param({"StringEqualsIgnoreCase": {EC: "IT"}}, {}, False, id="StringEqualsIgnoreCase-missing"),
    pytest.param(
        {"StringNotEqualsIgnoreCase": {EC: "IT"}}, {EC: "it"}, False, id="StringNotEqualsIgnoreCase-same"
    ),
    pytest.param(
        {"StringNotEqualsIgnoreCase": {EC: "IT"}}, {EC: "hr"}, True, id="StringNotEqualsIgnoreCase-diff"
    ),
    pytest.param({"StringLike": {EC: "fin*"}}, {EC: "finance"}, True, id="StringLike-star"),
    pytest.param({"StringLike": {EC: "fin?"}}, {EC: "fins"}, True, id="StringLike-question"),
    pytest.param({"StringLike": {EC: "fin?"}}, {EC: "finance"}, False, id="StringLike-question-one-char"),
    pytest.param({"StringLike": {EC: "Fin*"}}, {EC: "finance"}, False, id="StringLike-case-sensitive"),
    pytest.param({"StringLike": {EC: "fin*"}}, {EC: "a-finance"}, False, id="StringLike-anchored"),
    pytest.param({"StringLike": {EC: "a.c"}}, {EC: "abc"}, False, id="StringLike-dot-is-literal"),
    pytest.param({"StringNotLike": {EC: "fin*"}}, {EC: "hr"}, True, id="StringNotLike-differs"),
    pytest.param({"StringNotLike": {EC: "fin*"}}, {EC: "finance"}, False, id="StringNotLike-matches"),
    pytest.param({"StringNotLike": {EC: "fin*"}}, {}, True, id="StringNotLike-missing-true"),
    pytest.param({"StringEqualsIfExists": {EC: "it"}}, {}, True, id="StringEqualsIfExists-missing"),
    pytest.param(
        {"StringEqualsIfExists": {EC: "it"}}, {EC: "hr"}, False, id="StringEqualsIfExists-present-wrong"
    ),
    pytest.param(
        {"StringEqualsIfExists": {EC: "it"}}, {EC: "it"}, True, id="StringEqualsIfExists-present-right"
    ),
    pytest.param({"StringNotEqualsIfExists": {EC: "it"}}, {}, True, id="StringNotEqualsIfExists-missing"),
    pytest.param(
        {"StringNotEqualsIfExists": {EC: "it"}}, {EC: "it"}, False, id="StringNotEqualsIfExists-same"
    ),
    pytest.param({"StringLikeIfExists": {EC: "f*"}}, {}, True, id="StringLikeIfExists-missing"),
    pytest.param({"stringequals": {EC: "it"}}, {EC: "it"}, True, id="operator-name-case-insensitive"),
    pytest.param(
        {"StringEquals": {EC: "it", "kms:CallerAccount": A}}, {EC: "it"}, False, id="keys-ANDed-one-missing"
    ),
    pytest.param(
        {"StringEquals": {EC: "it", "kms:CallerAccount": A}},
        {EC: "it", "kms:CallerAccount": A},
        True,
        id="keys-ANDed",
    ),
    pytest.param(
        {"StringEquals": {EC: "it"}, "StringLike": {"kms:ViaService": "ec2.*"}},
        {EC: "it", "kms:ViaService": "s3.us-east-1.amazonaws.com"},
        False,
        id="operators-ANDed",
    ),
    pytest.param(
        {"StringEquals": {"kms:GrantOperations": "Encrypt"}},
        {"kms:GrantOperations": ["Decrypt", "Encrypt"]},
        True,
        id="no-qualifier-multivalued-any",
    ),
    pytest.param(
        {"StringEquals": {"kms:RequestAlias": 123}}, {"kms:RequestAlias": "123"}, True, id="number-as-string"
    ),
]


NUMERIC_CASES = [
    pytest.param(
        {"NumericEquals": {"kms:RotationPeriodInDays": "180"}},
        {"kms:RotationPeriodInDays": 180},
        True,
        id="NumericEquals-string-policy",
    ),
    pytest.param(
        {"NumericEquals": {"kms:RotationPeriodInDays": 180}},
        {"kms:RotationPeriodInDays": "180"},
        True,
        id="NumericEquals-string-request",
    ),
    pytest.param(
        {"NumericEquals": {"kms:RotationPeriodInDays": "180"}},
        {"kms:RotationPeriodInDays": 181},
        False,
        id="NumericEquals-differs",
    ),
    pytest.param({"NumericEquals": {"n": "1.5"}}, {"n": 1.5}, True, id="NumericEquals-decimal"),
    pytest.param({"NumericNotEquals": {"n": "7"}}, {"n": 8}, True, id="NumericNotEquals-differs"),
    pytest.param({"NumericNotEquals": {"n": "7"}}, {"n": 7}, False, id="NumericNotEquals-same"),
    pytest.param({"NumericNotEquals": {"n": "7"}}, {}, True, id="NumericNotEquals-missing"),
    pytest.param({"NumericLessThan": {"n": "21"}}, {"n": 20}, True, id="NumericLessThan"),
    pytest.param({"NumericLessThan": {"n": "21"}}, {"n": 21}, False, id="NumericLessThan-equal"),
    pytest.param({"NumericLessThanEquals": {"n": "21"}}, {"n": 21}, True, id="NumericLessThanEquals"),
    pytest.param({"NumericLessThanEquals": {"n": "21"}}, {"n": 22}, False, id="NumericLessThanEquals-above"),
    pytest.param({"NumericGreaterThan": {"n": "21"}}, {"n": 22}, True, id="NumericGreaterThan"),
    pytest.param({"NumericGreaterThan": {"n": "21"}}, {"n": 21}, False, id="NumericGreaterThan-equal"),
    pytest.param({"NumericGreaterThanEquals": {"n": "21"}}, {"n": 21}, True, id="NumericGreaterThanEquals"),
    pytest.param(
        {"NumericGreaterThanEquals": {"n": "21"}}, {"n": 20}, False, id="NumericGreaterThanEquals-below"
    ),
    pytest.param({"NumericLessThan": {"n": "21"}}, {}, False, id="NumericLessThan-missing"),
    pytest.param({"NumericLessThanIfExists": {"n": "21"}}, {}, True, id="NumericLessThanIfExists-missing"),
    pytest.param({"NumericLessThan": {"n": "21"}}, {"n": "abc"}, False, id="Numeric-non-numeric-request"),
    pytest.param({"NumericLessThan": {"n": ["5", "30"]}}, {"n": 20}, True, id="Numeric-values-ORed"),
]

EPOCH_NOW = int(NOW.timestamp())
DATE_CASES = [
    pytest.param(
        {"DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}},
        {"aws:CurrentTime": NOW},
        True,
        id="DateLessThan-iso",
    ),
    pytest.param(
        {"DateLessThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"}},
        {"aws:CurrentTime": NOW},
        False,
        id="DateLessThan-iso-past",
    ),
    pytest.param(
        {"DateLessThan": {"aws:CurrentTime": "2025-01-01"}},
        {"aws:CurrentTime": NOW},
        True,
        id="DateLessThan-date-only",
    ),
    pytest.param(
        {"DateLessThan": {"aws:CurrentTime": "2024-07"}}, {"aws:CurrentTime": NOW}, True, id="Date-year-month"
    ),
    pytest.param(
        {"DateLessThan": {"aws:CurrentTime": "2024"}},
        {"aws:CurrentTime": NOW},
        False,
        id="Date-digits-are-epoch",
    ),
    pytest.param(
        {"DateLessThan": {"aws:CurrentTime": str(EPOCH_NOW + 1)}},
        {"aws:CurrentTime": NOW},
        True,
        id="DateLessThan-epoch-policy",
    ),
    pytest.param(
        {"DateLessThan": {"aws:CurrentTime": EPOCH_NOW + 1}},
        {"aws:CurrentTime": NOW},
        True,
        id="DateLessThan-epoch-number-policy",
    ),
    pytest.param(
        {"DateGreaterThan": {"aws:EpochTime": "2024-06-01T11:59:59Z"}},
        {"aws:EpochTime": EPOCH_NOW},
        True,
        id="DateGreaterThan-epoch-request",
    ),
    pytest.param(
        {"DateEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}},
        {"aws:CurrentTime": NOW},
        True,
        id="DateEquals",
    ),
    pytest.param(
        {"DateEquals": {"aws:CurrentTime": "2024-06-01T14:00:00+02:00"}},
        {"aws:CurrentTime": NOW},
        True,
        id="DateEquals-offset",
    ),
    pytest.param(
        {"DateEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}},
        {"aws:CurrentTime": NOW.astimezone(timezone(timedelta(hours=-5)))},
        True,
        id="DateEquals-aware",
    ),
    pytest.param(
        {"DateNotEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}},
        {"aws:CurrentTime": NOW},
        False,
        id="DateNotEquals-same",
    ),
    pytest.param(
        {"DateNotEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}}, {}, True, id="DateNotEquals-missing"
    ),
    pytest.param(
        {"DateLessThanEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}},
        {"aws:CurrentTime": NOW},
        True,
        id="DateLessThanEquals",
    ),
    pytest.param(
        {"DateGreaterThanEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}},
        {"aws:CurrentTime": NOW},
        True,
        id="DateGreaterThanEquals",
    ),
    pytest.param(
        {"DateGreaterThan": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}},
        {"aws:CurrentTime": NOW},
        False,
        id="DateGreaterThan-equal",
    ),
    pytest.param(
        {"DateGreaterThan": {"aws:TokenIssueTime": "2020-01-01T00:00:01Z"}}, {}, False, id="Date-missing-key"
    ),
    pytest.param(
        {"DateGreaterThanIfExists": {"aws:TokenIssueTime": "2020-01-01T00:00:01Z"}},
        {},
        True,
        id="DateIfExists-missing",
    ),
    pytest.param(
        {"DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}},
        {"aws:CurrentTime": "2024-06-01T12:00:00Z"},
        True,
        id="Date-iso-string-request",
    ),
    pytest.param(
        {"NumericLessThanEquals": {"kms:ValidTo": "1735689600"}},
        {"kms:ValidTo": 1735689600},
        True,
        id="ValidTo-numeric-epoch",
    ),
]

BOOL_BINARY_IP_CASES = [
    pytest.param(
        {"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, True, id="Bool-true"
    ),
    pytest.param(
        {"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": True}, True, id="Bool-json-true"
    ),
    pytest.param(
        {"Bool": {"aws:SecureTransport": "TRUE"}}, {"aws:SecureTransport": "true"}, True, id="Bool-ci"
    ),
    pytest.param(
        {"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": True}, False, id="Bool-mismatch"
    ),
    pytest.param({"Bool": {"aws:SecureTransport": "false"}}, {}, False, id="Bool-missing"),
    pytest.param({"BoolIfExists": {"aws:SecureTransport": "false"}}, {}, True, id="BoolIfExists-missing"),
    pytest.param(
        {"BinaryEquals": {"k": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}},
        {"k": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="},
        True,
        id="BinaryEquals",
    ),
    pytest.param(
        {"BinaryEquals": {"k": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}},
        {"k": "b3RoZXI="},
        False,
        id="BinaryEquals-differs",
    ),
    pytest.param(
        {"BinaryEquals": {"k": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}, {}, False, id="BinaryEquals-missing"
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
        {"aws:SourceIp": "203.0.113.77"},
        True,
        id="IpAddress-v4-in",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
        {"aws:SourceIp": "203.0.114.1"},
        False,
        id="IpAddress-v4-out",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "203.0.113.5"}},
        {"aws:SourceIp": "203.0.113.5"},
        True,
        id="IpAddress-bare-is-32",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "203.0.113.5"}},
        {"aws:SourceIp": "203.0.113.6"},
        False,
        id="IpAddress-bare-other",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "2001:DB8:1234:5678::/64"}},
        {"aws:SourceIp": "2001:db8:1234:5678::9"},
        True,
        id="IpAddress-v6-in",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "2001:DB8:1234:5678::/64"}},
        {"aws:SourceIp": "2001:db8:1234:9999::1"},
        False,
        id="IpAddress-v6-out",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8::/32"]}},
        {"aws:SourceIp": "2001:db8::1"},
        True,
        id="IpAddress-mixed-list",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "2001:DB8::/32"}},
        {"aws:SourceIp": "203.0.113.1"},
        False,
        id="IpAddress-v4-request-v6-range",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}},
        {"aws:SourceIp": "not-an-ip"},
        False,
        id="IpAddress-garbage-request",
    ),
    pytest.param({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {}, False, id="IpAddress-missing"),
    pytest.param(
        {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
        {"aws:SourceIp": "198.51.100.1"},
        True,
        id="NotIpAddress-outside",
    ),
    pytest.param(
        {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
        {"aws:SourceIp": "203.0.113.1"},
        False,
        id="NotIpAddress-inside",
    ),
    pytest.param({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {}, True, id="NotIpAddress-missing"),
    pytest.param(
        {"NotIpAddressIfExists": {"aws:SourceIp": "203.0.113.0/24"}},
        {},
        True,
        id="NotIpAddressIfExists-missing",
    ),
]

SRC = "aws:SourceArn"
ARN_CASES = [
    pytest.param(
        {"ArnEquals": {SRC: "arn:aws:sns:us-east-2:123456789012:topic"}},
        {SRC: "arn:aws:sns:us-east-2:123456789012:topic"},
        True,
        id="ArnEquals",
    ),
    pytest.param(
        {"ArnEquals": {SRC: "arn:aws:sns:us-east-2:123456789012:topic"}},
        {SRC: "arn:aws:sns:us-east-2:123456789012:Topic"},
        False,
        id="ArnEquals-case-sensitive",
    ),
    pytest.param(
        {"ArnLike": {SRC: "arn:aws:sns:*:123456789012:*"}},
        {SRC: "arn:aws:sns:eu-west-1:123456789012:t"},
        True,
        id="ArnLike-region-wildcard",
    ),
    pytest.param(
        {"ArnEquals": {SRC: "arn:aws:sns:*:123456789012:*"}},
        {SRC: "arn:aws:sns:eu-west-1:123456789012:t"},
        True,
        id="ArnEquals-behaves-like-ArnLike",
    ),
    # IAM User Guide: StringLike matches, ArnLike does not (wildcards do not cross components).
    pytest.param(
        {"StringLike": {SRC: "arn:aws:someservice:*:111122223333:finance/*"}},
        {SRC: "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"},
        True,
        id="StringLike-crosses-colons",
    ),
    pytest.param(
        {"ArnLike": {SRC: "arn:aws:someservice:*:111122223333:finance/*"}},
        {SRC: "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"},
        False,
        id="ArnLike-component-wise",
    ),
    pytest.param(
        {"ArnLike": {SRC: "arn:aws:logs:us-east-1:111122223333:*"}},
        {SRC: "arn:aws:logs:us-east-1:111122223333:log-group:/aws/x:*"},
        True,
        id="ArnLike-resource-colons",
    ),
    pytest.param(
        {"ArnNotLike": {SRC: "arn:aws:sns:*:123456789012:*"}},
        {SRC: "arn:aws:sns:eu-west-1:999999999999:t"},
        True,
        id="ArnNotLike-other-account",
    ),
    pytest.param(
        {"ArnNotEquals": {SRC: "arn:aws:sns:*:123456789012:*"}}, {}, True, id="ArnNotEquals-missing"
    ),
    pytest.param({"ArnLike": {SRC: "arn:aws:sns:*:123456789012:*"}}, {}, False, id="ArnLike-missing"),
    pytest.param(
        {"ArnLike": {SRC: "arn:aws:sns:*:123456789012:*"}}, {SRC: "not-an-arn"}, False, id="ArnLike-not-arn"
    ),
    pytest.param(
        {"ArnLikeIfExists": {SRC: "arn:aws:sns:*:123456789012:*"}}, {}, True, id="ArnLikeIfExists-missing"
    ),
]

NULL_CASES = [
    pytest.param({"Null": {"aws:TokenIssueTime": "true"}}, {}, True, id="Null-true-absent"),
    pytest.param(
        {"Null": {"aws:TokenIssueTime": "true"}}, {"aws:TokenIssueTime": NOW}, False, id="Null-true-present"
    ),
    pytest.param(
        {"Null": {"aws:TokenIssueTime": "false"}}, {"aws:TokenIssueTime": NOW}, True, id="Null-false-present"
    ),
    pytest.param({"Null": {"aws:TokenIssueTime": "false"}}, {}, False, id="Null-false-absent"),
    pytest.param(
        {"Null": {"kms:EncryptionContextKeys": False}},
        {"kms:EncryptionContextKeys": []},
        False,
        id="Null-empty-list-is-absent",
    ),
    pytest.param({"Null": {"kms:BypassPolicyLockoutSafetyCheck": True}}, {}, True, id="Null-json-bool"),
    pytest.param({"Null": {"aws:TokenIssueTime": ["true", "false"]}}, {}, True, id="Null-both-values"),
    pytest.param({"Null": {"aws:username": "false"}}, {}, True, id="Null-sees-principal-keys"),
]

TAG_KEYS = "aws:TagKeys"
SET_CASES = [
    pytest.param(
        {"ForAnyValue:StringEquals": {TAG_KEYS: ["a", "b"]}},
        {TAG_KEYS: ["b", "c"]},
        True,
        id="ForAnyValue-overlap",
    ),
    pytest.param(
        {"ForAnyValue:StringEquals": {TAG_KEYS: ["a", "b"]}},
        {TAG_KEYS: ["c"]},
        False,
        id="ForAnyValue-no-overlap",
    ),
    pytest.param({"ForAnyValue:StringEquals": {TAG_KEYS: ["a"]}}, {}, False, id="ForAnyValue-missing-false"),
    pytest.param(
        {"ForAnyValue:StringEquals": {TAG_KEYS: ["a"]}}, {TAG_KEYS: []}, False, id="ForAnyValue-empty-false"
    ),
    pytest.param(
        {"ForAllValues:StringEquals": {TAG_KEYS: ["a", "b"]}},
        {TAG_KEYS: ["a"]},
        True,
        id="ForAllValues-subset",
    ),
    pytest.param(
        {"ForAllValues:StringEquals": {TAG_KEYS: ["a", "b"]}},
        {TAG_KEYS: ["a", "z"]},
        False,
        id="ForAllValues-extra",
    ),
    pytest.param({"ForAllValues:StringEquals": {TAG_KEYS: ["a"]}}, {}, True, id="ForAllValues-missing-true"),
    pytest.param(
        {"ForAllValues:StringEquals": {TAG_KEYS: ["a"]}}, {TAG_KEYS: []}, True, id="ForAllValues-empty-true"
    ),
    pytest.param(
        {"ForAllValues:StringLike": {TAG_KEYS: "Created*"}},
        {TAG_KEYS: ["CreatedBy", "CreatedAt"]},
        True,
        id="ForAllValues-StringLike",
    ),
    pytest.param(
        {"ForAnyValue:StringNotEquals": {TAG_KEYS: ["a", "b"]}},
        {TAG_KEYS: ["a", "c"]},
        True,
        id="ForAnyValue-StringNotEquals-some-unlisted",
    ),
    pytest.param(
        {"ForAnyValue:StringNotEquals": {TAG_KEYS: ["a", "b"]}},
        {TAG_KEYS: ["a", "b"]},
        False,
        id="ForAnyValue-StringNotEquals-all-listed",
    ),
    pytest.param(
        {"ForAllValues:StringNotEquals": {TAG_KEYS: ["a", "b"]}},
        {TAG_KEYS: ["c", "d"]},
        True,
        id="ForAllValues-StringNotEquals-none-listed",
    ),
    pytest.param(
        {"ForAllValues:StringNotEquals": {TAG_KEYS: ["a", "b"]}},
        {TAG_KEYS: ["a", "d"]},
        False,
        id="ForAllValues-StringNotEquals-one-listed",
    ),
    pytest.param(
        {"ForAllValues:StringNotEquals": {TAG_KEYS: ["a"]}}, {}, True, id="ForAllValues-negated-missing"
    ),
    pytest.param(
        {"ForAnyValue:StringEqualsIfExists": {TAG_KEYS: ["a"]}}, {}, True, id="ForAnyValue-IfExists-missing"
    ),
    pytest.param(
        {"ForAnyValue:StringEqualsIgnoreCase": {TAG_KEYS: ["APP"]}},
        {TAG_KEYS: ["app"]},
        True,
        id="ForAnyValue-IgnoreCase",
    ),
    pytest.param(
        {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["AppName"]}},
        {"kms:EncryptionContextKeys": ["appname"]},
        False,
        id="ForAllValues-case-sensitive-values",
    ),
]

PRINCIPAL_KEY_CASES = [
    pytest.param(
        {"StringEquals": {"aws:PrincipalArn": f"arn:aws:iam::{A}:user/bob"}},
        {},
        BOB,
        True,
        id="PrincipalArn-user",
    ),
    pytest.param(
        {"StringEquals": {"aws:PrincipalArn": f"arn:aws:iam::{A}:role/App"}},
        {},
        SESSION,
        True,
        id="PrincipalArn-session-is-role-arn",
    ),
    pytest.param(
        {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{A}:role/*"}},
        {},
        SESSION,
        True,
        id="PrincipalArn-ArnLike",
    ),
    pytest.param({"StringEquals": {"aws:PrincipalAccount": A}}, {}, SESSION, True, id="PrincipalAccount"),
    pytest.param({"StringEquals": {"aws:PrincipalType": "User"}}, {}, BOB, True, id="PrincipalType-User"),
    pytest.param(
        {"StringEquals": {"aws:PrincipalType": "AssumedRole"}},
        {},
        SESSION,
        True,
        id="PrincipalType-AssumedRole",
    ),
    pytest.param(
        {"StringEquals": {"aws:PrincipalType": "Account"}}, {}, ROOT, True, id="PrincipalType-Account"
    ),
    pytest.param(
        {"StringEquals": {"aws:userid": "AROAEXAMPLEAPP:s1"}}, {}, SESSION, True, id="userid-session"
    ),
    pytest.param({"StringEquals": {"aws:username": "bob"}}, {}, BOB, True, id="username-user"),
    pytest.param(
        {"StringEquals": {"aws:username": "bob"}}, {}, SESSION, False, id="username-absent-for-session"
    ),
    pytest.param(
        {"StringEquals": {"aws:PrincipalTag/team": "blue"}}, {}, BOB, True, id="PrincipalTag-key-ci"
    ),
    pytest.param(
        {"StringEquals": {"aws:PrincipalTag/Team": "Blue"}}, {}, BOB, False, id="PrincipalTag-value-cs"
    ),
    pytest.param(
        {"StringEquals": {"aws:PrincipalArn": "arn:aws:iam::999999999999:user/mallory"}},
        {"aws:PrincipalArn": "arn:aws:iam::999999999999:user/mallory"},
        BOB,
        False,
        id="request-cannot-override-principal-keys",
    ),
]

VARIABLE_CASES = [
    pytest.param(
        {"StringEquals": {"kms:EncryptionContext:user": "${aws:username}"}},
        {"kms:EncryptionContext:user": "bob"},
        BOB,
        True,
        id="var-username",
    ),
    pytest.param(
        {"StringEquals": {"kms:EncryptionContext:user": "${aws:username}"}},
        {"kms:EncryptionContext:user": "alice"},
        BOB,
        False,
        id="var-username-other",
    ),
    pytest.param(
        {"StringEquals": {"kms:EncryptionContext:user": "${AWS:UserName}"}},
        {"kms:EncryptionContext:user": "bob"},
        BOB,
        True,
        id="var-name-case-insensitive",
    ),
    pytest.param(
        {"StringEquals": {"kms:EncryptionContext:user": "${aws:username}"}},
        {"kms:EncryptionContext:user": "bob"},
        SESSION,
        False,
        id="var-unresolved-voids",
    ),
    pytest.param(
        {"StringNotEquals": {"kms:EncryptionContext:user": "${aws:username}"}},
        {"kms:EncryptionContext:user": "bob"},
        SESSION,
        False,
        id="var-unresolved-voids-negated",
    ),
    pytest.param(
        {"StringEquals": {"kms:EncryptionContext:user": "${aws:username, 'anonymous'}"}},
        {"kms:EncryptionContext:user": "anonymous"},
        SESSION,
        True,
        id="var-default",
    ),
    pytest.param(
        {"StringEquals": {"kms:EncryptionContext:user": "${aws:username, 'it''s'}"}},
        {"kms:EncryptionContext:user": "it's"},
        SESSION,
        True,
        id="var-default-quote",
    ),
    pytest.param(
        {"StringEquals": {"kms:EncryptionContext:team": "${aws:PrincipalTag/team}"}},
        {"kms:EncryptionContext:team": "blue"},
        BOB,
        True,
        id="var-principal-tag",
    ),
    pytest.param(
        {"StringLike": {"kms:EncryptionContext:path": "home/${aws:username}/*"}},
        {"kms:EncryptionContext:path": "home/bob/docs"},
        BOB,
        True,
        id="var-in-StringLike",
    ),
    pytest.param(
        {"StringLike": {"kms:EncryptionContext:path": "a${*}b"}},
        {"kms:EncryptionContext:path": "a*b"},
        BOB,
        True,
        id="var-literal-star",
    ),
    pytest.param(
        {"StringLike": {"kms:EncryptionContext:path": "a${*}b"}},
        {"kms:EncryptionContext:path": "axxb"},
        BOB,
        False,
        id="var-literal-star-not-wildcard",
    ),
    pytest.param(
        {"StringEquals": {"kms:EncryptionContext:p": "${$}{x}"}},
        {"kms:EncryptionContext:p": "${x}"},
        BOB,
        True,
        id="var-literal-dollar",
    ),
    pytest.param(
        {"StringLike": {"kms:EncryptionContext:team": "${aws:PrincipalTag/team}"}},
        {"kms:EncryptionContext:team": "b*"},
        Caller(BOB.arn, A, "IAMUser", "x", "bob", None, {"team": "b*"}),
        True,
        id="var-value-is-literal-in-like",
    ),
    pytest.param(
        {"StringLike": {"kms:EncryptionContext:team": "${aws:PrincipalTag/team}"}},
        {"kms:EncryptionContext:team": "blue"},
        Caller(BOB.arn, A, "IAMUser", "x", "bob", None, {"team": "b*"}),
        False,
        id="var-value-no-wildcards",
    ),
    pytest.param(
        {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::bucket/${aws:username}/*"}},
        {"aws:SourceArn": "arn:aws:s3:::bucket/bob/x"},
        BOB,
        True,
        id="var-in-ArnLike",
    ),
]


@pytest.mark.parametrize(("condition", "context", "expected"), STRING_CASES)
def test_string_operators(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    assert applies(condition, context) is expected


@pytest.mark.parametrize(("condition", "context", "expected"), NUMERIC_CASES)
def test_numeric_operators(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    assert applies(condition, context) is expected


@pytest.mark.parametrize(("condition", "context", "expected"), DATE_CASES)
def test_date_operators(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    assert applies(condition, context) is expected


@pytest.mark.parametrize(("condition", "context", "expected"), BOOL_BINARY_IP_CASES)
def test_bool_binary_ip_operators(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    assert applies(condition, context) is expected


@pytest.mark.parametrize(("condition", "context", "expected"), ARN_CASES)
def test_arn_operators(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    assert applies(condition, context) is expected


@pytest.mark.parametrize(("condition", "context", "expected"), NULL_CASES)
def test_null_operator(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    assert applies(condition, context) is expected


@pytest.mark.parametrize(("condition", "context", "expected"), SET_CASES)
def test_set_qualifiers(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    assert applies(condition, context) is expected


@pytest.mark.parametrize(("condition", "context", "caller", "expected"), PRINCIPAL_KEY_CASES)
def test_principal_derived_keys(
    condition: dict[str, Any], context: dict[str, Any], caller: Caller, expected: bool
) -> None:
    assert applies(condition, context, caller) is expected


@pytest.mark.parametrize(("condition", "context", "caller", "expected"), VARIABLE_CASES)
def test_policy_variables_in_conditions(
    condition: dict[str, Any], context: dict[str, Any], caller: Caller, expected: bool
) -> None:
    assert applies(condition, context, caller) is expected


@pytest.mark.parametrize(
    ("resource", "caller", "expected"),
    [
        pytest.param(
            f"arn:aws:kms:us-east-1:{A}:key/${{aws:username}}", BOB, False, id="resource-var-other-key"
        ),
        pytest.param(
            f"arn:aws:kms:*:{A}:key/${{aws:PrincipalTag/team, 'none'}}*", BOB, False, id="resource-var-tag"
        ),
        pytest.param(
            f"arn:aws:kms:*:{A}:key/${{aws:username}}", SESSION, False, id="resource-var-unresolved"
        ),
    ],
)
def test_policy_variables_in_resource(resource: str, caller: Caller, expected: bool) -> None:
    assert applies({}, {}, caller, resource=resource) is expected


def test_resource_variable_matches_own_name() -> None:
    key = f"arn:aws:kms:us-east-1:{A}:key/bob"
    doc = parse_policy(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "kms:*",
                        "Resource": f"arn:aws:kms:*:{A}:key/${{aws:username}}",
                    }
                ],
            }
        ),
        kind="identity",
    )
    assert evaluate(doc, BOB, Request("kms:Encrypt", key, A, {}), resource_policy=False) is Effect.ALLOW
    alice = Caller(f"arn:aws:iam::{A}:user/alice", A, "IAMUser", "AIDAALICE", "alice", None, {})
    assert evaluate(doc, alice, Request("kms:Encrypt", key, A, {}), resource_policy=False) is Effect.NONE


def test_variables_are_literal_in_version_2008_key_policies() -> None:
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "kms:Encrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:user": "${aws:username}"}},
    }
    doc = parse_policy(json.dumps({"Version": "2008-10-17", "Statement": [statement]}))
    literal = Request("kms:Encrypt", KEY, A, {"kms:EncryptionContext:user": "${aws:username}"})
    resolved = Request("kms:Encrypt", KEY, A, {"kms:EncryptionContext:user": "bob"})
    assert evaluate(doc, BOB, literal, resource_policy=True) is Effect.ALLOW
    assert evaluate(doc, BOB, resolved, resource_policy=True) is Effect.NONE


def test_ifexists_with_deny_and_negated_operator_still_denies_present_values() -> None:
    """IAM: "If you are using Deny with a negated operator like StringNotEqualsIfExists, the request is
    still denied" when the value is present and different; a missing key makes the condition true."""
    statement = {
        "Effect": "Deny",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"StringNotEqualsIfExists": {"aws:ResourceTag/env": "dev"}},
    }
    doc = parse_policy(json.dumps({"Version": "2012-10-17", "Statement": [statement]}), kind="identity")
    for context, expected in (
        ({"aws:ResourceTag/env": "prod"}, Effect.DENY),
        ({}, Effect.DENY),
        ({"aws:ResourceTag/env": "dev"}, Effect.NONE),
    ):
        assert evaluate(doc, BOB, Request("kms:Encrypt", KEY, A, context), resource_policy=False) is expected
