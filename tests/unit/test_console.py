"""Pure parts of the web console: the default key-policy view's edits, reading forms (urlencoded and
multipart, through Starlette's parsers within the console's limits) and cookies, and the create-key
wizard's hidden state."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.requests import Request

from openkms.auth.policy import build_console_key_policy, describe_console_key_policy
from openkms.console.http import MAX_FORM_BODY, BadRequest, Upload, parse_cookies, read_form
from openkms.console.policy import console_key_type, update_console_policy
from openkms.console.render import ENV, compile_templates
from openkms.console.views.create import Wizard

ACCOUNT = "111122223333"
ADMIN = f"arn:aws:iam::{ACCOUNT}:user/admin"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
SYMMETRIC = {"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "Origin": "EXTERNAL"}


def test_every_template_compiles() -> None:
    """The server compiles a template on its first use; every one of them must compile."""
    compile_templates()
    names = ENV.list_templates(extensions=["html"])
    assert "base.html" in names and "keys.html" in names
    assert all(ENV.get_template(name).name == name for name in names)


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


def read(
    content_type: str | None, body: bytes, chunk: int = 0
) -> tuple[dict[str, list[str]], dict[str, Upload]]:
    """The form of a POST with this body (sent in pieces of ``chunk`` bytes, else at once)."""
    headers = [(b"content-type", content_type.encode("latin-1"))] if content_type is not None else []
    scope = {"type": "http", "method": "POST", "path": "/console/x", "headers": headers, "query_string": b""}
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]

    async def receive() -> dict[str, Any]:
        piece = pieces.pop(0) if pieces else b""
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    # On a thread of its own: the browser tests' Playwright keeps an event loop running on this one.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, read_form(Request(scope, receive))).result()


MULTIPART = (
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


@pytest.mark.parametrize("chunk", [0, 7])
def test_multipart(chunk: int) -> None:
    fields, files = read("multipart/form-data; boundary=XyZ", MULTIPART, chunk)
    assert fields == {"csrf_token": ["abc"]}
    assert files["import_token"].data == b"\x00\r\n--X\xff"  # bytes exactly as sent
    assert files["import_token"].filename == "ImportToken.bin"
    assert "encrypted_key_material" not in files  # no file chosen


def parts(count: int) -> bytes:
    part = b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\n1\r\n'
    return part * count + b"--b--\r\n"


MP = "multipart/form-data; boundary=XyZ"
FORM = "application/x-www-form-urlencoded"
#: (what, content type, body, the status it is refused with); each is refused before any view runs.
REFUSED = [
    ("garbage", MP, b"garbage", 400),
    ("cut short in a part's headers", MP, b"--XyZ\r\nno-headers", 400),
    ("no boundary", "multipart/form-data", MULTIPART, 400),
    ("another boundary", "multipart/form-data; boundary=other", MULTIPART, 400),
    ("no closing delimiter", MP, MULTIPART[: -len(b"--XyZ--\r\n")], 400),
    ("empty multipart", MP, b"", 400),
    ("bare line feeds", MP, MULTIPART.replace(b"\r\n", b"\n"), 400),
    ("a part without a name", MP, b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--\r\n", 400),
    ("1,001 parts", "multipart/form-data; boundary=b", parts(1001), 413),
    ("1,001 parts, 600 of them files", "multipart/form-data; boundary=b",
     parts(1001).replace(b'"f"\r\n', b'"f"; filename="f"\r\n', 600), 413),
    ("a multipart body too large", "multipart/form-data; boundary=b", b"x" * (MAX_FORM_BODY + 1), 413),
    ("1,001 fields", FORM, b"a=1" + b"&a=1" * 1000, 400),
    ("not UTF-8", FORM, b"op=\xff\xfe", 400),
    ("a form too large", FORM, b"a=" + b"x" * MAX_FORM_BODY, 413),
    ("text/plain", "text/plain", b"op=enable", 400),
    ("no content type", None, b"op=enable", 400),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content_type", "body", "status"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_forms_refused(content_type: str | None, body: bytes, status: int) -> None:
    with pytest.raises(BadRequest) as refused:
        read(content_type, body, chunk=4096)
    assert refused.value.status == status


def test_forms_read() -> None:
    assert read("multipart/form-data; boundary=b", parts(1000))[0] == {"f": ["1"] * 1000}
    assert read(FORM, b"a=1" + b"&a=1" * 999)[0] == {"a": ["1"] * 1000}
    assert read(FORM, "d=é+%C3%A9&d=%FF&e=&f".encode()) == (
        {"d": ["é é", "\ufffd"], "e": [""], "f": [""]},
        {},
    )
    assert read("text/plain", b"") == ({}, {})
    assert read(FORM.upper(), b"a=1") == ({"a": ["1"]}, {})
    epilogue = read(MP, MULTIPART + b"epilogue", 5)
    assert epilogue[0] == {"csrf_token": ["abc"]} and list(epilogue[1]) == ["import_token"]
    twice = (
        b'--b\r\nContent-Disposition: form-data; name="t"; filename="1"\r\n\r\nfirst\r\n'
        b'--b\r\nContent-Disposition: form-data; name="t"; filename="2"\r\n\r\nsecond\r\n--b--\r\n'
    )
    assert read("multipart/form-data; boundary=b", twice)[1]["t"].data == b"second"  # the last of a name


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
