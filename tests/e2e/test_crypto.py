"""Symmetric cryptography as AWS KMS answers it: round trips and exact response members of Encrypt,
Decrypt, ReEncrypt, GenerateDataKey(+WithoutPlaintext) and GenerateRandom (§4.1); the encryption
context is authenticated; tampered or foreign ciphertext is refused (never a 5xx); size limits;
DryRun; and rotation (old ciphertext keeps decrypting under its own key material)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.util import aws_error, members

NO_CIPHERTEXT_KEY = (
    "The ciphertext refers to a customer master key that does not exist, does not exist in this region, "
    "or you are not allowed to access."
)
INCORRECT_KEY = "The key ID in the request does not identify a CMK that can perform this operation."
DRY_RUN = "The request would have succeeded, but the DryRun option is set."
DAY = 86400


@pytest.fixture
def key(kms: Any) -> dict[str, Any]:
    return dict(kms.create_key()["KeyMetadata"])


@pytest.fixture
def unchecked(server: Server) -> Any:
    """A client that sends what it is given (botocore's own parameter checks off)."""
    return server.client(parameter_validation=False)


def test_encrypt_decrypt_round_trip(kms: Any, key: dict[str, Any]) -> None:
    enc = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"hello world")
    assert members(enc) == {"CiphertextBlob", "KeyId", "EncryptionAlgorithm"}
    assert enc["KeyId"] == key["Arn"]
    assert enc["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert b"hello world" not in enc["CiphertextBlob"]
    dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"])
    assert members(dec) == {"KeyId", "Plaintext", "EncryptionAlgorithm", "KeyMaterialId"}
    assert dec["Plaintext"] == b"hello world"
    assert dec["KeyId"] == key["Arn"]
    assert dec["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert dec["KeyMaterialId"] == key["CurrentKeyMaterialId"]
    # Same plaintext twice: different blobs. KeyId and algorithm may be given to Decrypt.
    again = kms.encrypt(KeyId=key["Arn"], Plaintext=b"hello world", EncryptionAlgorithm="SYMMETRIC_DEFAULT")
    assert again["CiphertextBlob"] != enc["CiphertextBlob"]
    dec = kms.decrypt(
        CiphertextBlob=again["CiphertextBlob"], KeyId=key["KeyId"], EncryptionAlgorithm="SYMMETRIC_DEFAULT"
    )
    assert dec["Plaintext"] == b"hello world"


def test_encrypt_through_alias(kms: Any, key: dict[str, Any], server: Server) -> None:
    alias = f"alias/crypto-{os.urandom(4).hex()}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    for key_id in (alias, f"arn:aws:kms:us-east-1:{server.account_id}:{alias}"):
        enc = kms.encrypt(KeyId=key_id, Plaintext=b"via alias")
        assert enc["KeyId"] == key["Arn"]
        assert kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], KeyId=key_id)["Plaintext"] == b"via alias"


def test_aws_cli_encrypt_with_context(server: Server, key: dict[str, Any], tmp_path: Path) -> None:
    """AWS CLI v1: blob arguments as fileb://, the encryption context as a map argument."""
    plaintext = os.urandom(100)
    (tmp_path / "pt").write_bytes(plaintext)
    enc = json.loads(
        server.aws(
            "kms",
            "encrypt",
            "--key-id",
            key["Arn"],
            "--plaintext",
            f"fileb://{tmp_path / 'pt'}",
            "--encryption-context",
            "purpose=cli,team=crypto",
        ).stdout
    )
    assert set(enc) == {"CiphertextBlob", "KeyId", "EncryptionAlgorithm"}
    (tmp_path / "ct").write_bytes(base64.b64decode(enc["CiphertextBlob"]))
    blob = f"fileb://{tmp_path / 'ct'}"
    dec = json.loads(
        server.aws(
            "kms", "decrypt", "--ciphertext-blob", blob, "--encryption-context", "team=crypto,purpose=cli"
        ).stdout
    )
    assert base64.b64decode(dec["Plaintext"]) == plaintext
    assert dec["KeyId"] == key["Arn"]
    failed = server.aws("kms", "decrypt", "--ciphertext-blob", blob, check=False)
    assert failed.returncode != 0
    assert "InvalidCiphertextException" in failed.stderr


