"""Document parsing and validation: error classes and messages per policy kind, the 32 KB key policy
limit, the principal-existence callback, OverlyPermissiveCondition, and the parse cache."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openkms.auth.policy import MSG_INVALID_PRINCIPALS, PolicyCache, check_principals, parse_policy
from openkms.auth.policy.document import (
    MSG_BAD_EFFECT,
    MSG_BOTH_ACTIONS,
    MSG_BOTH_PRINCIPALS,
    MSG_BOTH_RESOURCES,
    MSG_DUPLICATE_SID,
    MSG_IAM_HAS_PRINCIPAL,
    MSG_IAM_NO_ACTIONS,
    MSG_IAM_NO_PRINCIPAL,
    MSG_IAM_NO_RESOURCES,
    MSG_IAM_ONE_COLON,
    MSG_IAM_SYNTAX,
    MSG_IAM_TRUST_RESOURCE,
    MSG_IAM_VENDOR,
    MSG_IAM_VERSION,
    MSG_KEY_TOO_LARGE,
    MSG_NO_PRINCIPAL,
    MSG_NO_STATEMENT,
    MSG_NOT_JSON,
    MSG_NOT_OBJECT,
    MSG_STATEMENT_NOT_OBJECT,
)
from openkms.errors import LimitExceededException, MalformedPolicyDocumentException

A = "111122223333"
ROOT = f"arn:aws:iam::{A}:root"
OVERLY_EC = (
    "OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued condition key "
    "matches requests without the specified encryption context or with an unspecified encryption context. "
    "To fix, remove ForAllValues."
)
OVERLY_TAG = (
    "OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued condition key "
    "matches requests without the specified tag or with an unspecified tag. To fix, remove ForAllValues."
)


def key_statement(**overrides: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": ROOT},
        "Action": "kms:*",
        "Resource": "*",
    }
    statement.update(overrides)
    return {k: v for k, v in statement.items() if v is not None}


def doc(*statements: dict[str, Any], version: str | None = "2012-10-17") -> str:
    body: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        body = {"Version": version, **body}
    return json.dumps(body)


IDENTITY = {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}
TRUST = {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "sts:AssumeRole"}

KEY_ERRORS = [
    pytest.param("{not json", MSG_NOT_JSON, id="not-json"),
    pytest.param("[]", MSG_NOT_OBJECT, id="not-object"),
    pytest.param('"text"', MSG_NOT_OBJECT, id="json-string"),
    pytest.param(json.dumps({"Version": "2012-10-17"}), MSG_NO_STATEMENT, id="missing-statement"),
    pytest.param(
        json.dumps({"Version": "2012-10-17", "Statement": []}), MSG_NO_STATEMENT, id="empty-statement"
    ),
    pytest.param(
        json.dumps({"Version": "2012-10-17", "Statement": "x"}), MSG_NO_STATEMENT, id="statement-string"
    ),
    pytest.param(
        doc(key_statement(), version="2012-10-18"),
        "The policy contains an invalid version: 2012-10-18",
        id="bad-version",
    ),
    pytest.param(
        json.dumps({"Version": "2012-10-17", "Statement": ["x"]}),
        MSG_STATEMENT_NOT_OBJECT,
        id="statement-not-object",
    ),
    pytest.param(doc(key_statement(Effect="Permit")), MSG_BAD_EFFECT, id="bad-effect"),
    pytest.param(doc(key_statement(Effect=None)), MSG_BAD_EFFECT, id="missing-effect"),
    pytest.param(doc(key_statement(NotAction="kms:Decrypt")), MSG_BOTH_ACTIONS, id="action-and-notaction"),
    pytest.param(doc(key_statement(NotResource="*")), MSG_BOTH_RESOURCES, id="resource-and-notresource"),
    pytest.param(doc(key_statement(NotPrincipal={"AWS": ROOT})), MSG_BOTH_PRINCIPALS, id="principal-and-not"),
    pytest.param(doc(key_statement(Principal=None)), MSG_NO_PRINCIPAL, id="missing-principal"),
    pytest.param(
        doc(key_statement(Principal="arn:aws:iam::111122223333:root")),
        MSG_INVALID_PRINCIPALS,
        id="principal-plain-arn-string",
    ),
    pytest.param(doc(key_statement(Principal={})), MSG_INVALID_PRINCIPALS, id="principal-empty-object"),
    pytest.param(
        doc(key_statement(Principal={"AWS": []})), MSG_INVALID_PRINCIPALS, id="principal-empty-list"
    ),
    pytest.param(
        doc(key_statement(Principal={"AWS": "bob"})), MSG_INVALID_PRINCIPALS, id="principal-bare-name"
    ),
    pytest.param(
        doc(key_statement(Principal={"AWS": f"arn:aws:iam::{A}:user/*"})),
        MSG_INVALID_PRINCIPALS,
        id="principal-wildcard-in-arn",
    ),
    pytest.param(
        doc(key_statement(Principal={"AWS": f"arn:aws:iam::{A}:group/devs"})),
        MSG_INVALID_PRINCIPALS,
        id="principal-group",
    ),
    pytest.param(
        doc(key_statement(Principal={"AWS": "AIDACKCEVSQ6C2EXAMPLE"})),
        MSG_INVALID_PRINCIPALS,
        id="principal-orphaned-unique-id",
    ),
    pytest.param(
        doc(key_statement(Principal={"AWS": "11112222333"})),
        MSG_INVALID_PRINCIPALS,
        id="principal-11-digit-account",
    ),
    pytest.param(
        doc(key_statement(Principal={"CanonicalUser": "79a59df900b949e55d96a1e698fbace"})),
        MSG_INVALID_PRINCIPALS,
        id="principal-canonical-user",
    ),
    pytest.param(
        doc(key_statement(Principal={"AWS": 111122223333})), MSG_INVALID_PRINCIPALS, id="principal-number"
    ),
    pytest.param(
        doc(key_statement(Principal={"Service": "Not A Service"})),
        MSG_INVALID_PRINCIPALS,
        id="principal-bad-service",
    ),
    pytest.param(
        doc(key_statement(Condition={"StringEqualz": {"kms:CallerAccount": A}})),
        "Policy contains a statement with an unknown condition operator: StringEqualz",
        id="unknown-operator",
    ),
    pytest.param(
        doc(key_statement(Condition={"NullIfExists": {"kms:CallerAccount": "true"}})),
        "Policy contains a statement with an unknown condition operator: NullIfExists",
        id="null-ifexists",
    ),
    pytest.param(
        doc(key_statement(Condition={"ForEachValue:StringEquals": {"aws:TagKeys": "a"}})),
        "Policy contains a statement with an unknown condition operator: ForEachValue:StringEquals",
        id="unknown-qualifier",
    ),
    pytest.param(
        doc(key_statement(Condition={"StringEquals": "x"})),
        "Policy contains a statement with an invalid Condition element.",
        id="condition-block-not-object",
    ),
    pytest.param(
        doc(key_statement(Condition={"StringEquals": {"k": {"nested": 1}}})),
        "Policy contains a statement with an invalid Condition element.",
        id="condition-value-object",
    ),
    pytest.param(
        doc(key_statement(Condition={"StringEquals": {"k": None}})),
        "Policy contains a statement with an invalid Condition element.",
        id="condition-value-null",
    ),
    pytest.param(
        doc(key_statement(Action=5)),
        "Policy contains a statement with an invalid Action element.",
        id="action-not-string",
    ),
    pytest.param(
        doc(key_statement(Resource=["*", 1])),
        "Policy contains a statement with an invalid Resource element.",
        id="resource-list-not-strings",
    ),
    pytest.param(
        doc(key_statement(Foo="bar")),
        "Policy contains a statement with an unknown element: Foo",
        id="unknown-statement-element",
    ),
    pytest.param(
        json.dumps({"Version": "2012-10-17", "Statement": [key_statement()], "Extra": 1}),
        "Policy contains an unknown element: Extra",
        id="unknown-top-element",
    ),
    pytest.param(doc(key_statement(Sid="a"), key_statement(Sid="a")), MSG_DUPLICATE_SID, id="duplicate-sid"),
    pytest.param(
        doc(key_statement(Condition={"ForAllValues:StringEquals": {"kms:EncryptionContext:dept": "it"}})),
        OVERLY_EC,
        id="overly-permissive-encryption-context",
    ),
    pytest.param(
        doc(key_statement(Condition={"ForAllValues:StringLike": {"KMS:ENCRYPTIONCONTEXT:Dept": "i*"}})),
        OVERLY_EC,
        id="overly-permissive-encryption-context-case",
    ),
    pytest.param(
        doc(key_statement(Condition={"ForAllValues:StringEquals": {"aws:RequestTag/env": "dev"}})),
        OVERLY_TAG,
        id="overly-permissive-request-tag",
    ),
]


@pytest.mark.parametrize(("text", "message"), KEY_ERRORS)
def test_key_policy_errors(text: str, message: str) -> None:
    with pytest.raises(MalformedPolicyDocumentException) as info:
        parse_policy(text)
    assert info.value.message == message
    assert info.value.code == "MalformedPolicyDocumentException"


IDENTITY_ERRORS = [
    pytest.param("{not json", MSG_IAM_SYNTAX, id="not-json"),
    pytest.param("[]", MSG_IAM_SYNTAX, id="not-object"),
    pytest.param(json.dumps({"Version": "2012-10-17"}), MSG_IAM_SYNTAX, id="missing-statement"),
    pytest.param(doc(IDENTITY, version=None), MSG_IAM_VERSION, id="missing-version"),
    pytest.param(doc(IDENTITY, version="2008-10-17"), MSG_IAM_VERSION, id="old-version"),
    pytest.param(doc(IDENTITY, version="2020-01-01"), MSG_IAM_SYNTAX, id="bad-version"),
    pytest.param(doc({**IDENTITY, "Effect": "Maybe"}), MSG_IAM_SYNTAX, id="bad-effect"),
    pytest.param(doc({"Effect": "Allow", "Resource": "*"}), MSG_IAM_NO_ACTIONS, id="no-action"),
    pytest.param(doc({**IDENTITY, "Action": []}), MSG_IAM_NO_ACTIONS, id="empty-action"),
    pytest.param(doc({**IDENTITY, "NotAction": "kms:Decrypt"}), MSG_IAM_SYNTAX, id="action-and-notaction"),
    pytest.param(doc({"Effect": "Allow", "Action": "kms:Encrypt"}), MSG_IAM_NO_RESOURCES, id="no-resource"),
    pytest.param(
        doc({**IDENTITY, "Principal": {"AWS": ROOT}}), MSG_IAM_HAS_PRINCIPAL, id="principal-forbidden"
    ),
    pytest.param(
        doc({**IDENTITY, "NotPrincipal": {"AWS": ROOT}}), MSG_IAM_HAS_PRINCIPAL, id="notprincipal-forbidden"
    ),
    pytest.param(doc({**IDENTITY, "Action": "Encrypt"}), MSG_IAM_VENDOR, id="action-without-vendor"),
    pytest.param(doc({**IDENTITY, "Action": "kms:a:b"}), MSG_IAM_ONE_COLON, id="action-two-colons"),
    pytest.param(doc({**IDENTITY, "Action": "k m s:Encrypt"}), "Vendor k m s is not valid", id="bad-vendor"),
    pytest.param(
        doc({**IDENTITY, "Condition": {"StringEqualz": {"a:b": "c"}}}), MSG_IAM_SYNTAX, id="unknown-operator"
    ),
]


@pytest.mark.parametrize(("text", "message"), IDENTITY_ERRORS)
def test_identity_policy_errors(text: str, message: str) -> None:
    with pytest.raises(MalformedPolicyDocumentException) as info:
        parse_policy(text, kind="identity")
    assert info.value.message == message


TRUST_ERRORS = [
    pytest.param(
        doc({"Effect": "Allow", "Action": "sts:AssumeRole"}), MSG_IAM_NO_PRINCIPAL, id="no-principal"
    ),
    pytest.param(doc({**TRUST, "Resource": "*"}), MSG_IAM_TRUST_RESOURCE, id="resource-prohibited"),
    pytest.param(doc({"Effect": "Allow", "Principal": {"AWS": ROOT}}), MSG_IAM_NO_ACTIONS, id="no-action"),
    pytest.param(
        doc({**TRUST, "Principal": {"AWS": "bob"}}),
        'Invalid principal in policy: "AWS":"bob"',
        id="invalid-principal",
    ),
    pytest.param(
        doc({"Effect": "Allow", "NotPrincipal": {"AWS": ROOT}, "Action": "sts:AssumeRole"}),
        MSG_IAM_SYNTAX,
        id="notprincipal-unsupported",
    ),
]


@pytest.mark.parametrize(("text", "message"), TRUST_ERRORS)
def test_trust_policy_errors(text: str, message: str) -> None:
    with pytest.raises(MalformedPolicyDocumentException) as info:
        parse_policy(text, kind="trust")
    assert info.value.message == message


VALID_KEY_POLICIES = [
    pytest.param(doc(key_statement()), id="default-policy"),
    pytest.param(doc(key_statement(), version=None), id="no-version"),
    pytest.param(doc(key_statement(), version="2008-10-17"), id="version-2008"),
    pytest.param(json.dumps({"Version": "2012-10-17", "Statement": key_statement()}), id="statement-object"),
    pytest.param(doc(key_statement(Action=None)), id="missing-action-accepted"),
    pytest.param(doc(key_statement(Resource=None)), id="missing-resource-accepted"),
    pytest.param(doc(key_statement(Effect="allow")), id="effect-case-insensitive"),
    pytest.param(doc(key_statement(Principal="*")), id="principal-star"),
    pytest.param(doc(key_statement(Principal={"AWS": "*"})), id="principal-aws-star"),
    pytest.param(doc(key_statement(Principal={"AWS": A})), id="principal-account-id"),
    pytest.param(
        doc(
            key_statement(Principal={"AWS": [f"arn:aws:iam::{A}:user/path/bob", f"arn:aws:iam::{A}:role/R"]})
        ),
        id="principal-user-and-role",
    ),
    pytest.param(
        doc(key_statement(Principal={"AWS": f"arn:aws:sts::{A}:assumed-role/R/session@x.com"})),
        id="principal-session",
    ),
    pytest.param(
        doc(key_statement(Principal={"Service": ["logs.us-east-1.amazonaws.com", "ec2.amazonaws.com"]})),
        id="principal-service",
    ),
    pytest.param(
        doc(key_statement(Principal={"Federated": "cognito-identity.amazonaws.com"})),
        id="principal-federated",
    ),
    pytest.param(doc(key_statement(Sid="Same Sid with spaces"), key_statement(Sid="")), id="sid-with-spaces"),
    pytest.param(
        doc(key_statement(Condition={"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "a"}})),
        id="forallvalues-on-multivalued-key",
    ),
    pytest.param(
        doc(key_statement(Condition={"ForAnyValue:StringEquals": {"kms:EncryptionContext:dept": "it"}})),
        id="foranyvalue-is-not-rejected",
    ),
    pytest.param(
        doc(key_statement(Condition={"Bool": {"kms:GrantIsForAWSResource": True}})), id="bool-json-value"
    ),
    pytest.param(doc(key_statement(Action="Encrypt")), id="vendorless-action-accepted-in-key-policy"),
]


@pytest.mark.parametrize("text", VALID_KEY_POLICIES)
def test_valid_key_policies(text: str) -> None:
    parsed = parse_policy(text)
    assert parsed.kind == "key"
    assert parsed.statements


def test_missing_action_or_resource_makes_the_statement_ineffective() -> None:
    assert not parse_policy(doc(key_statement(Action=None))).statements[0].effective
    assert not parse_policy(doc(key_statement(Resource=None))).statements[0].effective
    assert parse_policy(doc(key_statement())).statements[0].effective


def test_overly_permissive_condition_is_a_key_policy_rule_only() -> None:
    text = doc({**IDENTITY, "Condition": {"ForAllValues:StringEquals": {"kms:EncryptionContext:dept": "it"}}})
    assert parse_policy(text, kind="identity").statements


def test_key_policy_size_limit_counts_utf8_bytes() -> None:
    base = doc(key_statement(Sid=""))
    pad = 32768 - len(base.encode())
    fits = doc(key_statement(Sid="x" * pad))
    assert len(fits.encode()) == 32768
    parse_policy(fits)
    with pytest.raises(LimitExceededException) as info:
        parse_policy(doc(key_statement(Sid="x" * (pad + 1))))
    assert info.value.message == MSG_KEY_TOO_LARGE
    assert info.value.code == "LimitExceededException"
    multibyte = base.replace('"Sid": ""', '"Sid": "' + "\u00e9" * (pad // 2 + 1) + '"')  # 2 bytes each
    assert len(multibyte) <= 32768 < len(multibyte.encode())
    with pytest.raises(LimitExceededException):
        parse_policy(multibyte)


def test_identity_policies_have_no_32kb_key_limit() -> None:
    big = doc({**IDENTITY, "Sid": "x" * 40000})
    assert parse_policy(big, kind="identity").statements


def test_parse_is_cached_by_text_and_kind() -> None:
    cache = PolicyCache()
    text = doc(key_statement(Sid="cached"))
    assert cache.parse(text) is cache.parse(text)
    other_kind = doc({**IDENTITY, "Sid": "cached"})
    assert cache.parse(other_kind, kind="identity") is cache.parse(other_kind, kind="identity")


def test_check_principals_asks_about_each_named_principal_once() -> None:
    user = f"arn:aws:iam::{A}:user/bob"
    role = f"arn:aws:iam::{A}:role/App"
    session = f"arn:aws:sts::{A}:assumed-role/App/s1"
    text = doc(
        key_statement(Principal={"AWS": [ROOT, user, "*", A]}),
        key_statement(Principal={"AWS": [role, user], "Service": "logs.amazonaws.com"}),
        key_statement(Effect="Deny", Principal=None, NotPrincipal={"AWS": [session, ROOT]}),
    )
    asked: list[str] = []

    def exists(arn: str) -> bool:
        asked.append(arn)
        return True

    check_principals(parse_policy(text), exists)
    assert asked == [user, role, session]


def test_check_principals_rejects_a_missing_principal() -> None:
    gone = f"arn:aws:iam::{A}:user/gone"
    text = doc(key_statement(Principal={"AWS": [f"arn:aws:iam::{A}:user/bob", gone]}))
    with pytest.raises(MalformedPolicyDocumentException) as info:
        check_principals(parse_policy(text), lambda arn: arn != gone)
    assert info.value.message == "Policy contains a statement with one or more invalid principals."


def test_check_principals_skips_account_principals() -> None:
    text = doc(
        key_statement(Principal={"AWS": [ROOT, "444455556666", "arn:aws:iam::444455556666:root", "*"]})
    )
    check_principals(parse_policy(text), lambda arn: pytest.fail(f"asked about {arn}"))
