"""The per-operation records (domain/operations.py) against botocore's KMS model: every operation of
the model has a record; each record's cross-account use is what the operation's documentation states,
its usage tracking and grant operations are the model's lists, the parameters its facts name exist;
and every table derived from the records (audit, wire, usage, key states, grants, conditions, quotas,
hot path) agrees with them."""

from __future__ import annotations

import inspect
import re
from typing import Any

import botocore.session
import pytest

from openkms.audit.events import READ_ONLY
from openkms.domain import conditions, grants, keystate, quotas
from openkms.domain.keyspec import KeySpec, KeyUsage
from openkms.domain.operations import (
    CROSS_ACCOUNT,
    OPERATIONS,
    CrossAccount,
    KeyKind,
    KeyStateRule,
    Quota,
    accepts_other_accounts_key,
)
from openkms.service.kms.registry import HOT
from openkms.service.kms.registry import OPERATIONS as IMPLEMENTED
from openkms.service.kms.usage import TRACKED
from openkms.wire.audit import REQUEST_DEFAULTS, RESPONSE_NOT_LOGGED
from openkms.wire.naming import lower_first, to_snake

MODEL = botocore.session.get_session().get_service_model("kms")
NAMES = MODEL.operation_names
_SENTENCE = re.compile(r"Cross-account use</b>\s*:\s*(Yes|No|Not applicable)\.")
# The one operation whose documentation states no Yes/No: "You must specify a principal in your Amazon
# Web Services account." (it takes no key; the principal rule is ListRetirableGrants's own).
SPECIAL = {"ListRetirableGrants": CrossAccount.CALLER_PRINCIPAL}


def documented(operation: str) -> CrossAccount:
    doc = MODEL.operation_model(operation).documentation
    if operation in SPECIAL:
        assert "Cross-account use</b>: You must specify a principal in your" in doc
        return SPECIAL[operation]
    found = _SENTENCE.findall(doc)
    assert len(found) == 1, (operation, found)
    return CrossAccount(found[0])


# The operations of the model this service does not implement (answered UnsupportedOperationException).


def test_the_table_has_every_operation_of_the_model() -> None:
    assert len(MODEL.operation_names) == 54
    assert set(OPERATIONS) == set(MODEL.operation_names)
    assert set(IMPLEMENTED) <= set(OPERATIONS)


def test_every_operation_is_implemented() -> None:
    assert set(OPERATIONS) == set(IMPLEMENTED)


@pytest.mark.parametrize("operation", MODEL.operation_names)
def test_cross_account_use_as_documented(operation: str) -> None:
    expected = documented(operation)
    assert OPERATIONS[operation].cross_account is expected
    assert (operation in CROSS_ACCOUNT) is (expected is CrossAccount.YES)
    assert accepts_other_accounts_key(operation) is (expected is CrossAccount.YES)


def test_the_cross_account_operations() -> None:
    expected = {
        "CreateGrant",
        "Decrypt",
        "DeriveSharedSecret",
        "DescribeKey",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateMac",
        "GetKeyRotationStatus",
        "GetPublicKey",
        "ListGrants",
        "ReEncrypt",
        "RetireGrant",
        "RevokeGrant",
        "Sign",
        "Verify",
        "VerifyMac",
    }
    assert expected == CROSS_ACCOUNT


def test_no_operation_name_means_no_other_account() -> None:
    """A lookup made without an operation (an empty or unknown name) refuses other accounts' keys."""
    assert not accepts_other_accounts_key("")
    assert not accepts_other_accounts_key("encrypt")
    assert not accepts_other_accounts_key("Unknown")


# --- facts checked against the model ----------------------------------------------------------------


def inputs(operation: str) -> dict[str, Any]:
    """The operation's request members by wire name."""
    shape = MODEL.operation_model(operation).input_shape
    return dict(shape.members) if shape is not None else {}


def outputs(operation: str) -> dict[str, Any]:
    shape = MODEL.operation_model(operation).output_shape
    return dict(shape.members) if shape is not None else {}


# The operations GetKeyLastUsage reports (the model's KeyLastUsage.Operation values), and AWS's
# cryptographic operations: those, and GenerateRandom, which uses no key.
USAGE = frozenset(outputs("GetKeyLastUsage")["KeyLastUsage"].members["Operation"].enum)
CRYPTOGRAPHIC = USAGE | {"GenerateRandom"}
# The request members that name the KMS key an operation acts on.
KEY_MEMBERS = {"KeyId", "TargetKeyId", "SourceKeyId", "DestinationKeyId"}


def test_each_record_is_named_after_its_operation() -> None:
    assert list(OPERATIONS) == sorted(NAMES)
    assert all(facts.name == name for name, facts in OPERATIONS.items())


def test_usage_tracking_is_the_models_list() -> None:
    assert {name for name, facts in OPERATIONS.items() if facts.usage_tracked} == USAGE
    assert not set(inputs("GenerateRandom")) & KEY_MEMBERS  # the cryptographic operation of no key