def test_plaintext_size_limits(kms: Any, unchecked: Any, key: dict[str, Any]) -> None:
    big = os.urandom(4096)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=big)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == big
    err = aws_error(unchecked.encrypt, KeyId=key["KeyId"], Plaintext=big + b"x")
    assert (err.code, err.message, err.status) == (
        "ValidationException",
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096",
        400,
    )
    err = aws_error(unchecked.encrypt, KeyId=key["KeyId"], Plaintext=b"")
    assert (err.code, err.message) == (
        "ValidationException",
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1",
    )


def test_encryption_context_is_authenticated(kms: Any, key: dict[str, Any]) -> None:
    context = {"purpose": "test", "Department": "10103.0"}
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"bound", EncryptionContext=context)["CiphertextBlob"]
    reordered = dict(reversed(list(context.items())))
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=reordered)["Plaintext"] == b"bound"
    wrong_contexts: list[dict[str, str] | None] = [
        None,  # missing
        {"purpose": "test"},  # a pair missing
        {"purpose": "test", "Department": "10103"},  # different value
        {"purpose": "test", "department": "10103.0"},  # key case differs
        {**context, "extra": "pair"},  # an extra pair
    ]
    for wrong in wrong_contexts:
        kwargs = {"EncryptionContext": wrong} if wrong is not None else {}
        err = aws_error(kms.decrypt, CiphertextBlob=blob, **kwargs)
        assert (err.code, err.message, err.status) == ("InvalidCiphertextException", "", 400), wrong
    # A blob made without a context does not decrypt with one.
    plain = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"free")["CiphertextBlob"]
    err = aws_error(kms.decrypt, CiphertextBlob=plain, EncryptionContext={"a": "b"})
    assert (err.code, err.message) == ("InvalidCiphertextException", "")


