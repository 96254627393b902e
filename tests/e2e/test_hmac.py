"""HMAC keys as AWS KMS answers (reference §11.3): CreateKey for the four HMAC specs, GenerateMac and
VerifyMac. MACs are checked against Python's ``hmac`` with imported key material (the only way to know
the key), refusals carry AWS's errors, and neither MACs nor messages reach the audit trail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e import importing
from tests.e2e.asym import KeyBank
from tests.e2e.util import ALWAYS_MEMBERS, aws_error, members, wait_for_audit

SPECS = {
    "HMAC_224": ("HMAC_SHA_224", 28),
    "HMAC_256": ("HMAC_SHA_256", 32),
    "HMAC_384": ("HMAC_SHA_384", 48),
    "HMAC_512": ("HMAC_SHA_512", 64),
}
HASHLIB = {
    "HMAC_SHA_224": hashlib.sha224,
    "HMAC_SHA_256": hashlib.sha256,
    "HMAC_SHA_384": hashlib.sha384,
    "HMAC_SHA_512": hashlib.sha512,
}


@pytest.fixture(scope="module")
def bank(server: Server) -> KeyBank:
    return KeyBank(server.client())


@pytest.mark.parametrize("spec", list(SPECS))
def test_generate_and_verify_mac(kms: Any, bank: KeyBank, spec: str) -> None:
    algorithm, length = SPECS[spec]
    key = bank.key(spec, "GENERATE_VERIFY_MAC")
    assert set(key) == ALWAYS_MEMBERS | {"MacAlgorithms"}
    assert key["MacAlgorithms"] == [algorithm] and key["KeyUsage"] == "GENERATE_VERIFY_MAC"
    out = kms.generate_mac(KeyId=key["KeyId"], Message=b"message", MacAlgorithm=algorithm)
    assert members(out) == {"KeyId", "Mac", "MacAlgorithm"}
    assert out["KeyId"] == key["Arn"] and out["MacAlgorithm"] == algorithm and len(out["Mac"]) == length
    # Deterministic, and another message gives another MAC.
    assert kms.generate_mac(KeyId=key["Arn"], Message=b"message", MacAlgorithm=algorithm)["Mac"] == out["Mac"]
    assert (
        kms.generate_mac(KeyId=key["KeyId"], Message=b"messagf", MacAlgorithm=algorithm)["Mac"] != out["Mac"]
    )
    ok = kms.verify_mac(KeyId=key["KeyId"], Message=b"message", Mac=out["Mac"], MacAlgorithm=algorithm)
    assert members(ok) == {"KeyId", "MacValid", "MacAlgorithm"}
    assert ok["MacValid"] is True and ok["KeyId"] == key["Arn"]
    altered = bytes([out["Mac"][0] ^ 1]) + out["Mac"][1:]
    for message, mac in (
        (b"other message", out["Mac"]),
        (b"message", altered),
        (b"message", out["Mac"][:-1]),
    ):
        err = aws_error(kms.verify_mac, KeyId=key["KeyId"], Message=message, Mac=mac, MacAlgorithm=algorithm)
        assert (err.code, err.message, err.status) == ("KMSInvalidMacException", "", 400)
    # Another key of the same spec: another MAC.
    other = kms.create_key(KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    err = aws_error(kms.verify_mac, KeyId=other, Message=b"message", Mac=out["Mac"], MacAlgorithm=algorithm)
    assert err.code == "KMSInvalidMacException"


@pytest.mark.parametrize("spec", list(SPECS))
def test_imported_hmac_key_macs_equal_python_hmac(kms: Any, spec: str) -> None:
    algorithm, length = SPECS[spec]
    key = kms.create_key(KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC", Origin="EXTERNAL")["KeyMetadata"]
    material = os.urandom(length)
    importing.import_material(kms, key["KeyId"], material)
    for message in (b"a", os.urandom(4096)):
        expected = hmac.new(material, message, HASHLIB[algorithm]).digest()
        assert (
            kms.generate_mac(KeyId=key["KeyId"], Message=message, MacAlgorithm=algorithm)["Mac"] == expected
        )
        local = hmac.new(material, message, HASHLIB[algorithm]).digest()
        assert kms.verify_mac(KeyId=key["KeyId"], Message=message, Mac=local, MacAlgorithm=algorithm)[
            "MacValid"
        ]


def test_imported_hmac_key_longer_than_the_hash(kms: Any) -> None:
    key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC", Origin="EXTERNAL")["KeyMetadata"]
    material = os.urandom(100)  # RFC 2104: keys longer than the block are hashed first; hmac does the same
    importing.import_material(kms, key["KeyId"], material)
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac == hmac.new(material, b"m", hashlib.sha256).digest()


def test_mac_refusals(server: Server, kms: Any, bank: KeyBank) -> None:
    key = bank.key("HMAC_256", "GENERATE_VERIFY_MAC")
    for op, extra in ((kms.generate_mac, {}), (kms.verify_mac, {"Mac": b"m" * 32})):
        err = aws_error(op, KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_512", **extra)
        assert (err.code, err.message) == (
            "InvalidKeyUsageException",
            "Algorithm HMAC_SHA_512 is incompatible with key spec HMAC_256.",
        )
    symmetric = kms.create_key()["KeyMetadata"]
    err = aws_error(kms.generate_mac, KeyId=symmetric["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")
    assert (err.code, err.message) == (
        "InvalidKeyUsageException",
        f"{symmetric['Arn']} key usage is ENCRYPT_DECRYPT which is not valid for GenerateMac.",
    )
    err = aws_error(
        kms.verify_mac, KeyId=symmetric["KeyId"], Message=b"m", Mac=b"x", MacAlgorithm="HMAC_SHA_256"
    )
    assert err.message == f"{symmetric['Arn']} key usage is ENCRYPT_DECRYPT which is not valid for VerifyMac."
    # HMAC keys do nothing else.
    err = aws_error(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"p")
    assert err.message == f"{key['Arn']} key usage is GENERATE_VERIFY_MAC which is not valid for Encrypt."
    err = aws_error(kms.sign, KeyId=key["KeyId"], Message=b"p", SigningAlgorithm="ECDSA_SHA_256")
    assert err.message == f"{key['Arn']} key usage is GENERATE_VERIFY_MAC which is not valid for Sign."
    err = aws_error(kms.generate_mac, KeyId="alias/no-such-hmac", Message=b"m", MacAlgorithm="HMAC_SHA_256")
    assert err.code == "NotFoundException"
    err = aws_error(kms.generate_mac, KeyId="key_id", Message=b"m", MacAlgorithm="HMAC_SHA_256")
    assert (err.code, err.message) == ("NotFoundException", "Invalid keyId 'key_id'")
    unchecked = server.client(parameter_validation=False)
    err = aws_error(
        unchecked.generate_mac, KeyId=key["KeyId"], Message=b"m" * 4097, MacAlgorithm="HMAC_SHA_256"
    )
    assert err.message == (
        "1 validation error detected: Value at 'message' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096"
    )
    err = aws_error(unchecked.generate_mac, KeyId=key["KeyId"], Message=b"m", MacAlgorithm="INVALID")
    assert err.message == (
        "1 validation error detected: Value 'INVALID' at 'macAlgorithm' failed to satisfy constraint: "
        "Member must satisfy enum value set: [HMAC_SHA_224, HMAC_SHA_256, HMAC_SHA_384, HMAC_SHA_512]"
    ) or err.message.startswith("1 validation error detected: Value 'INVALID' at 'macAlgorithm'")
    err = aws_error(
        kms.generate_mac, KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256", DryRun=True
    )
    assert err.code == "DryRunOperationException"


def test_mac_key_states(kms: Any) -> None:
    key = kms.create_key(KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_384")["Mac"]
    calls = (
        lambda: kms.generate_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_384"),
        lambda: kms.verify_mac(KeyId=key["KeyId"], Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_384"),
    )
    kms.disable_key(KeyId=key["KeyId"])
    for call in calls:
        err = aws_error(call)
        assert (err.code, err.message) == ("DisabledException", f"{key['Arn']} is disabled.")
    kms.enable_key(KeyId=key["KeyId"])
    assert calls[1]()["MacValid"] is True
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    for call in calls:
        err = aws_error(call)
        assert (err.code, err.message) == ("KMSInvalidStateException", f"{key['Arn']} is pending deletion.")
    pending = kms.create_key(KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC", Origin="EXTERNAL")[
        "KeyMetadata"
    ]
    err = aws_error(kms.generate_mac, KeyId=pending["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_384")
    assert (err.code, err.message) == ("KMSInvalidStateException", f"{pending['Arn']} is pending import.")


def test_aws_cli_generate_and_verify_mac(server: Server, bank: KeyBank, tmp_path: Path) -> None:
    key = bank.key("HMAC_512", "GENERATE_VERIFY_MAC")["KeyId"]
    (tmp_path / "msg").write_bytes(b"cli message")
    out = json.loads(
        server.aws(
            "kms", "generate-mac", "--key-id", key, "--message", f"fileb://{tmp_path / 'msg'}",
            "--mac-algorithm", "HMAC_SHA_512",
        ).stdout
    )  # fmt: skip
    (tmp_path / "mac").write_bytes(base64.b64decode(out["Mac"]))
    ok = json.loads(
        server.aws(
            "kms", "verify-mac", "--key-id", key, "--message", f"fileb://{tmp_path / 'msg'}", "--mac",
            f"fileb://{tmp_path / 'mac'}", "--mac-algorithm", "HMAC_SHA_512",
        ).stdout
    )  # fmt: skip
    assert ok["MacValid"] is True


def test_audit_records_never_hold_macs(server: Server, kms: Any) -> None:
    key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    message = b"mac-audit-" + os.urandom(6).hex().encode()
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=message, MacAlgorithm="HMAC_SHA_256")["Mac"]
    kms.verify_mac(KeyId=key["KeyId"], Message=message, Mac=mac, MacAlgorithm="HMAC_SHA_256")
    records = wait_for_audit(server, ("--key-id", key["KeyId"]), lambda r: len(r) >= 3)
    assert sorted(r["eventName"] for r in records) == ["CreateKey", "GenerateMac", "VerifyMac"]
    text = json.dumps(records)
    assert base64.b64encode(mac).decode() not in text and mac.hex() not in text
    assert message.decode() not in text and base64.b64encode(message).decode() not in text
    for r in records:
        if r["eventName"] != "CreateKey":
            assert r["requestParameters"] == {"keyId": key["KeyId"], "macAlgorithm": "HMAC_SHA_256"}
            assert r["responseElements"] is None and r["readOnly"] is True