@pytest.mark.parametrize("operation", NAMES)
def test_read_only_is_describe_get_list_and_the_cryptographic_operations(operation: str) -> None:
    """CloudTrail's readOnly: true for the operations that only read (Describe*, Get*, List*) and for
    the cryptographic operations, which change no resource."""
    expected = operation.startswith(("Describe", "Get", "List")) or operation in CRYPTOGRAPHIC
    assert OPERATIONS[operation].read_only is expected


@pytest.mark.parametrize("operation", NAMES)
def test_responses_not_logged(operation: str) -> None:
    """CloudTrail records no response for the cryptographic operations, GetKeyPolicy and
    GetParametersForImport; every response with a sensitive member is among them."""
    facts = OPERATIONS[operation]
    expected = operation in CRYPTOGRAPHIC or operation in {"GetKeyPolicy", "GetParametersForImport"}
    assert facts.response_logged is not expected
    if any(shape.metadata.get("sensitive") for shape in outputs(operation).values()):
        assert not facts.response_logged


@pytest.mark.parametrize("operation", NAMES)
def test_logged_defaults_are_request_members_with_a_value_of_their_enum(operation: str) -> None:
    members = {lower_first(name): shape for name, shape in inputs(operation).items()}
    for name, value in OPERATIONS[operation].logged_defaults:
        assert value in members[name].enum


@pytest.mark.parametrize("operation", NAMES)
def test_a_key_state_row_for_each_operation_that_names_a_key(operation: str) -> None:
    """Every operation taking a key (KeyId, TargetKeyId, SourceKeyId/DestinationKeyId) has a row of
    the key-state table, and so does DeleteAlias (the state of the alias's key); no other does."""
    names_a_key = bool(set(inputs(operation)) & KEY_MEMBERS) or operation == "DeleteAlias"
    assert (OPERATIONS[operation].key_state is not None) is names_a_key


def test_the_grant_operations_are_the_models() -> None:
    named = [g for facts in OPERATIONS.values() for g in facts.grant_operations]
    assert len(named) == len(set(named))  # each grant operation allows one operation
    assert set(named) == set(MODEL.shape_for("GrantOperation").enum)
    assert OPERATIONS["ReEncrypt"].grant_operations == ("ReEncryptFrom", "ReEncryptTo")


@pytest.mark.parametrize("operation", NAMES)
def test_grant_facts_agree(operation: str) -> None:
    """A grantable operation names the keys it may be granted on; a grant's encryption-context
    constraints apply exactly to the grantable operations that take an encryption context."""
    facts = OPERATIONS[operation]
    assert bool(facts.grant_key_kinds) is bool(facts.grant_operations)
    takes_context = any("EncryptionContext" in member for member in inputs(operation))
    assert facts.grant_constrained is (bool(facts.grant_operations) and takes_context)


@pytest.mark.parametrize("operation", NAMES)
def test_conditions_name_request_members(operation: str) -> None:
    """Each condition key comes from a member of the request (a default of an enum member is one of
    its values); the encryption context and tag conditions come from the members that carry them."""
    facts = OPERATIONS[operation]
    members = {to_snake(name): shape for name, shape in inputs(operation).items()}
    for condition in facts.conditions:
        if condition.parameter is None:
            assert condition.default is not None  # a fixed value
            continue
        shape = members[condition.parameter]
        if isinstance(condition.default, str) and shape.enum:
            assert condition.default in shape.enum
    contexts = [m for m in ("encryption_context", "source_encryption_context") if m in members]
    assert facts.context_conditions == (contexts[0] if contexts else None)
    assert facts.tag_conditions is bool({"tags", "tag_keys"} & set(members))


@pytest.mark.parametrize("operation", [n for n in NAMES if OPERATIONS[n].service_conditions])
def test_service_conditions_are_set_by_the_service_function(operation: str) -> None:
    source = inspect.getsource(inspect.getmodule(IMPLEMENTED[operation]))
    for key in OPERATIONS[operation].service_conditions:
        if key in ("kms:EncryptionContext:<key>", "kms:EncryptionContextKeys"):
            assert "encryption_context_conditions(" in source
        else:
            assert f'"{key}"' in source, key


@pytest.mark.parametrize("operation", NAMES)
def test_quota_budgets(operation: str) -> None:
    """The cryptographic operations that use a key share their key type's budget, the data key pair
    ones their key pair spec's; every other operation has a budget of its own with AWS's default."""
    facts = OPERATIONS[operation]
    if "KeyPairSpec" in inputs(operation):
        assert facts.quota is Quota.KEY_PAIR_SPEC
    elif operation in USAGE:
        assert facts.quota is Quota.KEY_TYPE
    else:
        assert facts.quota is Quota.OWN
    assert (facts.default_quota is not None) is (facts.quota is Quota.OWN)


