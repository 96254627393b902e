"""The per-operation table (domain/operations.py) against botocore's KMS model: every operation of the
model has a row, and each row's cross-account use is what the operation's documentation states."""

from __future__ import annotations

import re

import botocore.session
import pytest

from openkms.domain.operations import CROSS_ACCOUNT, OPERATIONS, CrossAccount, accepts_other_accounts_key
from openkms.service.kms.registry import OPERATIONS as IMPLEMENTED

MODEL = botocore.session.get_session().get_service_model("kms")
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
NOT_IMPLEMENTED = {
    "ConnectCustomKeyStore",
    "CreateCustomKeyStore",
    "DeleteCustomKeyStore",
    "DisconnectCustomKeyStore",
    "UpdateCustomKeyStore",
}


def test_the_table_has_every_operation_of_the_model() -> None:
    assert len(MODEL.operation_names) == 54
    assert set(OPERATIONS) == set(MODEL.operation_names)
    assert set(IMPLEMENTED) <= set(OPERATIONS)


def test_every_operation_but_the_custom_key_store_ones_is_implemented() -> None:
    assert set(OPERATIONS) - set(IMPLEMENTED) == NOT_IMPLEMENTED


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
