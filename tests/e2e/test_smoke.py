"""The first thing a user does: create a key, encrypt and decrypt with boto3 and the AWS CLI."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.conftest import Server


def test_boto3_round_trip(kms: object, server: Server) -> None:
    key = kms.create_key(Description="smoke")["KeyMetadata"]  # type: ignore[attr-defined]
    assert key["KeyState"] == "Enabled"
    assert key["Arn"] == f"arn:aws:kms:us-east-1:{server.account_id}:key/{key['KeyId']}"
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"hello")["CiphertextBlob"]  # type: ignore[attr-defined]
    out = kms.decrypt(CiphertextBlob=blob)  # type: ignore[attr-defined]
    assert out["Plaintext"] == b"hello"
    assert out["KeyId"] == key["Arn"]


def test_aws_cli_round_trip(server: Server, tmp_path: Path) -> None:
    key = json.loads(server.aws("kms", "create-key").stdout)["KeyMetadata"]
    (tmp_path / "pt").write_bytes(b"secret data")
    enc = json.loads(
        server.aws(
            "kms", "encrypt", "--key-id", key["KeyId"], "--plaintext", f"fileb://{tmp_path / 'pt'}"
        ).stdout
    )
    (tmp_path / "ct").write_bytes(base64.b64decode(enc["CiphertextBlob"]))
    dec = json.loads(server.aws("kms", "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'ct'}").stdout)
    assert base64.b64decode(dec["Plaintext"]) == b"secret data"
