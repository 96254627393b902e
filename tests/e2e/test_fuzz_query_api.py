"""Robustness of the IAM and STS Query APIs: bad input gets a proper AWS Query error, never a 5xx or a hang.

For every IAM and STS operation the server implements (``iam.OPERATIONS``, ``sts.OPERATIONS``), form
bodies are generated from botocore's ``iam``/``sts`` models with a seeded ``random.Random``
(``OPENKMS_FUZZ_SEED``, ``OPENKMS_QUERY_FUZZ_CASES`` per operation) at the three levels of disorder of
the KMS fuzz (``test_fuzz_requests.py``): plausible, plausible with one defect, anything goes. Plausible
values are the test's own users, roles, managed policies, access keys, markers and policy documents
(valid ones, and bad JSON, huge, deeply nested, every condition operator with every kind of value);
defects are model boundaries (empty, max, max+1), bad enums and numbers, control characters, and at
the form level repeated parameters, list members with gaps or huge indexes, non-UTF-8 percent escapes
and unknown parameters. Raw requests come first: missing or unknown Action and Version, GET with a
query string, wrong content types, oversize bodies, broken signatures, and the requests that once got a
500 or hung.

Every request is SigV4-signed for ``iam``/``sts`` (us-east-1) with the administrator key of a fresh
account (the ``admin`` user and its key are never targeted) and sent over one keep-alive connection.
Each answer must come within ``TIMEOUT`` seconds with a status below 500 and be a 200 with the
operation's XML, or an ``<ErrorResponse><Error><Code/><Message/></Error><RequestId/>`` whose code is
modeled for the operation or common to AWS Query services, with the status AWS gives it. When the form
certainly breaks the model the answer must be a ValidationError. The principals whose policies the
fuzz rewrote then make calls of their own (their odd policies get evaluated), and the server must
still work: a KMS Encrypt/Decrypt round trip and an IAM ListUsers.
"""

from __future__ import annotations

import json
import os
import random
import re
import string
import time
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from openkms.service import iam as iam_service
from openkms.service.iam import sts as sts_service
from tests.conftest import REGION, Server
from tests.e2e.test_fuzz_requests import (
    INVALID,
    JUNK_STRINGS,
    UNKNOWN,
    VALID,
    Outcomes,
    Reply,
    Wire,
    _server_log_tail,
    _utf16_len,
    _worst,
)
from tests.e2e.util import NoAnswer

SEED = int(os.environ.get("OPENKMS_FUZZ_SEED", "4934995"))
CASES_PER_OPERATION = int(os.environ.get("OPENKMS_QUERY_FUZZ_CASES", "60"))
TIMEOUT = 10.0
FORM_CT = "application/x-www-form-urlencoded; charset=utf-8"
_session = botocore.session.get_session()
MODELS = {service: _session.get_service_model(service) for service in ("iam", "sts")}
VERSIONS = {service: str(model.metadata["apiVersion"]) for service, model in MODELS.items()}
NAMESPACES = {
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
}
IMPLEMENTED = {"iam": sorted(iam_service.OPERATIONS), "sts": sorted(sts_service.OPERATIONS)}
ADMIN = "admin"  # the account's administrator: never a target (the fuzz signs with its key)
# Members the server refuses whatever their value (permissions boundaries, session policies)
UNSUPPORTED = frozenset({"PermissionsBoundary", "Policy", "PolicyArns"})

# Errors any AWS Query service may answer, whatever the operation models, with their HTTP status.
COMMON_ERRORS: dict[str, frozenset[int]] = {
    "ValidationError": frozenset({400}),
    "InvalidParameterValue": frozenset({400}),
    "InvalidParameterCombination": frozenset({400}),
    "MissingParameter": frozenset({400}),
    "MalformedPolicyDocument": frozenset({400}),
    "NoSuchEntity": frozenset({404}),
    "InvalidAction": frozenset({400}),
    "MissingAction": frozenset({400}),
    "AccessDenied": frozenset({403}),
    "SignatureDoesNotMatch": frozenset({403}),
    "IncompleteSignature": frozenset({400}),
    "InvalidClientTokenId": frozenset({403}),
    "MissingAuthenticationToken": frozenset({403}),
    "ExpiredToken": frozenset({403}),
    "RequestEntityTooLarge": frozenset({413}),
    "Throttling": frozenset({400}),
}
# What a form that certainly breaks the model may get (input is validated before anything else,
# after the body size and the signature).
INPUT_ERRORS = frozenset({"ValidationError", "RequestEntityTooLarge"})

# Operations that remove what the other cases use run last.
STATE_CHANGING = (
    "DetachUserPolicy",
    "DetachRolePolicy",
    "DeleteUserPolicy",
    "DeleteRolePolicy",
    "UntagUser",
    "UntagRole",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "DeletePolicy",
    "DeleteRole",
    "DeleteUser",
)


def operation_order() -> list[tuple[str, str]]:
    names = [("sts", op) for op in IMPLEMENTED["sts"]] + [("iam", op) for op in IMPLEMENTED["iam"]]
    assert {("iam", op) for op in STATE_CHANGING} <= set(names)
    last = [("iam", op) for op in STATE_CHANGING]
    return [n for n in names if n not in last] + last


def error_statuses(service: str, operation: str | None) -> dict[str, frozenset[int]]:
    """Error code -> the HTTP statuses AWS answers it with, for this operation."""
    allowed = dict(COMMON_ERRORS)
    model = MODELS[service]
    if operation is not None and operation in model.operation_names:
        for shape in model.operation_model(operation).error_shapes:
            error = shape.metadata.get("error", {})
            allowed[error.get("code", shape.name)] = frozenset({int(error.get("httpStatusCode", 400))})
    return allowed


# --- policy documents ----------------------------------------------------------------------------------


def _doc(statements: Any, version: Any = "2012-10-17", **extra: Any) -> str:
    body: dict[str, Any] = {"Statement": statements, **extra}
    if version is not None:
        body = {"Version": version, **body}
    return json.dumps(body)


CONDITION_OPERATORS = (
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "StringLike",
    "StringNotLike", "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
    "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals", "DateNotEquals", "DateLessThan",
    "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals", "Bool", "BinaryEquals", "IpAddress",
    "NotIpAddress", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Null",
)  # fmt: skip
CONDITION_KEYS = (
    "aws:username", "aws:userid", "aws:PrincipalArn", "aws:PrincipalAccount", "aws:PrincipalTag/team",
    "aws:RequestTag/env", "aws:TagKeys", "aws:ResourceTag/env", "aws:CurrentTime", "aws:EpochTime",
    "aws:SourceIp", "aws:SecureTransport", "aws:MultiFactorAuthPresent", "aws:MultiFactorAuthAge",
    "aws:TokenIssueTime", "sts:ExternalId", "sts:RoleSessionName", "sts:SourceIdentity",
    "iam:PermissionsBoundary", "iam:PolicyARN", "kms:EncryptionContext:x", "no-colon", "a:b:c", "",
)  # fmt: skip
CONDITION_VALUES: tuple[Any, ...] = (
    "x", "", "*", "?", "${aws:username}", "${", "${}", "${aws:nothing}", "${*}", 0, -1, 1.5, 1e308, 2**64,
    True, False, None, [], ["a", 1, None], {"a": "b"}, [[["deep"]]], "2030-01-01T00:00:00Z", "not a date",
    "1700000000", "10.0.0.0/8", "999.1.1.1/99", "::1/200", "2001:db8::/32", "arn:aws:iam::*:user/*",
    "arn:", "true", "maybe", "AAEC", "!!!", "\u00e9" * 3, "x" * 3000,
)  # fmt: skip