def test_tampered_ciphertext_is_refused(kms: Any, key: dict[str, Any]) -> None:
    plaintext = b"do not tamper with me"
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext)["CiphertextBlob"]
    n = len(blob)
    invalid = ("InvalidCiphertextException", "")
    # Bit flips in the version byte, the material reference, the nonce, the body and the tag.
    for offset in (0, 20, 40, 60, 70, n - 20, n - 1):
        for bit in (0x01, 0x80):
            flipped = bytearray(blob)
            flipped[offset] ^= bit
            err = aws_error(kms.decrypt, CiphertextBlob=bytes(flipped))
            assert (err.code, err.message) == invalid, (offset, bit)
    # Every single-bit flip anywhere is refused: the blob then fails to authenticate, or names a key
    # that does not exist (answered like the ciphertext of a deleted key). Never success, never 5xx.
    for offset in range(n):
        flipped = bytearray(blob)
        flipped[offset] ^= 0x01
        err = aws_error(kms.decrypt, CiphertextBlob=bytes(flipped))
        assert (err.code, err.message) in (invalid, ("AccessDeniedException", NO_CIPHERTEXT_KEY)), offset
        assert err.status == 400
    # Truncated, extended, random and tiny blobs.
    variants = [blob[:-1], blob[: n // 2], blob[:10], blob[:1], blob + b"\x00", blob + os.urandom(16)]
    variants += [os.urandom(size) for size in (1, 16, 64, n, 512, 6144)]
    for variant in variants:
        err = aws_error(kms.decrypt, CiphertextBlob=variant)
        assert err.status == 400, len(variant)
        assert err.code in ("InvalidCiphertextException", "AccessDeniedException"), len(variant)
        if err.code == "InvalidCiphertextException":
            assert err.message == ""
    for variant in (blob[:-1], blob + b"\x00", blob[: n // 2]):
        assert (aws_error(kms.decrypt, CiphertextBlob=variant).code) == "InvalidCiphertextException"
    # The untouched blob still decrypts.
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext


def test_decrypt_with_another_keys_id(kms: Any, key: dict[str, Any]) -> None:
    other = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"mine")["CiphertextBlob"]
    for key_id in (other["KeyId"], other["Arn"]):
        err = aws_error(kms.decrypt, CiphertextBlob=blob, KeyId=key_id)
        assert (err.code, err.message, err.status) == ("IncorrectKeyException", INCORRECT_KEY, 400)
    err = aws_error(
        kms.re_encrypt, CiphertextBlob=blob, SourceKeyId=other["KeyId"], DestinationKeyId=other["KeyId"]
    )
    assert (err.code, err.message) == ("IncorrectKeyException", INCORRECT_KEY)


def test_re_encrypt(kms: Any, key: dict[str, Any]) -> None:
    dest = kms.create_key()["KeyMetadata"]
    src_ctx = {"from": "source"}
    dst_ctx = {"to": "destination"}
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"moving", EncryptionContext=src_ctx)["CiphertextBlob"]
    out = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=src_ctx,
        DestinationKeyId=dest["KeyId"],
        DestinationEncryptionContext=dst_ctx,
    )
    assert members(out) == {
        "CiphertextBlob",
        "KeyId",
        "SourceKeyId",
        "SourceEncryptionAlgorithm",
        "DestinationEncryptionAlgorithm",
        "SourceKeyMaterialId",
        "DestinationKeyMaterialId",
    }
    assert out["KeyId"] == dest["Arn"]
    assert out["SourceKeyId"] == key["Arn"]
    assert out["SourceEncryptionAlgorithm"] == out["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert out["SourceKeyMaterialId"] == key["CurrentKeyMaterialId"]
    assert out["DestinationKeyMaterialId"] == dest["CurrentKeyMaterialId"]
    dec = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext=dst_ctx)
    assert (dec["Plaintext"], dec["KeyId"]) == (b"moving", dest["Arn"])
    # The new blob is bound to the destination context only; the original blob stays valid.
    assert aws_error(kms.decrypt, CiphertextBlob=out["CiphertextBlob"]).code == "InvalidCiphertextException"
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=src_ctx)["Plaintext"] == b"moving"
    # The source context is required.
    err = aws_error(kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=dest["KeyId"])
    assert (err.code, err.message) == ("InvalidCiphertextException", "")
    # Re-encrypting under the same key works too.
    same = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=src_ctx, DestinationKeyId=key["Arn"])
    assert same["KeyId"] == same["SourceKeyId"] == key["Arn"]


@pytest.mark.parametrize(
    ("kwargs", "length"),
    [
        ({"KeySpec": "AES_256"}, 32),
        ({"KeySpec": "AES_128"}, 16),
        ({"NumberOfBytes": 1}, 1),
        ({"NumberOfBytes": 1024}, 1024),
    ],
)
def test_generate_data_key(kms: Any, key: dict[str, Any], kwargs: dict[str, Any], length: int) -> None:
    ctx = {"file": "a.txt"}
    out = kms.generate_data_key(KeyId=key["KeyId"], EncryptionContext=ctx, **kwargs)
    assert members(out) == {"CiphertextBlob", "KeyId", "Plaintext", "KeyMaterialId"}
    assert out["KeyId"] == key["Arn"]
    assert out["KeyMaterialId"] == key["CurrentKeyMaterialId"]
    assert len(out["Plaintext"]) == length
    dec = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext=ctx)
    assert dec["Plaintext"] == out["Plaintext"]
    assert aws_error(kms.decrypt, CiphertextBlob=out["CiphertextBlob"]).code == "InvalidCiphertextException"

    bare = kms.generate_data_key_without_plaintext(KeyId=key["Arn"], **kwargs)
    assert members(bare) == {"CiphertextBlob", "KeyId", "KeyMaterialId"}
    assert bare["KeyId"] == key["Arn"]
    assert len(kms.decrypt(CiphertextBlob=bare["CiphertextBlob"])["Plaintext"]) == length


