"""Pure parts of the web console: the default key-policy view's edits, the multipart form parser, and
the create-key wizard's hidden state."""

from __future__ import annotations

import json

import pytest

from openkms.auth.policy import build_console_key_policy, describe_console_key_policy
from openkms.console.http import BadRequest, parse_cookies, parse_multipart
from openkms.console.policy import console_key_type, update_console_policy
from openkms.console.views.create import Wizard

ACCOUNT = "111122223333"
ADMIN = f"arn:aws:iam::{ACCOUNT}:user/admin"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
SYMMETRIC = {"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "Origin": "EXTERNAL"}


def test_key_types() -> None:
    assert console_key_type(SYMMETRIC) == "SYMMETRIC"
    assert console_key_type({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}) == "HMAC"
    assert console_key_type({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}) == "ASYMMETRIC_ENCRYPT"
    assert console_key_type({"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}) == "ASYMMETRIC_SIGN"
    assert console_key_type({"KeySpec": "ECC_NIST_P256", "KeyUsage": "KEY_AGREEMENT"}) == "KEY_AGREEMENT"


def test_default_view_edits_keep_the_rest_of_the_policy() -> None:
    text = build_console_key_policy(
        ACCOUNT,
        key_type="SYMMETRIC",
        origin="EXTERNAL",
        multi_region=False,
        administrators=[ADMIN],
        allow_admin_delete=True,
        users=[],
        other_accounts=[],
    )
    doc = json.loads(text)
    doc["Statement"].append(
        {"Sid": "Custom", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}
    )
    edited = update_console_policy(
        json.dumps(doc),
        account_id=ACCOUNT,
        metadata=SYMMETRIC,
        administrators=[ADMIN, ROLE],
        allow_admin_delete=False,
        users=[ALICE],
        other_accounts=["444455556666"],
    )
    view = describe_console_key_policy(edited)
    assert view is not None
    assert view.administrators == (ADMIN, ROLE)
    assert not view.allow_admin_delete
    assert view.users == (ALICE,)
    assert view.other_accounts == ("444455556666",)
    sids = [s["Sid"] for s in json.loads(edited)["Statement"]]
    assert sids == [
        "Enable IAM User Permissions",
        "Allow access for Key Administrators",
        "Allow use of the key",
        "Allow attachment of persistent resources",
        "Custom",
    ]
    admin_actions = json.loads(edited)["Statement"][1]["Action"]
    assert "kms:ImportKeyMaterial" in admin_actions and "kms:ScheduleKeyDeletion" not in admin_actions
    # Removing every user and account removes their statements; the custom one stays.
    emptied = update_console_policy(
        edited,
        account_id=ACCOUNT,
        metadata=SYMMETRIC,
        administrators=[],
        allow_admin_delete=True,
        users=[],
        other_accounts=[],
    )
    assert [s["Sid"] for s in json.loads(emptied)["Statement"]] == ["Enable IAM User Permissions", "Custom"]
    with pytest.raises(ValueError):
        update_console_policy(
            "[]",
            account_id=ACCOUNT,
            metadata=SYMMETRIC,
            administrators=[],
            allow_admin_delete=True,
            users=[],
            other_accounts=[],
        )


def test_grant_statement_only_for_symmetric_keys() -> None:
    hmac = {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC", "Origin": "AWS_KMS"}
    base = build_console_key_policy(
        ACCOUNT, key_type="HMAC", origin="AWS_KMS", multi_region=False, administrators=[],
        allow_admin_delete=True, users=[], other_accounts=[],
    )  # fmt: skip
    edited = update_console_policy(
        base, account_id=ACCOUNT, metadata=hmac, administrators=[], allow_admin_delete=True, users=[ALICE],
        other_accounts=[],
    )  # fmt: skip
    statements = {s["Sid"]: s for s in json.loads(edited)["Statement"]}
    assert "Allow attachment of persistent resources" not in statements
    assert statements["Allow use of the key"]["Action"] == [
        "kms:DescribeKey",
        "kms:GenerateMac",
        "kms:VerifyMac",
    ]


def test_multipart() -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="csrf_token"\r\n\r\n'
        b"abc\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="import_token"; filename="ImportToken.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
        b"\x00\r\n--X\xff\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="encrypted_key_material"; filename=""\r\n\r\n'
        b"\r\n"
        b"--XyZ--\r\n"
    )
    fields, files = parse_multipart("multipart/form-data; boundary=XyZ", body)
    assert fields == {"csrf_token": ["abc"]}
    assert files["import_token"].data == b"\x00\r\n--X\xff"  # bytes exactly as sent
    assert files["import_token"].filename == "ImportToken.bin"
    assert "encrypted_key_material" not in files  # no file chosen
    for bad in (b"garbage", b"--XyZ\r\nno-headers"):
        with pytest.raises(BadRequest):
            parse_multipart("multipart/form-data; boundary=XyZ", bad)
    with pytest.raises(BadRequest):
        parse_multipart("multipart/form-data", body)


def test_cookies() -> None:
    assert parse_cookies("a=1; openkms_session=xyz; a=2") == {"a": "1", "openkms_session": "xyz"}
    assert parse_cookies("") == {}


def test_wizard_state_round_trips_through_hidden_fields() -> None:
    w = Wizard(
        key_type="ASYMMETRIC",
        key_usage="SIGN_VERIFY",
        key_spec="ECC_NIST_P256",
        origin="EXTERNAL",
        acknowledge=True,
        multi_region=True,
        alias="a",
        description="d",
        tags=[["k", "v"], ["k2", ""]],
        admins=[ADMIN],
        admin_delete=False,
        users=[ALICE, ROLE],
        accounts=["444455556666"],
    )
    form: dict[str, list[str]] = {}
    for name, value in w.hidden(0):  # step 0: every step's choices are hidden fields
        form.setdefault(name, []).append(value)
    assert Wizard.from_form(lambda n: form.get(n, [""])[0], lambda n: form.get(n, [])) == w
    assert not any(name in ("alias", "description") for name, _ in w.hidden(2))  # step 2 shows them