def odd_conditions(rng: random.Random) -> dict[str, Any]:
    """A Condition block with operators (plain, IfExists, ForAllValues/ForAnyValue) and values of
    every JSON kind."""
    block: dict[str, Any] = {}
    for _ in range(rng.randint(1, 6)):
        operator = rng.choice(CONDITION_OPERATORS)
        roll = rng.random()
        if roll < 0.2:
            operator += "IfExists"
        elif roll < 0.4:
            operator = rng.choice(("ForAllValues:", "ForAnyValue:")) + operator
        elif roll < 0.45:
            operator = rng.choice(("NoSuchOperator", "", "ForSomeValues:StringEquals", "stringequals"))
        block[operator] = {rng.choice(CONDITION_KEYS): rng.choice(CONDITION_VALUES) for _ in range(2)}
        if rng.random() < 0.1:
            block[operator] = rng.choice(CONDITION_VALUES)
    return block


def _nested(levels: int, opening: str = '{"a":', closing: str = "}") -> str:
    return opening * levels + "1" + closing * levels


GOOD_IDENTITY_DOCS = 4  # the first documents of identity_policies() and trust_policies() are valid
GOOD_TRUST_DOCS = 3


def identity_policies(rng: random.Random, account: str) -> list[str]:
    allow = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    docs = [
        _doc([allow]),
        _doc([{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "iam:Get*"], "Resource": "*"}]),
        _doc([{"Effect": "Deny", "NotAction": "iam:*", "NotResource": f"arn:aws:iam::{account}:user/*"}]),
        _doc([{"Effect": "Allow", "Action": "iam:*", "Resource": "arn:aws:iam::*:user/${aws:username}"}]),
        _doc([{**allow, "Condition": odd_conditions(rng)}]),
        _doc([{**allow, "Condition": odd_conditions(rng)}, {**allow, "Condition": odd_conditions(rng)}]),
        _doc([{**allow, "Condition": {"StringEquals": "not a map"}}]),
        _doc([{**allow, "Condition": {"StringEquals": {"aws:username": json.loads(_nested(60))}}}]),
        _doc([{**allow, "Condition": []}]),
        _doc([{**allow, "Effect": "Maybe"}]),
        _doc([{**allow, "Sid": "a"}, {**allow, "Sid": "a"}]),
        _doc([{**allow, "Sid": "\u00e9 \t!"}]),
        _doc([{"Effect": "Allow", "Action": "*"}]),
        _doc([{"Effect": "Allow", "Resource": "*"}]),
        _doc([{**allow, "Action": "nocolon"}]),
        _doc([{**allow, "Action": "a:b:c"}]),
        _doc([{**allow, "Action": [[["iam:*"]]]}]),
        _doc([{**allow, "Action": 12}]),
        _doc([{**allow, "Action": []}]),
        _doc([{**allow, "Resource": None}]),
        _doc([{**allow, "Principal": "*"}]),
        _doc([{**allow, "Unknown": 1}]),
        _doc([]),
        _doc(allow),
        _doc("statement"),
        _doc([allow], version=None),
        _doc([allow], version="2008-10-17"),
        _doc([allow], version="2099-01-01"),
        _doc([allow], version=20121017),
        _doc([allow], Id={"a": 1}),
        _doc([allow], Extra=True),
        _doc([allow] * 40),
        _doc([{**allow, "Action": [f"iam:Get{i}" for i in range(2000)]}]),  # over every size limit
        "{",
        "[]",
        "null",
        '"policy"',
        "{}",
        "1e400",
        _nested(10_000),
        '{"Statement": ' + _nested(10_000, "[", "]") + "}",
        '{"Version": "2012-10-17", "Statement": [' + ",".join([json.dumps(allow)] * 2) + "],}",
        '{"Version": "2012-10-17", "Version": "2008-10-17", "Statement": []}',
        "\ufeff" + _doc([allow]),
        " \n\t" + _doc([allow]) + "\r\n",
        _doc([allow]).replace('"*"', '"\\u0000"'),
        _doc([{**allow, "Sid": "\x01"}]),  # a control character: outside the model's pattern
        _doc([{**allow, "Sid": "\u2603"}]),  # outside the model's pattern too
    ]
    return docs


def trust_policies(rng: random.Random, account: str, principal: str) -> list[str]:
    trust = {"Effect": "Allow", "Action": "sts:AssumeRole"}
    docs = [
        _doc([{**trust, "Principal": {"AWS": f"arn:aws:iam::{account}:root"}}]),
        _doc([{**trust, "Principal": {"AWS": principal}}]),
        _doc([{**trust, "Principal": {"AWS": account}}]),
        _doc([{**trust, "Principal": "*", "Condition": odd_conditions(rng)}]),
        _doc([{**trust, "Principal": {"AWS": principal}, "Condition": odd_conditions(rng)}]),
        _doc([{**trust, "Action": ["sts:AssumeRole", "sts:TagSession"], "Principal": {"AWS": principal}}]),
        _doc([{**trust, "Principal": {"Service": "ec2.amazonaws.com"}}]),
        _doc([{**trust, "Principal": {"Federated": "cognito-identity.amazonaws.com"}}]),
        _doc([{**trust, "Principal": {"CanonicalUser": "x"}}]),
        _doc([{**trust, "Principal": {"AWS": ["arn:aws:iam::999999999999:root", 12, None]}}]),
        _doc([{**trust, "Principal": {"AWS": "arn:aws:iam::123:root"}}]),
        _doc([{**trust, "NotPrincipal": {"AWS": principal}}]),
        _doc([{**trust, "Principal": {"AWS": principal}, "Resource": "*"}]),
        _doc([trust]),
        _doc([{**trust, "Effect": "Deny", "Principal": "*"}]),
    ]
    return docs


# --- pools of plausible values ---------------------------------------------------------------------


