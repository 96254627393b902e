"""AWS's "key states: effect on your KMS key" table, row by row, for every implemented operation on a
key that is Enabled, Disabled, PendingDeletion or PendingImport (an EXTERNAL key without material):
each cell either succeeds or fails with AWS's exact exception and message (§2.1, short forms)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from openkms.crypto import symmetric
from tests.conftest import Server
from tests.e2e.util import aws_error

STATES = ("Enabled", "Disabled", "PendingDeletion", "PendingImport")

OK = None
DISABLED = ("DisabledException", "{arn} is disabled.")
PENDING_DELETION = ("KMSInvalidStateException", "{arn} is pending deletion.")
PENDING_IMPORT = ("KMSInvalidStateException", "{arn} is pending import.")
ORIGIN_EXTERNAL = (
    "UnsupportedOperationException",
    "{arn} origin is EXTERNAL which is not valid for this operation.",
)
NOT_PENDING_DELETION = (
    "KMSInvalidStateException",
    "{arn} is not pending deletion (or pending replica deletion).",
)

Cell = tuple[str, str] | None
CRYPTO = (OK, DISABLED, PENDING_DELETION, PENDING_IMPORT)
ALWAYS = (OK, OK, OK, OK)
NOT_IN_PD = (OK, OK, PENDING_DELETION, OK)
ROTATION_SETTING = (OK, DISABLED, PENDING_DELETION, ORIGIN_EXTERNAL)


@dataclass
class Subject:
    """A key in the state under test, with what the operations need."""

    kms: Any
    server: Server
    key_id: str
    arn: str
    state: str
    ciphertext: bytes  # made by this key (for Decrypt / ReEncrypt of its ciphertext)
    other: str  # an Enabled key of the same type


def _ciphertext_naming(kms: Any, key_id: str) -> bytes:
    """A ciphertext whose header names ``key_id``: a key without material never made one, so a real
    blob of another key gets this key's id in openkms's header (the layout of crypto/symmetric.py)."""
    helper = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=helper, Plaintext=b"state table")["CiphertextBlob"]
    start = 1
    encoded = symmetric._encode_key_id(key_id)
    assert symmetric.parse_header(blob).key_id == helper
    forged = blob[:start] + encoded + blob[start + len(encoded) :]
    assert symmetric.parse_header(forged).key_id == key_id
    return bytes(forged)


def make_subject(kms: Any, server: Server, state: str) -> Subject:
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    if state == "PendingImport":
        md = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
        assert md["KeyState"] == "PendingImport"
        blob = _ciphertext_naming(kms, md["KeyId"])
        return Subject(kms, server, md["KeyId"], md["Arn"], state, blob, other)
    md = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"state table")["CiphertextBlob"]
    if state == "Disabled":
        kms.disable_key(KeyId=md["KeyId"])
    elif state == "PendingDeletion":
        kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == state
    return Subject(kms, server, md["KeyId"], md["Arn"], state, blob, other)


def _alias() -> str:
    return f"alias/state-{uuid.uuid4().hex[:12]}"


def _update_alias_to_subject(s: Subject) -> Any:
    alias = _alias()
    s.kms.create_alias(AliasName=alias, TargetKeyId=s.other)
    return s.kms.update_alias(AliasName=alias, TargetKeyId=s.key_id)


def _update_alias_from_subject(s: Subject) -> Any:
    """UpdateAlias whose current target is the key under test (footnote 10: the source may be PD)."""
    alias = _alias()
    if s.state == "PendingDeletion":
        # An alias cannot be created for a PD key: create it first, then schedule deletion again.
        s.kms.cancel_key_deletion(KeyId=s.key_id)
        s.kms.create_alias(AliasName=alias, TargetKeyId=s.key_id)
        s.kms.schedule_key_deletion(KeyId=s.key_id, PendingWindowInDays=7)
    else:
        s.kms.create_alias(AliasName=alias, TargetKeyId=s.key_id)
    return s.kms.update_alias(AliasName=alias, TargetKeyId=s.other)


def _delete_alias(s: Subject) -> Any:
    alias = _alias()
    if s.state == "PendingDeletion":
        s.kms.cancel_key_deletion(KeyId=s.key_id)
        s.kms.create_alias(AliasName=alias, TargetKeyId=s.key_id)
        s.kms.schedule_key_deletion(KeyId=s.key_id, PendingWindowInDays=7)
    else:
        s.kms.create_alias(AliasName=alias, TargetKeyId=s.key_id)
    return s.kms.delete_alias(AliasName=alias)


def _policy(s: Subject) -> str:
    return (
        '{"Version":"2012-10-17","Statement":[{"Sid":"all","Effect":"Allow",'
        f'"Principal":{{"AWS":"arn:aws:iam::{s.server.account_id}:root"}},"Action":"kms:*","Resource":"*"}}]}}'
    )


Call = Callable[[Subject], Any]

# Operation -> (call, expected cell for Enabled, Disabled, PendingDeletion, PendingImport).
TABLE: dict[str, tuple[Call, tuple[Cell, Cell, Cell, Cell]]] = {
    "Encrypt": (lambda s: s.kms.encrypt(KeyId=s.key_id, Plaintext=b"x"), CRYPTO),
    "Decrypt": (lambda s: s.kms.decrypt(CiphertextBlob=s.ciphertext), CRYPTO),
    "Decrypt(KeyId)": (lambda s: s.kms.decrypt(CiphertextBlob=s.ciphertext, KeyId=s.arn), CRYPTO),
    "ReEncrypt(source)": (
        lambda s: s.kms.re_encrypt(CiphertextBlob=s.ciphertext, DestinationKeyId=s.other),
        CRYPTO,
    ),
    "ReEncrypt(destination)": (
        lambda s: s.kms.re_encrypt(
            CiphertextBlob=s.kms.encrypt(KeyId=s.other, Plaintext=b"y")["CiphertextBlob"],
            DestinationKeyId=s.key_id,
        ),
        CRYPTO,
    ),
    "GenerateDataKey": (lambda s: s.kms.generate_data_key(KeyId=s.key_id, KeySpec="AES_256"), CRYPTO),
    "GenerateDataKeyWithoutPlaintext": (
        lambda s: s.kms.generate_data_key_without_plaintext(KeyId=s.key_id, NumberOfBytes=16),
        CRYPTO,
    ),
    "DescribeKey": (lambda s: s.kms.describe_key(KeyId=s.key_id), ALWAYS),
    "EnableKey": (lambda s: s.kms.enable_key(KeyId=s.key_id), (OK, OK, PENDING_DELETION, PENDING_IMPORT)),
    "DisableKey": (lambda s: s.kms.disable_key(KeyId=s.key_id), (OK, OK, PENDING_DELETION, PENDING_IMPORT)),
    "EnableKeyRotation": (lambda s: s.kms.enable_key_rotation(KeyId=s.key_id), ROTATION_SETTING),
    "DisableKeyRotation": (lambda s: s.kms.disable_key_rotation(KeyId=s.key_id), ROTATION_SETTING),
    "GetKeyRotationStatus": (
        lambda s: s.kms.get_key_rotation_status(KeyId=s.key_id),
        (OK, OK, OK, ORIGIN_EXTERNAL),
    ),
    "RotateKeyOnDemand": (
        lambda s: s.kms.rotate_key_on_demand(KeyId=s.key_id),
        (OK, DISABLED, PENDING_DELETION, PENDING_IMPORT),
    ),
    "ListKeyRotations": (lambda s: s.kms.list_key_rotations(KeyId=s.key_id), ALWAYS),
    "CreateAlias": (lambda s: s.kms.create_alias(AliasName=_alias(), TargetKeyId=s.key_id), NOT_IN_PD),
    "UpdateAlias(destination)": (_update_alias_to_subject, NOT_IN_PD),
    "UpdateAlias(source)": (_update_alias_from_subject, ALWAYS),
    "DeleteAlias": (_delete_alias, ALWAYS),
    "TagResource": (
        lambda s: s.kms.tag_resource(KeyId=s.key_id, Tags=[{"TagKey": "k", "TagValue": "v"}]),
        NOT_IN_PD,
    ),
    "UntagResource": (lambda s: s.kms.untag_resource(KeyId=s.key_id, TagKeys=["k"]), NOT_IN_PD),
    "UpdateKeyDescription": (
        lambda s: s.kms.update_key_description(KeyId=s.key_id, Description="new"),
        NOT_IN_PD,
    ),
    "GetKeyPolicy": (lambda s: s.kms.get_key_policy(KeyId=s.key_id), ALWAYS),
    "PutKeyPolicy": (lambda s: s.kms.put_key_policy(KeyId=s.key_id, Policy=_policy(s)), ALWAYS),
    "ScheduleKeyDeletion": (
        lambda s: s.kms.schedule_key_deletion(KeyId=s.key_id, PendingWindowInDays=7),
        NOT_IN_PD,
    ),
    "CancelKeyDeletion": (
        lambda s: s.kms.cancel_key_deletion(KeyId=s.key_id),
        (NOT_PENDING_DELETION, NOT_PENDING_DELETION, OK, NOT_PENDING_DELETION),
    ),
}

CASES = [
    pytest.param(op, state, TABLE[op][1][i], id=f"{op}-{state}")
    for op in TABLE
    for i, state in enumerate(STATES)
]


@pytest.mark.parametrize(("operation", "state", "expected"), CASES)
def test_key_state_table(kms: Any, server: Server, operation: str, state: str, expected: Cell) -> None:
    subject = make_subject(kms, server, state)
    call = TABLE[operation][0]
    if expected is None:
        call(subject)
        return
    err = aws_error(call, s=subject)
    code, template = expected
    assert (err.code, err.message, err.status) == (code, template.format(arn=subject.arn), 400)


def test_state_refusals_name_the_key_arn_whatever_the_key_id_form(kms: Any, server: Server) -> None:
    """Messages name the key ARN even when the request used an alias or a bare key id."""
    subject = make_subject(kms, server, "Disabled")
    alias = _alias()
    kms.create_alias(AliasName=alias, TargetKeyId=subject.key_id)
    for key_id in (subject.key_id, subject.arn, alias, f"arn:aws:kms:us-east-1:{server.account_id}:{alias}"):
        err = aws_error(kms.encrypt, KeyId=key_id, Plaintext=b"x")
        assert (err.code, err.message) == ("DisabledException", f"{subject.arn} is disabled.")
    # After EnableKey the ciphertext made before DisableKey decrypts again.
    kms.enable_key(KeyId=subject.key_id)
    assert kms.decrypt(CiphertextBlob=subject.ciphertext)["Plaintext"] == b"state table"


def test_cancel_key_deletion_restores_disabled_and_rotation(kms: Any) -> None:
    md = kms.create_key()["KeyMetadata"]
    kms.enable_key_rotation(KeyId=md["KeyId"])
    kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)
    assert kms.get_key_rotation_status(KeyId=md["KeyId"])["KeyRotationEnabled"] is False
    kms.cancel_key_deletion(KeyId=md["KeyId"])
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(KeyId=md["KeyId"])
    assert kms.get_key_rotation_status(KeyId=md["KeyId"])["KeyRotationEnabled"] is True