def test_generate_data_key_spec_rules(kms: Any, unchecked: Any, key: dict[str, Any]) -> None:
    for op in (unchecked.generate_data_key, unchecked.generate_data_key_without_plaintext):
        assert aws_error(op, KeyId=key["KeyId"]).code == "ValidationException"
        both = aws_error(op, KeyId=key["KeyId"], KeySpec="AES_256", NumberOfBytes=32)
        assert both.code == "ValidationException"
        err = aws_error(op, KeyId=key["KeyId"], NumberOfBytes=0)
        assert (err.code, err.message) == (
            "ValidationException",
            "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: "
            "Member must have value greater than or equal to 1",
        )
        err = aws_error(op, KeyId=key["KeyId"], NumberOfBytes=1025)
        assert (err.code, err.message) == (
            "ValidationException",
            "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: "
            "Member must have value less than or equal to 1024",
        )
        err = aws_error(op, KeyId=key["KeyId"], KeySpec="AES_512")
        assert (err.code, err.message) == (
            "ValidationException",
            "1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy constraint: "
            "Member must satisfy enum value set: [AES_256, AES_128]",
        )


def test_generate_random(kms: Any, unchecked: Any) -> None:
    for n in (1, 32, 1024):
        out = kms.generate_random(NumberOfBytes=n)
        assert members(out) == {"Plaintext"}
        assert len(out["Plaintext"]) == n
    assert (
        kms.generate_random(NumberOfBytes=32)["Plaintext"]
        != kms.generate_random(NumberOfBytes=32)["Plaintext"]
    )
    err = aws_error(unchecked.generate_random)
    assert (err.code, err.message, err.status) == ("ValidationException", "NumberOfBytes is required.", 400)
    for n, bound in ((0, "greater than or equal to 1"), (1025, "less than or equal to 1024")):
        err = aws_error(unchecked.generate_random, NumberOfBytes=n)
        assert (err.code, err.message) == (
            "ValidationException",
            f"1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: "
            f"Member must have value {bound}",
        )


def test_dry_run(kms: Any, key: dict[str, Any]) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"dry")["CiphertextBlob"]
    calls = [
        (kms.encrypt, {"KeyId": key["KeyId"], "Plaintext": b"dry"}),
        (kms.decrypt, {"CiphertextBlob": blob}),
        (kms.generate_data_key, {"KeyId": key["KeyId"], "KeySpec": "AES_256"}),
        (kms.generate_data_key_without_plaintext, {"KeyId": key["KeyId"], "KeySpec": "AES_256"}),
        (kms.re_encrypt, {"CiphertextBlob": blob, "DestinationKeyId": key["KeyId"]}),
    ]
    for op, kwargs in calls:
        err = aws_error(op, DryRun=True, **kwargs)
        assert (err.code, err.message, err.status) == ("DryRunOperationException", DRY_RUN, 400), op
    # DryRun is checked last: a request that would fail reports its real error.
    err = aws_error(kms.decrypt, CiphertextBlob=blob[:-1], DryRun=True)
    assert err.code == "InvalidCiphertextException"
    kms.disable_key(KeyId=key["KeyId"])
    err = aws_error(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"dry", DryRun=True)
    assert (err.code, err.message) == ("DisabledException", f"{key['Arn']} is disabled.")