@pytest.mark.parametrize("operation", NAMES)
def test_the_hot_path_runs_implemented_operations_that_change_nothing(operation: str) -> None:
    facts = OPERATIONS[operation]
    if facts.hot:
        assert operation in IMPLEMENTED
        assert facts.read_only


# --- the tables derived from the records ----------------------------------------------------------


def where(fact: str) -> set[str]:
    return {name for name, facts in OPERATIONS.items() if getattr(facts, fact)}


def test_audit_and_usage_tables() -> None:
    assert where("read_only") == READ_ONLY
    assert set(NAMES) - where("response_logged") == RESPONSE_NOT_LOGGED
    logged = {
        name: dict(facts.logged_defaults) for name, facts in OPERATIONS.items() if facts.logged_defaults
    }
    assert logged == REQUEST_DEFAULTS
    assert where("usage_tracked") == set(TRACKED)
    assert where("hot") == HOT


def test_key_state_rules() -> None:
    """Operations share a rule exactly when their records name the same row; every row is used."""
    assert set(keystate.RULES) == where("key_state")
    for a in keystate.RULES:
        for b in keystate.RULES:
            same_row = OPERATIONS[a].key_state is OPERATIONS[b].key_state
            assert (keystate.RULES[a] is keystate.RULES[b]) is same_row
    assert {facts.key_state for facts in OPERATIONS.values()} - {None} == set(KeyStateRule)


@pytest.mark.parametrize("spec", list(KeySpec))
@pytest.mark.parametrize("usage", list(KeyUsage))
def test_grant_operations_per_key(spec: KeySpec, usage: KeyUsage) -> None:
    kind = grants.key_kind(spec, usage)
    expected = {g for f in OPERATIONS.values() if kind in f.grant_key_kinds for g in f.grant_operations}
    assert grants.allowed_operations(spec, usage) == expected
    assert {"DescribeKey", "CreateGrant", "RetireGrant"} <= expected


def test_grant_key_kinds() -> None:
    assert grants.key_kind(KeySpec.SYMMETRIC_DEFAULT, KeyUsage.ENCRYPT_DECRYPT) is KeyKind.SYMMETRIC
    assert grants.key_kind(KeySpec.HMAC_256, KeyUsage.GENERATE_VERIFY_MAC) is KeyKind.MAC
    assert grants.key_kind(KeySpec.RSA_2048, KeyUsage.ENCRYPT_DECRYPT) is KeyKind.ASYMMETRIC_ENCRYPT
    assert grants.key_kind(KeySpec.ECC_NIST_P256, KeyUsage.KEY_AGREEMENT) is KeyKind.AGREEMENT
    assert grants.key_kind(KeySpec.ECC_NIST_P256, KeyUsage.SIGN_VERIFY) is KeyKind.SIGN
    constrained = {g for f in OPERATIONS.values() if f.grant_constrained for g in f.grant_operations}
    assert constrained == grants.CONSTRAINED


@pytest.mark.parametrize("operation", NAMES)
def test_request_conditions_follow_the_record(operation: str) -> None:
    facts = OPERATIONS[operation]
    omitted = conditions.request_conditions(operation, {})
    for condition in facts.conditions:
        assert omitted.get(condition.key) == condition.default
    given = {c.parameter: f"value-{i}" for i, c in enumerate(facts.conditions) if c.parameter}
    if facts.context_conditions:
        given[facts.context_conditions] = {"Department": "IT"}
    if facts.tag_conditions:
        given["tags"] = [{"tag_key": "Team", "tag_value": "A"}]
    found = conditions.request_conditions(operation, given)
    expected: dict[str, Any] = {}
    for condition in facts.conditions:
        expected[condition.key] = given.get(condition.parameter or "", condition.default)
    if facts.context_conditions:
        expected["kms:EncryptionContext:Department"] = "IT"
        expected["kms:EncryptionContextKeys"] = ["Department"]
    if facts.tag_conditions:
        expected["aws:RequestTag/Team"] = "A"
        expected["aws:TagKeys"] = ["Team"]
    assert found == {k: v for k, v in expected.items() if v is not None}


def test_quota_tables() -> None:
    assert {n for n, f in OPERATIONS.items() if f.quota is Quota.KEY_TYPE} == quotas.BY_KEY_TYPE
    assert {n for n, f in OPERATIONS.items() if f.quota is Quota.KEY_PAIR_SPEC} == quotas.KEY_PAIR_OPERATIONS
    for name, facts in OPERATIONS.items():
        assert quotas.AWS_DEFAULT.get(name) == facts.default_quota
        group = quotas.operation_group(name, {"key_pair_spec": "RSA_2048"})
        if facts.quota is Quota.OWN:
            assert group == name
            assert name in quotas.GROUP_NAMES
        elif facts.quota is Quota.KEY_TYPE:
            assert group is None
        else:
            assert group == "GenerateDataKeyPair:RSA_2048"