@dataclass
class Pools:
    """The fuzzed account's own principals and values, grown with what successful calls return."""

    account_id: str
    admin_key: str
    principal_arn: str
    users: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    role_arns: list[str] = field(default_factory=list)
    policy_names: list[str] = field(default_factory=list)
    policy_arns: list[str] = field(default_factory=list)
    access_keys: list[str] = field(default_factory=list)
    # values of the right shape that name nothing (or something else)
    bad_role_arns: list[str] = field(default_factory=list)
    bad_policy_arns: list[str] = field(default_factory=list)
    bad_access_keys: list[str] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)
    identity_docs: list[str] = field(default_factory=list)
    trust_docs: list[str] = field(default_factory=list)
    # (user, access key id, secret) of the set-up users, who make calls of their own at the end
    signers: list[tuple[str, str, str]] = field(default_factory=list)
    # (access key id, secret, session token) of roles assumed during the fuzz
    sessions: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, pool: list[Any], value: Any, cap: int = 40) -> None:
        if value in pool or value in (ADMIN, self.admin_key):
            return
        pool.append(value)
        if len(pool) > cap:
            del pool[len(pool) // 2]  # keep the set-up values at the front


def build_pools(server: Server, account: dict[str, str], rng: random.Random) -> Pools:
    creds = {"access_key": account["AccessKeyId"], "secret_key": account["SecretAccessKey"]}
    iam = server.client("iam", **creds)
    principal = server.client("sts", **creds).get_caller_identity()["Arn"]
    acct = account["AccountId"]
    pools = Pools(acct, account["AccessKeyId"], principal)
    pools.identity_docs = identity_policies(rng, acct)
    pools.trust_docs = trust_policies(rng, acct, principal)
    for i in range(2):
        arn = iam.create_policy(PolicyName=f"fz-managed-{i}", PolicyDocument=pools.identity_docs[i])
        pools.policy_arns.append(arn["Policy"]["Arn"])
    for i in range(3):
        name = f"fz-user-{i}"
        iam.create_user(UserName=name, Path="/fz/" if i else "/", Tags=[{"Key": "team", "Value": f"t{i}"}])
        iam.put_user_policy(UserName=name, PolicyName="fz-inline", PolicyDocument=pools.identity_docs[i])
        iam.attach_user_policy(UserName=name, PolicyArn=pools.policy_arns[0])
        key = iam.create_access_key(UserName=name)["AccessKey"]
        pools.users.append(name)
        pools.access_keys.append(key["AccessKeyId"])
        pools.signers.append((name, key["AccessKeyId"], key["SecretAccessKey"]))
    for i in range(3):
        name = f"fz-role-{i}"
        role = iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=pools.trust_docs[i], Tags=[{"Key": "env", "Value": "f"}]
        )["Role"]
        iam.put_role_policy(RoleName=name, PolicyName="fz-inline", PolicyDocument=pools.identity_docs[0])
        iam.attach_role_policy(RoleName=name, PolicyArn=pools.policy_arns[1])
        pools.roles.append(name)
        pools.role_arns.append(role["Arn"])
    pools.policy_names += ["fz-inline", "AdministratorAccess"]
    pools.markers += [
        iam.list_users(MaxItems=1)["Marker"],
        iam.list_roles(MaxItems=1)["Marker"],
        iam.list_policies(Scope="Local", MaxItems=1)["Marker"],
    ]
    pools.bad_role_arns += [
        f"arn:aws:iam::{acct}:role/does-not-exist",
        f"arn:aws:iam::{acct}:role/fz/fz-role-0",  # the right name on the wrong path
        "arn:aws:iam::999999999999:role/fz-role-0",
        f"arn:aws:iam::{acct}:user/fz-user-0",
        f"arn:aws:sts::{acct}:assumed-role/fz-role-0/s",
        "arn:aws:iam::aws:role/x",
        f"arn:aws:iam::{acct}:role/",
        f"arn:aws:iam::{acct}:role/a\x00b",
    ]
    pools.bad_policy_arns += [
        "arn:aws:iam::aws:policy/AdministratorAccess",
        f"arn:aws:iam::{acct}:policy/does-not-exist",
        f"arn:aws:iam::{acct}:policy/fz/fz-managed-0",
        "arn:aws:iam::999999999999:policy/fz-managed-0",
        f"arn:aws:iam::{acct}:user/fz-user-0",
        "arn:aws:kms:us-east-1:111122223333:key/x",
        f"arn:aws:iam::{acct}:policy/a\x00b",
    ]
    pools.bad_access_keys += ["AKIA" + "Q" * 16, "ASIA" + "Q" * 16, "x" * 16]
    return pools


# --- form bodies -------------------------------------------------------------------------------------


class Raw(str):
    """A form value sent exactly as given (already percent-encoded, or deliberately not)."""


@dataclass
class Scalar:
    """A plain value given where the model has a list or a structure."""

    text: str


Pair = tuple[str, str]


def encode_form(pairs: list[Pair]) -> bytes:
    parts = []
    for name, value in pairs:
        shown_name = name if isinstance(name, Raw) else quote(name, safe="-_.~")
        shown_value = value if isinstance(value, Raw) else quote(value, safe="-_.~")
        parts.append(f"{shown_name}={shown_value}")
    return "&".join(parts).encode("utf-8", "surrogateescape")