def test_rotate_on_demand_keeps_old_ciphertext(kms: Any, key: dict[str, Any]) -> None:
    old_material = key["CurrentKeyMaterialId"]
    old_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before rotation")["CiphertextBlob"]
    none_yet = kms.list_key_rotations(KeyId=key["KeyId"])
    assert members(none_yet) == {"Rotations", "Truncated"}
    assert (none_yet["Rotations"], none_yet["Truncated"]) == ([], False)
    before = time.time()
    resp = kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert members(resp) == {"KeyId"} and resp["KeyId"] == key["Arn"]

    new_material = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    assert new_material != old_material
    old = kms.decrypt(CiphertextBlob=old_blob)
    assert (old["Plaintext"], old["KeyMaterialId"]) == (b"before rotation", old_material)
    new_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"after rotation")["CiphertextBlob"]
    new = kms.decrypt(CiphertextBlob=new_blob)
    assert (new["Plaintext"], new["KeyMaterialId"]) == (b"after rotation", new_material)
    assert kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_128")["KeyMaterialId"] == new_material

    # On-demand rotation does not turn automatic rotation on.
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert members(status) == {"KeyId", "KeyRotationEnabled"}
    assert status["KeyRotationEnabled"] is False

    rotations = kms.list_key_rotations(KeyId=key["KeyId"])
    assert members(rotations) == {"Rotations", "Truncated"} and rotations["Truncated"] is False
    [entry] = rotations["Rotations"]
    assert set(entry) == {"KeyId", "KeyMaterialId", "KeyMaterialState", "RotationDate", "RotationType"}
    assert entry["KeyId"] in (key["KeyId"], key["Arn"])
    assert (entry["KeyMaterialId"], entry["KeyMaterialState"]) == (new_material, "CURRENT")
    assert entry["RotationType"] == "ON_DEMAND"
    assert abs(entry["RotationDate"].timestamp() - before) < 60
    assert kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ROTATIONS_ONLY")["Rotations"] == [
        entry
    ]

    everything = kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")
    assert everything["Truncated"] is False
    initial, rotated = everything["Rotations"]
    assert set(initial) == {"KeyId", "KeyMaterialId", "KeyMaterialState"}
    assert (initial["KeyMaterialId"], initial["KeyMaterialState"]) == (old_material, "NON_CURRENT")
    assert rotated == entry

    # Pagination over the materials.
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    first = kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL", Limit=2)
    assert len(first["Rotations"]) == 2 and first["Truncated"] is True
    rest = kms.list_key_rotations(
        KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL", Limit=2, Marker=first["NextMarker"]
    )
    assert len(rest["Rotations"]) == 1 and rest["Truncated"] is False and "NextMarker" not in rest
    ids = [r["KeyMaterialId"] for r in first["Rotations"] + rest["Rotations"]]
    assert len(set(ids)) == 3 and ids[0] == old_material
    # Both older materials still decrypt.
    assert kms.decrypt(CiphertextBlob=old_blob)["KeyMaterialId"] == old_material
    assert kms.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == new_material


def test_automatic_rotation_settings(kms: Any, unchecked: Any, key: dict[str, Any]) -> None:
    key_id = key["KeyId"]
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert members(status) == {"KeyId", "KeyRotationEnabled"}
    assert status["KeyRotationEnabled"] is False
    assert status["KeyId"] in (key_id, key["Arn"])

    before = time.time()
    assert members(kms.enable_key_rotation(KeyId=key_id)) == set()
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert members(status) == {"KeyId", "KeyRotationEnabled", "RotationPeriodInDays", "NextRotationDate"}
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 365)
    assert abs(status["NextRotationDate"].timestamp() - (before + 365 * DAY)) < 60

    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["RotationPeriodInDays"] == 90
    assert abs(status["NextRotationDate"].timestamp() - (before + 90 * DAY)) < 60
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=2560)
    assert kms.get_key_rotation_status(KeyId=key_id)["RotationPeriodInDays"] == 2560

    for days, bound in ((89, "greater than or equal to 90"), (2561, "less than or equal to 2560")):
        err = aws_error(unchecked.enable_key_rotation, KeyId=key_id, RotationPeriodInDays=days)
        assert (err.code, err.message, err.status) == (
            "ValidationException",
            f"1 validation error detected: Value '{days}' at 'rotationPeriodInDays' failed to satisfy "
            f"constraint: Member must have value {bound}",
            400,
        )
    assert kms.get_key_rotation_status(KeyId=key_id)["RotationPeriodInDays"] == 2560

    assert members(kms.disable_key_rotation(KeyId=key_id)) == set()
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert members(status) == {"KeyId", "KeyRotationEnabled"} and status["KeyRotationEnabled"] is False