def _text(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def flatten(shape: Any, value: Any, prefix: str, out: list[Pair]) -> None:
    """The Query protocol's form parameters of ``value`` (nested PascalCase) under ``prefix``."""
    if isinstance(value, Scalar):
        out.append((prefix, value.text))
        return
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, item in value.items():
            member = shape.members.get(name)
            key = f"{prefix}.{name}" if prefix else name
            if member is None:
                out.append((key, _text(item)))
            elif item is not None:
                flatten(member, item, f"{prefix}.{member.serialization.get('name', name)}".lstrip("."), out)
    elif kind == "list" and isinstance(value, list):
        flattened = bool(shape.serialization.get("flattened"))
        element = shape.member.serialization.get("name", "member")
        for i, item in enumerate(value, 1):
            flatten(shape.member, item, f"{prefix}.{i}" if flattened else f"{prefix}.{element}.{i}", out)
    elif kind == "map" and isinstance(value, dict):
        for i, (k, v) in enumerate(value.items(), 1):
            out.append((f"{prefix}.entry.{i}.key", _text(k)))
            flatten(shape.value, v, f"{prefix}.entry.{i}.value", out)
    else:
        out.append((prefix, _text(value)))


# --- an independent judgement of model validity ---------------------------------------------------------

_TAG_CLASS = re.compile(r"\[((?:\\p\{[A-Z]\})+)([^\]]*)\]([+*])")


def _java_pattern_match(pattern: str, text: str) -> bool | None:
    """Whether ``text`` matches a model pattern (Java syntax), or None when this test cannot tell."""
    found = _TAG_CLASS.fullmatch(pattern)
    if found is not None:  # [\p{L}\p{Z}\p{N}_.:/=+\-@]+ : Unicode categories and literal characters
        categories = set(re.findall(r"\\p\{([A-Z])\}", found.group(1)))
        literal = found.group(2).replace("\\", "")
        if found.group(3) == "+" and not text:
            return False
        return all(unicodedata.category(c)[0] in categories or c in literal for c in text)
    if "\\p{" in pattern:
        return None
    try:
        return re.fullmatch(pattern, text, re.ASCII) is not None
    except re.error:
        return None


def _length(text: str, meta: dict[str, Any]) -> str:
    low, high = meta.get("min"), meta.get("max")
    verdicts = set()
    for size in (len(text), _utf16_len(text)):
        verdicts.add((low is not None and size < low) or (high is not None and size > high))
    return UNKNOWN if len(verdicts) == 2 else (INVALID if True in verdicts else VALID)


def _integer(text: str, meta: dict[str, Any]) -> str:
    if re.fullmatch(r"-?[0-9]{1,18}", text) is None:
        if re.fullmatch(r"\+?[0-9]+|\s*-?[0-9_]+\s*|-?[0-9]{19,}", text) or not text.isascii():
            return UNKNOWN  # Java's and Python's readings of these may differ
        return INVALID
    number = int(text)
    if not -(2**31) <= number < 2**31:
        return INVALID
    low, high = meta.get("min"), meta.get("max")
    return INVALID if (low is not None and number < low) or (high is not None and number > high) else VALID


def _sent(value: Any) -> bool:
    """Whether a value is sent as at least one form parameter (empty lists and structures are not)."""
    if isinstance(value, dict):
        return any(_sent(v) for v in value.values())
    if isinstance(value, list):
        return any(_sent(v) for v in value)
    return value is not None


def form_verdict(shape: Any, value: Any) -> str:
    """Whether a generated document certainly satisfies (VALID) or breaks (INVALID) the model once sent
    as a form (what is sent as nothing, such as an empty list, is absent)."""
    if isinstance(value, Scalar):
        return UNKNOWN
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            return UNKNOWN
        results = []
        for name in shape.required_members:
            if not _sent(value.get(name)):
                results.append(INVALID)
        for name, member in shape.members.items():
            if _sent(value.get(name)):
                results.append(form_verdict(member, value[name]))
        return _worst(iter(results))
    if kind == "list":
        if not isinstance(value, list):
            return UNKNOWN
        if not all(_sent(item) for item in value):
            return UNKNOWN  # numbered with gaps: the server stops at the first
        results = [_length("x" * len(value), meta)]
        results += [form_verdict(shape.member, item) for item in value]
        return _worst(iter(results))
    text = _text(value)
    if kind == "string":
        if shape.enum and text not in shape.enum:
            return INVALID
        results = [_length(text, meta)]
        pattern = meta.get("pattern")
        if pattern:
            matched = _java_pattern_match(pattern, text)
            results.append(UNKNOWN if matched is None else (VALID if matched else INVALID))
        return _worst(iter(results))
    if kind in ("integer", "long"):
        return _integer(text, meta)
    if kind == "boolean":
        return VALID if text in ("true", "false") else UNKNOWN
    return UNKNOWN


# --- the generator -------------------------------------------------------------------------------------

NAME_CHARS = string.ascii_letters + string.digits + "+=,.@_-"


class Generator:
    """Forms for one operation's input shape: 0 plausible, 1 one defect, 2 anything goes."""

    def __init__(self, rng: random.Random, pools: Pools) -> None:
        self.rng = rng
        self.pools = pools
        self.level = 0

    def _word(self, chars: str = string.ascii_lowercase + string.digits, low: int = 1, high: int = 12) -> str:
        return "".join(self.rng.choice(chars) for _ in range(self.rng.randint(low, high)))

    def _name(self, pool: list[str], prefix: str) -> str:
        rng = self.rng
        roll = rng.random()
        if pool and roll < 0.6:
            return rng.choice(pool)
        if roll < 0.9:
            return prefix + self._word(NAME_CHARS, 3, 12)
        return "nobody-" + self._word()

    def _tag(self) -> dict[str, str]:
        rng = self.rng
        key = rng.choice(("team", "env", "a", "aws:x", "k é", self._word(string.ascii_letters + " _.:/=+-@")))
        return {"Key": key, "Value": rng.choice(("", "v", "1", "é ☃"[:2], self._word()))}

    def _choose(self, good: list[str], bad: list[str]) -> str:
        """Mostly a value that names something when the form is meant to be plausible."""
        rng = self.rng
        if good and rng.random() < (0.8 if self.level == 0 else 0.5):
            return rng.choice(good)
        return rng.choice(bad)

    def plausible(self, name: str, shape: Any, operation: str) -> tuple[bool, Any]:
        rng, p = self.rng, self.pools
        pick = rng.choice
        if name == "UserName":
            return True, self._name(p.users, "fz-u-")
        if name == "RoleName":
            return True, self._name(p.roles, "fz-r-")
        if name == "PolicyName":
            return True, self._name(p.policy_names, "fz-p-")
        if name == "AssumeRolePolicyDocument" or (
            name == "PolicyDocument" and operation == "UpdateAssumeRolePolicy"
        ):
            if rng.random() < 0.1:
                return True, pick(p.identity_docs)
            return True, self._choose(p.trust_docs[:GOOD_TRUST_DOCS], p.trust_docs)
        if name in ("PolicyDocument", "Policy"):
            if rng.random() < 0.1:
                return True, pick(p.trust_docs)
            return True, self._choose(p.identity_docs[:GOOD_IDENTITY_DOCS], p.identity_docs)
        if name in ("PolicyArn", "PermissionsBoundary"):
            return True, self._choose(p.policy_arns, p.bad_policy_arns)
        if name == "PolicyArns":
            return True, [
                {"arn": self._choose(p.policy_arns, p.bad_policy_arns)} for _ in range(rng.randint(1, 2))
            ]
        if name == "AccessKeyId":
            return True, self._choose(p.access_keys, p.bad_access_keys)
        if name == "RoleArn":
            return True, self._choose(p.role_arns, p.bad_role_arns)
        if name in ("RoleSessionName", "SourceIdentity"):
            return True, self._word(NAME_CHARS, 2, 20)
        if name == "Marker":
            return True, pick(p.markers) if rng.random() < 0.8 else pick(p.markers)[:-1] + "~"
        if name == "MaxItems":
            return True, pick((1, 2, 5, 100, 1000))
        if name == "Path":
            return True, pick(("/", "/fz/", "/fz/a/"))
        if name == "PathPrefix":
            return True, pick(("/", "/fz", "/fz/", "/nothing/"))
        if name == "Tags":
            return True, [self._tag() for _ in range(rng.randint(1, 3))]
        if name in ("TagKeys", "TransitiveTagKeys"):
            return True, [self._tag()["Key"] for _ in range(rng.randint(1, 3))]
        if name == "DurationSeconds":
            return True, pick((900, 3600, 7200, 43200))
        if name == "MaxSessionDuration":
            return True, pick((3600, 7200, 43200))
        if name == "VersionId":
            return True, pick(("v1", "v2", "v1.x"))
        if name == "Description":
            return True, pick(("", "fuzz", "é" * 10))
        if name == "Status":
            return True, pick(("Active", "Inactive"))
        return False, None

    def valid(self, shape: Any, name: str, operation: str, depth: int = 0) -> Any:
        rng = self.rng
        kind = shape.type_name
        meta = shape.metadata
        if depth < 4:
            found, value = self.plausible(name, shape, operation)
            if found and rng.random() < 0.9:
                return value
        if kind == "structure":
            return {
                member: self.valid(member_shape, member, operation, depth + 1)
                for member, member_shape in shape.members.items()
                if member in shape.required_members or rng.random() < 0.4
            }
        if kind == "list":
            count = rng.randint(max(meta.get("min", 0), 1), min(meta.get("max", 3), 3))
            return [self.valid(shape.member, "", operation, depth + 1) for _ in range(count)]
        if kind == "string":
            if shape.enum:
                return rng.choice(shape.enum)
            low = max(meta.get("min", 1), 1)
            high = max(low, min(meta.get("max", 24), 24))
            chars = string.digits if "\\d" in meta.get("pattern", "") else string.ascii_lowercase
            return self._word(chars, low, high)
        if kind in ("integer", "long"):
            return rng.randint(meta.get("min", 0), meta.get("max", 1000))
        if kind == "boolean":
            return rng.random() < 0.5
        return "x"

    def boundary(self, shape: Any) -> Any:
        """A value at or just past the model's limits, or an odd one."""
        rng = self.rng
        kind = shape.type_name
        meta = shape.metadata
        low, high = meta.get("min"), meta.get("max")
        if kind == "string":
            options: list[Any] = [*JUNK_STRINGS, "\x01", "a\x7fb", "\u2028", "\ud7ff", "\U0010ffff"]
            if high is not None:
                options += ["k" * high, "k" * (high + 1), "é" * high, "\U0001d11e" * (high // 2 + 1)]
            if low:
                options += ["k" * (low - 1), "k" * low]
            if shape.enum:
                value = rng.choice(shape.enum)
                options += [value.lower(), value.upper(), value + " ", value + "\x00", ""]
            options += ["x" * 140_000]
            return rng.choice(options)
        if kind in ("integer", "long"):
            options = [
                "", "abc", "1.5", "1e3", "0x10", "--1", "1-", " 1", "+1", "1_000", "\u0663", "NaN",
                0, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63, 10**30,
            ]  # fmt: skip
            if low is not None:
                options += [low, low - 1]
            if high is not None:
                options += [high, high + 1]
            return rng.choice(options)
        if kind == "boolean":
            return rng.choice(("true", "false", "TRUE", "yes", "1", "", "maybe"))
        if kind == "list":
            element = shape.member
            options = [
                [self.valid(element, "", "")] * (high or 50),
                [self.valid(element, "", "")] * ((high or 50) + 1),
                [Scalar("")],
                Scalar("x"),
                [self.boundary(element) if element.type_name != "structure" else self.incomplete(element)],
            ]
            return rng.choice(options)
        if kind == "structure":
            return rng.choice(({}, Scalar("x"), {"Unknown": "1"}))
        return "x"

    def incomplete(self, shape: Any) -> Any:
        """A structure without one of its required members (an empty one cannot be sent)."""
        if not shape.required_members:
            return Scalar("")
        value = self.valid(shape, "", "", 4)
        value.pop(self.rng.choice(shape.required_members), None)
        return value if value else Scalar("")

    def structure(self, shape: Any, level: int, operation: str) -> dict[str, Any]:
        rng = self.rng
        body: dict[str, Any] = {}
        for name, member in shape.members.items():
            if name in shape.required_members:
                wanted = 1.0 if level == 0 else 0.95
            elif name in UNSUPPORTED:
                wanted = (0.05, 0.2, 0.4)[level]
            else:
                wanted = (0.35, 0.4, 0.6)[level]
            if rng.random() >= wanted:
                continue
            if level == 2 and rng.random() < 0.3:
                body[name] = self.boundary(member)
            else:
                body[name] = self.valid(member, name, operation)
        return body

    def document(self, operation: str, shape: Any | None) -> dict[str, Any]:
        rng = self.rng
        level = self.level = rng.choices((0, 1, 2), weights=(40, 35, 25))[0]
        if shape is None:
            return {}
        body = self.structure(shape, level, operation)
        if level == 1 and shape.members:
            name = rng.choice(list(shape.members))
            choice = rng.randrange(4)
            if choice == 0 and shape.required_members:
                body.pop(rng.choice(shape.required_members), None)
            else:
                body[name] = self.boundary(shape.members[name])
        return body

    def form_defect(self, pairs: list[Pair]) -> list[Pair]:
        """A defect the model cannot describe (its verdict is then unknown)."""
        rng = self.rng
        pairs = list(pairs)
        choice = rng.randrange(12)
        if choice == 0 and len(pairs) > 2:  # a repeated parameter, with another value
            name, _ = rng.choice(pairs[2:])
            pairs.append((name, rng.choice(JUNK_STRINGS)))
        elif choice == 1:  # list members with a gap, or numbered from 0
            first = rng.choice(("Tags.member.1.Key", "TagKeys.member.1", "PolicyArns.member.1.arn"))
            pairs += [(first, "a"), (first.replace(".1", ".3"), "b"), (first.replace(".1", ".0"), "c")]
        elif choice == 2:  # a huge member index
            n = rng.choice(("999999999", "18446744073709551617", "-1", "01", "1e3", "", " 1"))
            pairs += [(f"Tags.member.{n}.Key", "k"), (f"Tags.member.{n}.Value", "v")]
        elif choice == 3:  # a non-UTF-8 percent escape in a value
            i = rng.randrange(len(pairs))
            pairs[i] = (
                pairs[i][0],
                Raw(quote(pairs[i][1], safe="") + rng.choice(("%FF", "%C3", "%ED%A0%80"))),
            )
        elif choice == 4:  # malformed percent escapes
            i = rng.randrange(len(pairs))
            pairs[i] = (pairs[i][0], Raw(rng.choice(("%", "%Z", "%%41", "%4", "a%2"))))
        elif choice == 5:  # unknown parameters
            pairs += [(rng.choice(("Unknown", "userName", "USERNAME", "x.y.z", ".", "..", "a..b")), "1")]
        elif choice == 6:  # NUL and control characters in a raw value
            i = rng.randrange(2, len(pairs)) if len(pairs) > 2 else 0
            pairs[i] = (pairs[i][0], Raw(quote(pairs[i][1], safe="") + rng.choice(("%00", "%01%1F", "%7F"))))
        elif choice == 7:  # empty names and values, lone separators
            pairs += [(Raw(""), Raw("")), (Raw("="), Raw("=")), (Raw("noequals"), Raw(""))]
        elif choice == 8:  # a structure member given a plain value too
            pairs += [("Tags", "plain"), ("Tags.member", "plain"), ("Tags.member.1", "plain")]
        elif choice == 9:  # members of a list beyond its maximum
            pairs += [(f"TagKeys.member.{i}", f"k{i}") for i in range(1, 60)]
        elif choice == 10:  # '+' and ';' as in old form encodings
            pairs = [(name, Raw(quote(value, safe="").replace("%20", "+"))) for name, value in pairs]
            pairs.append((Raw("a;b"), Raw("c;d")))
        else:  # every value duplicated
            pairs = pairs + pairs
        return pairs

    def form(self, service: str, operation: str) -> tuple[list[Pair], str]:
        """The form's pairs and the verdict of the model on it."""
        shape = MODELS[service].operation_model(operation).input_shape
        document = self.document(operation, shape)
        for key in ("UserName", "AccessKeyId"):  # never the administrator or its key
            if document.get(key) in (ADMIN, self.pools.admin_key):
                document[key] = "nobody"
        pairs: list[Pair] = [("Action", operation), ("Version", VERSIONS[service])]
        if shape is not None:
            flatten(shape, document, "", pairs)
        verdict = VALID if shape is None else form_verdict(shape, document)
        if self.level >= 1 and self.rng.random() < 0.3:
            pairs = self.form_defect(pairs)
            verdict = UNKNOWN
        return pairs, verdict


# --- the wire ------------------------------------------------------------------------------------------


class QueryWire(Wire):
    """Requests signed for ``iam``/``sts`` over one keep-alive connection."""

    def query_headers(
        self,
        service: str,
        body: bytes,
        *,
        method: str = "POST",
        path: str = "/",
        content_type: str | None = FORM_CT,
        credentials: Credentials | None = None,
        region: str = REGION,
    ) -> dict[str, str]:
        headers = {} if content_type is None else {"Content-Type": content_type}
        request = AWSRequest(method=method, url=self.endpoint + path, data=body, headers=headers)
        SigV4Auth(credentials or self.credentials, service, region).add_auth(request)
        return dict(request.headers.items())

    def query(self, service: str, body: bytes, credentials: Credentials | None = None) -> Reply:
        return self.send(self.query_headers(service, body, credentials=credentials), body)


# --- judging answers -----------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def answer_code(reply: Reply) -> str:
    """ "200", or the error code of an XML error answer ("?" if it has none)."""
    if reply.status == 200:
        return "200"
    try:
        root = ET.fromstring(reply.body)  # noqa: S314 - the answer of the server under test
    except ET.ParseError:
        return "?"
    error = _child(root, "Error")
    code = _child(error, "Code") if error is not None else None
    return (code.text or "?") if code is not None else "?"


def judge(
    outcomes: Outcomes,
    label: str,
    body: bytes,
    reply: Reply,
    service: str,
    operation: str | None,
    verdict: str = UNKNOWN,
) -> ET.Element | None:
    """Check one answer; returns the parsed XML of a 200 (or None)."""
    if reply.status >= 500:
        outcomes.fail(label, body, f"HTTP {reply.status}", reply)
        return None
    if reply.headers.get("content-type", "").split(";")[0] != "text/xml":
        outcomes.fail(label, body, f"Content-Type {reply.headers.get('content-type')}", reply)
        return None
    try:
        root = ET.fromstring(reply.body)  # noqa: S314 - the answer of the server under test
    except ET.ParseError as exc:
        outcomes.fail(label, body, f"the answer is not XML: {exc}", reply)
        return None
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    if namespace != NAMESPACES[service]:
        outcomes.fail(label, body, f"XML namespace {namespace!r}, not {service}'s", reply)
    if reply.status == 200:
        outcomes.codes[(label, "200")] += 1
        if verdict == INVALID:
            outcomes.fail(label, body, "a form that breaks the model was accepted", reply)
        if operation is not None and _local(root.tag) != f"{operation}Response":
            outcomes.fail(label, body, f"a 200 whose root is {_local(root.tag)}", reply)
        metadata = _child(root, "ResponseMetadata")
        if metadata is None or not (getattr(_child(metadata, "RequestId"), "text", "") or ""):
            outcomes.fail(label, body, "a 200 without ResponseMetadata/RequestId", reply)
        return root
    error = _child(root, "Error")
    code_element = _child(error, "Code") if error is not None else None
    request_id = _child(root, "RequestId")
    if _local(root.tag) != "ErrorResponse" or error is None or code_element is None:
        outcomes.fail(label, body, "an error that is not ErrorResponse/Error/Code", reply)
        return None
    code = code_element.text or ""
    outcomes.codes[(label, code)] += 1
    if _child(error, "Message") is None:
        outcomes.fail(label, body, "an error without Message", reply)
    if request_id is None or not request_id.text:
        outcomes.fail(label, body, "an error without RequestId", reply)
    kind = getattr(_child(error, "Type"), "text", None)
    if kind != "Sender":
        outcomes.fail(label, body, f"a client error of Type {kind}", reply)
    allowed = error_statuses(service, operation)
    if code not in allowed:
        outcomes.fail(label, body, f"{code} is neither modeled for {operation} nor a common error", reply)
    elif reply.status not in allowed[code]:
        outcomes.fail(label, body, f"{code} answered with HTTP {reply.status}", reply)
    if verdict == INVALID and code not in INPUT_ERRORS:
        outcomes.fail(label, body, f"a form that breaks the model got {code}, not a ValidationError", reply)
    return None


def harvest(pools: Pools, root: ET.Element | None) -> None:
    """Keep what a successful call made or listed, for the cases that follow."""
    if root is None:
        return
    for element in root.iter():
        name, text = _local(element.tag), element.text or ""
        if name in ("AccessKey", "member") and _child(element, "AccessKeyId") is not None:
            user = getattr(_child(element, "UserName"), "text", "")
            if user and user != ADMIN:
                pools.add(pools.access_keys, _child(element, "AccessKeyId").text)  # type: ignore[union-attr]
        elif name == "Credentials" and _child(element, "SessionToken") is not None:
            key, secret, token = (
                getattr(_child(element, n), "text", "") or ""
                for n in ("AccessKeyId", "SecretAccessKey", "SessionToken")
            )
            if len(pools.sessions) < 3:
                pools.sessions.append((key, secret, token))
        elif name == "Marker" and text:
            pools.add(pools.markers, text)
        elif name == "UserName" and text:
            pools.add(pools.users, text)
        elif name == "RoleName" and text:
            pools.add(pools.roles, text)
        elif name == "PolicyName" and text:
            pools.add(pools.policy_names, text)
        elif name == "Arn" and ":role/" in text:
            pools.add(pools.role_arns, text)
        elif name in ("Arn", "PolicyArn") and ":policy/" in text:
            pools.add(pools.policy_arns, text)


# --- raw requests --------------------------------------------------------------------------------------


@dataclass
class RawCase:
    label: str
    service: str
    operation: str | None  # whose modeled errors are allowed
    body: bytes
    method: str = "POST"
    path: str = "/"
    content_type: str | None = FORM_CT
    sign_as: str | None = None  # the credential scope's service, when not ``service``
    region: str = REGION
    secret: str | None = None  # sign with this secret instead of the right one
    access_key: str | None = None
    token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # set after signing (None-valued: removed)
    appended: bytes = b""  # sent after the body that was signed
    sign: bool = True
    expect: str | None = None  # the one right answer ("200" or an error code), when known


def _form(operation: str, service: str = "iam", **params: str) -> bytes:
    pairs: list[Pair] = [("Action", operation), ("Version", VERSIONS[service]), *params.items()]
    return encode_form(pairs)


def raw_cases(pools: Pools) -> list[RawCase]:
    user, role_arn = pools.users[0], pools.role_arns[0]
    nul_policy = f"arn:aws:iam::{pools.account_id}:policy/a\x00b"
    iam_version = VERSIONS["iam"]
    list_users = _form("ListUsers")
    cases = [
        RawCase("empty body", "iam", None, b"", expect="MissingAction"),
        RawCase("no Action", "iam", None, b"Version=" + iam_version.encode(), expect="MissingAction"),
        RawCase("empty Action", "iam", None, b"Action=&Version=" + iam_version.encode(),
                expect="MissingAction"),
        RawCase("no Version", "iam", "ListUsers", b"Action=ListUsers", expect="200"),
        RawCase("no Version, STS", "sts", "GetCallerIdentity", b"Action=GetCallerIdentity", expect="200"),
        RawCase("STS's version on IAM", "iam", None, b"Action=ListUsers&Version=2011-06-15",
                expect="InvalidAction"),
        RawCase("an unknown version", "iam", None, b"Action=ListUsers&Version=2099-01-01",
                expect="InvalidAction"),
        RawCase("unknown action", "iam", None, _form("NoSuchAction"), expect="InvalidAction"),
        RawCase("modeled, not implemented", "iam", None, _form("CreateGroup", GroupName="g"),
                expect="InvalidAction"),
        RawCase("lower-case action", "iam", None, _form("listusers"), expect="InvalidAction"),
        RawCase("STS action on IAM", "iam", None, _form("GetCallerIdentity", "iam"), expect="InvalidAction"),
        RawCase("IAM action on STS", "sts", None, _form("ListUsers", "sts"), expect="InvalidAction"),
        RawCase("KMS action on IAM", "iam", None, _form("ListKeys"), expect="InvalidAction"),
        RawCase("NUL in the action", "iam", None, b"Action=List%00Users&Version=" + iam_version.encode(),
                expect="InvalidAction"),
        RawCase("%FF in the action", "iam", None, b"Action=List%FFUsers&Version=" + iam_version.encode(),
                expect="InvalidAction"),
        RawCase("a 100 KB action", "iam", None, _form("A" * 100_000), expect="InvalidAction"),
        RawCase("two actions", "iam", "GetUser", _form("ListUsers") + b"&Action=GetUser&UserName=" +
                user.encode()),
        RawCase("raw non-UTF-8 byte", "iam", "ListUsers", list_users + b"&PathPrefix=/\xff",
                expect="ValidationError"),
        RawCase("%FF in a value", "iam", "GetUser", _form("GetUser") + b"&UserName=%FF"),
        RawCase("overlong UTF-8", "iam", "GetUser", _form("GetUser") + b"&UserName=%C0%AF"),
        RawCase("UTF-8 surrogate", "iam", "GetUser", _form("GetUser") + b"&UserName=%ED%A0%80"),
        RawCase("truncated escapes", "iam", "ListUsers", list_users + b"&PathPrefix=%&%Z=%4"),
        RawCase("separators only", "iam", "ListUsers", list_users + b"&&&=&==&;&x"),
        RawCase("UTF-8 BOM", "iam", None, b"\xef\xbb\xbf" + list_users),
        RawCase("UTF-16 body", "iam", None, list_users.decode().encode("utf-16")),
        RawCase("50,000 parameters", "iam", "ListUsers",
                list_users + b"".join(b"&p%d=1" % i for i in range(50_000)), expect="200"),
        RawCase("member 999999999", "iam", "TagUser", _form("TagUser", UserName=user)
                + b"&Tags.member.999999999.Key=k&Tags.member.999999999.Value=v"),
        RawCase("8,000 tags", "iam", "TagUser", _form("TagUser", UserName=user) + b"".join(
            b"&Tags.member.%d.Key=k%d&Tags.member.%d.Value=v" % (i, i, i) for i in range(1, 8_001)),
                expect="ValidationError"),
        RawCase("a 600 KB body", "iam", "ListUsers", list_users + b"&Pad=" + b"x" * 600_000,
                expect="RequestEntityTooLarge"),
        RawCase("a 5 MB body", "iam", "ListUsers", list_users + b"&Pad=" + b"x" * 5_000_000,
                expect="RequestEntityTooLarge"),
        RawCase("a 500 KB policy", "iam", "PutUserPolicy", _form(
            "PutUserPolicy", UserName=user, PolicyName="big") + b"&PolicyDocument=" + b"+" * 500_000 + b"{}",
                expect="ValidationError"),
        RawCase("a policy at the model's maximum", "iam", "PutUserPolicy", _form(
            "PutUserPolicy", UserName=user, PolicyName="big", PolicyDocument=" " * 131_070 + "{}")),
        RawCase("a policy of 3,000 nested arrays", "iam", "CreatePolicy",
                _form("CreatePolicy", PolicyName="deep", PolicyDocument=_nested(3_000, "[", "]")),
                expect="MalformedPolicyDocument"),
        RawCase("a policy of 10,000 nested arrays", "iam", "CreatePolicy",
                _form("CreatePolicy", PolicyName="deep", PolicyDocument=_nested(10_000, "[", "]")),
                expect="LimitExceeded"),
        RawCase("a trust policy of 300 nested objects", "iam", "CreateRole", _form(
            "CreateRole", RoleName="deep", AssumeRolePolicyDocument=_nested(300)),
                expect="MalformedPolicyDocument"),
        RawCase("an inline policy of 1,000 nested arrays", "iam", "PutUserPolicy", _form(
            "PutUserPolicy", UserName=user, PolicyName="deep", PolicyDocument=_nested(1_000, "[", "]")),
                expect="MalformedPolicyDocument"),
        # the HTTP envelope
        RawCase("GET with a query string", "iam", "ListUsers", b"", method="GET",
                path="/?" + list_users.decode(), content_type=None, expect="200"),
        RawCase("GET STS with a query string", "sts", "GetCallerIdentity", b"", method="GET",
                path="/?" + _form("GetCallerIdentity", "sts").decode(), content_type=None, expect="200"),
        RawCase("GET without a query string", "iam", None, b"", method="GET", path="/x", content_type=None,
                expect="MissingAction"),
        RawCase("GET with a bad query string", "iam", "GetUser", b"", method="GET",
                path="/?Action=GetUser&UserName=%FF%00", content_type=None, expect="ValidationError"),
        RawCase("POST with the form in the query string", "iam", "ListUsers", b"",
                path="/?" + list_users.decode(), expect="200"),
        RawCase("PUT", "iam", "ListUsers", list_users, method="PUT"),
        RawCase("DELETE", "iam", "ListUsers", list_users, method="DELETE"),
        RawCase("other path", "iam", "ListUsers", list_users, path="/some/path"),
        RawCase("text/plain", "iam", "ListUsers", list_users, content_type="text/plain"),
        RawCase("application/json", "iam", None, b'{"Action": "ListUsers"}',
                content_type="application/json", expect="MissingAction"),
        RawCase("JSON 1.1", "sts", None, b"{}", content_type="application/x-amz-json-1.1",
                expect="MissingAction"),
        RawCase("no content type", "iam", "ListUsers", list_users, content_type=None),
        RawCase("multipart", "iam", "ListUsers", list_users, content_type="multipart/form-data; boundary=x"),
        RawCase("upper-case content type", "iam", "ListUsers", list_users,
                content_type="APPLICATION/X-WWW-FORM-URLENCODED"),
        RawCase("latin-1 charset", "iam", "ListUsers", list_users,
                content_type="application/x-www-form-urlencoded; charset=iso-8859-1"),
        RawCase("an X-Amz-Target too", "iam", "ListUsers", list_users,
                headers={"X-Amz-Target": "TrentService.ListKeys"}),
        # signatures
        RawCase("unsigned", "iam", "ListUsers", list_users, sign=False, expect="MissingAuthenticationToken"),
        RawCase("wrong secret", "iam", "ListUsers", list_users, secret="x" * 40,
                expect="SignatureDoesNotMatch"),
        RawCase("unknown access key", "sts", "GetCallerIdentity", _form("GetCallerIdentity", "sts"),
                access_key="AKIA" + "Z" * 16, expect="InvalidClientTokenId"),
        RawCase("body changed after signing", "iam", "ListUsers", list_users, appended=b"&MaxItems=1",
                expect="SignatureDoesNotMatch"),
        RawCase("garbage session token", "sts", "GetCallerIdentity", _form("GetCallerIdentity", "sts"),
                token="garbage"),  # noqa: S106
        RawCase("IAM signed for eu-west-1", "iam", "ListUsers", list_users, region="eu-west-1"),
        RawCase("STS signed for eu-west-1", "sts", "GetCallerIdentity", _form("GetCallerIdentity", "sts"),
                region="eu-west-1"),
        RawCase("STS signed for a made-up region", "sts", "GetCallerIdentity",
                _form("GetCallerIdentity", "sts"), region="xx-nowhere-9"),
        RawCase("STS action signed for IAM", "iam", None, _form("AssumeRole", "sts", RoleArn=role_arn,
                RoleSessionName="s"), expect="InvalidAction"),
        RawCase("bad X-Amz-Date", "iam", "ListUsers", list_users, headers={"X-Amz-Date": "garbage"}),
        RawCase("no X-Amz-Date", "iam", "ListUsers", list_users, headers={"X-Amz-Date": None}),  # type: ignore[dict-item]
    ]  # fmt: skip
    authorizations = [
        "AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=zz",
        "AWS4-HMAC-SHA256 Credential=A/x/y/iam/w/v/u, SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=////iam/, SignedHeaders=, Signature=",
        "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/sts/aws4_request, SignedHeaders=x-missing;host, "
        "Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=\u00e9/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, "
        "Signature=0",
        "AWS4-HMAC-SHA512 Credential=A/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        "AWS4-HMAC-SHA256 Credential=" + "A" * 10_000 + "/20240101/us-east-1/iam/aws4_request, "
        "SignedHeaders=host, Signature=0",
        "AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/iam/aws4_request, "
        "Credential=B/1/2/sts/aws4_request, SignedHeaders=host, Signature=0",
    ]
    for i, auth in enumerate(authorizations):
        service = "sts" if "/sts/" in auth and "/iam/" not in auth else "iam"
        cases.append(RawCase(f"Authorization #{i}", service, "ListUsers", list_users,
                             headers={"Authorization": auth}))  # fmt: skip
    # found by this test: requests that once got a 500, hung the server or an ill-formed answer
    cases += [
        # the form's prefix index was quadratic in the number of dots of a name (the event loop hung)
        RawCase(
            "a name of 100,000 dots",
            "iam",
            "ListUsers",
            list_users + b"&" + b"a." * 100_000 + b"=1",
            expect="200",
        ),
        RawCase(
            "a deeply dotted list member",
            "iam",
            "TagUser",
            _form("TagUser", UserName=user) + b"&Tags.member.1" + b".Key" * 60_000 + b"=k",
            expect="ValidationError",
        ),
        # characters XML cannot carry, echoed in a message
        RawCase(
            "NUL in the action",
            "iam",
            None,
            b"Action=List%00Users&Version=" + iam_version.encode(),
            expect="InvalidAction",
        ),
        RawCase(
            "control characters in a name",
            "iam",
            "GetUser",
            _form("GetUser", UserName="a\x00b\x01\x1f\x7f\ufffe"),
            expect="ValidationError",
        ),
        RawCase(
            "a lone surrogate escape",
            "iam",
            "ListUsers",
            list_users + b"&Marker=%ED%A0%80%00",
            expect="ValidationError",
        ),
        # patterns with Unicode categories (tag keys and values) were not checked
        RawCase(
            "a tag key outside the pattern",
            "iam",
            "TagUser",
            _form("TagUser", UserName=user, **{"Tags.member.1.Key": "['a']", "Tags.member.1.Value": "v"}),
            expect="ValidationError",
        ),
        RawCase(
            "NUL in a tag value",
            "iam",
            "TagRole",
            _form(
                "TagRole",
                RoleName=pools.roles[0],
                **{"Tags.member.1.Key": "k", "Tags.member.1.Value": "a\x00"},
            ),
            expect="ValidationError",
        ),
        RawCase(
            "a tag key to remove outside the pattern",
            "iam",
            "UntagUser",
            _form("UntagUser", UserName="nobody-here", **{"TagKeys.member.1": "k\x00"}),
            expect="ValidationError",
        ),
        RawCase(
            "session tags outside the pattern",
            "sts",
            "AssumeRole",
            _form(
                "AssumeRole",
                "sts",
                RoleArn=role_arn,
                RoleSessionName="s",
                **{"Tags.member.1.Key": "k☃", "Tags.member.1.Value": "v"},
            ),
            expect="ValidationError",
        ),
        RawCase(
            "letters of every script in a tag",
            "iam",
            "TagUser",
            _form(
                "TagUser", UserName=user, **{"Tags.member.1.Key": "日本 ١٢ é", "Tags.member.1.Value": "Ⅻ ß"}
            ),
            expect="200",
        ),
        # U+0000 cannot be stored in PostgreSQL, nor looked up there
        RawCase(
            "NUL in a policy ARN",
            "iam",
            "GetPolicy",
            _form("GetPolicy", PolicyArn=nul_policy),
            expect="NoSuchEntity",
        ),
        RawCase(
            "NUL in a policy ARN to attach",
            "iam",
            "AttachUserPolicy",
            _form("AttachUserPolicy", UserName=user, PolicyArn=nul_policy),
            expect="NoSuchEntity",
        ),
        RawCase(
            "NUL in a policy ARN to delete",
            "iam",
            "DeletePolicy",
            _form("DeletePolicy", PolicyArn=nul_policy),
            expect="NoSuchEntity",
        ),
        RawCase(
            "NUL in a policy description",
            "iam",
            "CreatePolicy",
            _form(
                "CreatePolicy", PolicyName="nul", PolicyDocument=pools.identity_docs[0], Description="a\x00"
            ),
            expect="ValidationError",
        ),
        RawCase(
            "NUL in a role ARN",
            "sts",
            "AssumeRole",
            _form(
                "AssumeRole",
                "sts",
                RoleArn=f"arn:aws:iam::{pools.account_id}:role/a\x00",
                RoleSessionName="s1",
            ),
            expect="ValidationError",
        ),
    ]
    return cases


def send_raw(wire: QueryWire, case: RawCase, pools: Pools) -> Reply:
    headers: dict[str, str]
    if case.sign:
        access_key = case.access_key or pools.admin_key
        secret = case.secret or wire.credentials.secret_key
        headers = wire.query_headers(
            case.sign_as or case.service,
            case.body,
            method=case.method,
            path=case.path,
            content_type=case.content_type,
            credentials=Credentials(access_key, secret, case.token),
            region=case.region,
        )
    else:
        headers = {"Content-Type": case.content_type or FORM_CT}
    for name, value in case.headers.items():
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        if value is not None:
            headers[name] = value
    return wire.send(headers, case.body + case.appended, method=case.method, path=case.path)


# --- the test ------------------------------------------------------------------------------------------


def test_no_query_request_gets_a_5xx_or_hangs(server: Server) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    account = server.new_account()
    pools = build_pools(server, account, rng)
    wire = QueryWire(server, account["AccessKeyId"], account["SecretAccessKey"])
    outcomes = Outcomes()
    generator = Generator(rng, pools)
    trace: list[str] = []
    try:
        for case in raw_cases(pools):
            label = f"{case.service} {case.operation or 'no operation'} [{case.label}]"
            sent = time.monotonic()
            try:
                reply = send_raw(wire, case, pools)
            except NoAnswer as exc:
                outcomes.fail(label, case.body, str(exc), None)
                continue
            trace.append(
                f"{label[:100]} {case.body[:200]!r} -> {reply.status} {reply.body[:300]!r}"
                f" ({time.monotonic() - sent:.2f} s)"
            )
            judge(outcomes, label, case.body, reply, case.service, case.operation)
            if case.expect is not None and answer_code(reply) != case.expect:
                outcomes.fail(label, case.body, f"expected {case.expect}", reply)

        for service, operation in operation_order():
            for _ in range(CASES_PER_OPERATION):
                pairs, verdict = generator.form(service, operation)
                body = encode_form(pairs)
                try:
                    reply = wire.query(service, body)
                except NoAnswer as exc:
                    outcomes.fail(operation, body, str(exc), None)
                    continue
                trace.append(
                    f"{operation} level={generator.level} {verdict} {body[:300]!r}"
                    f" -> {reply.status} {reply.body[:300]!r}"
                )
                harvest(pools, judge(outcomes, operation, body, reply, service, operation, verdict))

        # The principals whose policies were fuzzed call, and their odd policies are evaluated.
        signers = [Credentials(key, secret) for _, key, secret in pools.signers]
        signers += [Credentials(key, secret, token) for key, secret, token in pools.sessions]
        for credentials in signers:
            for service, operation in (
                ("sts", "GetCallerIdentity"),
                ("iam", "ListUsers"),
                ("iam", "GetUser"),
            ):
                body = _form(operation, service)
                label = f"{operation} as {credentials.access_key}"
                try:
                    reply = wire.query(service, body, credentials)
                except NoAnswer as exc:
                    outcomes.fail(label, body, str(exc), None)
                    continue
                judge(outcomes, label, body, reply, service, operation)
    finally:
        wire.close()

    # The server still works, for the fuzzed account and for the fixture's.
    try:
        probe = QueryWire(server, "", "")
        health = probe.send({}, b"", method="GET", path="/healthz?probe=1")  # unsigned: not a Query call
        probe.close()
        assert (health.status, health.body) == (200, b'{"status":"ok"}'), health
        creds = {"access_key": account["AccessKeyId"], "secret_key": account["SecretAccessKey"]}
        for kms, iam in ((server.client(**creds), server.client("iam", **creds)),
                         (server.client(), server.client("iam"))):  # fmt: skip
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            blob = kms.encrypt(KeyId=key_id, Plaintext=b"still healthy")["CiphertextBlob"]
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"still healthy"
            assert any(u["UserName"] == ADMIN for u in iam.list_users()["Users"])
    except Exception as exc:  # reported with the other failures
        outcomes.failures.append(f"the server is unwell after the fuzz: {exc!r}")

    elapsed = time.monotonic() - started
    print(f"{wire.count} requests in {elapsed:.1f} s (seed {SEED})")
    if os.environ.get("OPENKMS_FUZZ_TRACE"):  # a directory: every request and answer, for debugging
        backend = "sqlite" if server.database_url is None else "postgres"
        out = Path(os.environ["OPENKMS_FUZZ_TRACE"])
        (out / f"query-fuzz-{backend}.trace").write_text("\n".join(trace) + "\n")
        codes = (f"{op} {code} {n}" for (op, code), n in sorted(outcomes.codes.items()))
        (out / f"query-fuzz-{backend}.codes").write_text("\n".join(codes) + "\n")
    assert not outcomes.failures, (
        f"{len(outcomes.failures)} of {wire.count} requests were answered wrongly (seed {SEED}):\n"
        + "\n".join(outcomes.failures)
        + _server_log_tail(server)
    )
