"""Imported material over time: expiry on ValidTo (a service event in the audit trail), expired import
tokens, restarts between import and use, and what storage holds (no plaintext material, no plaintext
wrapping private key, deleted material really gone)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import OPENKMS, Server
from tests.e2e.importing import import_material, params, wrap
from tests.e2e.storage_scan import PKCS8_RSA_PREFIX, sealed_material_rows, stored_bytes

DAY = 86400


@pytest.fixture
def clock_file(tmp_path: Path) -> Path:
    path = tmp_path / "clock-offset"
    path.write_text("0")
    return path


@pytest.fixture
def timed_server(own_server: Server, clock_file: Path) -> Server:
    """A server whose lifecycle clock the test can move forward."""
    own_server.env["OPENKMS_CLOCK_OFFSET_FILE"] = str(clock_file)
    own_server.restart()
    return own_server


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


def audit(server: Server, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [OPENKMS, "audit", "list", *server.data_args(), "--json", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    records: list[dict[str, Any]] = json.loads(out)
    return records


def test_material_expires_and_reimport_restores(timed_server: Server, clock_file: Path) -> None:
    kms = timed_server.client()
    key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    material = os.urandom(32)
    imported = import_material(
        kms, key["KeyId"], material, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=int(time.time()) + DAY
    )
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"made before expiry")["CiphertextBlob"]

    timed_server.restart()  # between import and use
    kms = timed_server.client()
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made before expiry"

    clock_file.write_text(str(2 * DAY))
    wait_for(lambda: kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport")
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert "ExpirationModel" not in md and "ValidTo" not in md
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=blob)
    assert exc.value.response["Error"]["Message"] == f"{key['Arn']} is pending import."

    events = audit(timed_server, "--key-id", key["KeyId"], "--event-name", "DeleteExpiredKeyMaterial")
    assert len(events) == 1
    event = events[0]
    assert event["eventType"] == "AwsServiceEvent"
    assert event["userIdentity"] == {"accountId": timed_server.account_id, "invokedBy": "AWS Internal"}
    assert event["sourceIPAddress"] == "AWS Internal"
    assert event["serviceEventDetails"] == {"keyId": key["Arn"], "keyMaterialId": imported["KeyMaterialId"]}
    assert event["resources"][0]["ARN"] == key["Arn"]
    assert "requestID" not in event

    # The material is gone from storage, and the same bytes bring the key back.
    assert sealed_material_rows(timed_server) == []
    import_material(kms, key["KeyId"], material)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made before expiry"


def test_expired_import_token(timed_server: Server, clock_file: Path) -> None:
    kms = timed_server.client()
    key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    p = params(kms, key["KeyId"])
    clock_file.write_text(str(DAY + 600))
    time.sleep(0.5)
    with pytest.raises(ClientError) as exc:
        kms.import_key_material(
            KeyId=key["KeyId"],
            ImportToken=p["ImportToken"],
            EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", p["PublicKey"], os.urandom(32)),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    assert exc.value.response["Error"]["Code"] == "ExpiredImportTokenException"


def test_storage_holds_no_plaintext_material_or_wrapping_key(own_server: Server) -> None:
    kms = own_server.client()
    key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    material = os.urandom(32)
    import_material(kms, key["KeyId"], material)
    # Leave an unused import token behind: its wrapping private key is stored (sealed) until expiry.
    params(kms, key["KeyId"], "RSA_AES_KEY_WRAP_SHA_256", "RSA_3072")
    data_key = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")["Plaintext"]
    own_server.restart()
    stored = stored_bytes(own_server)
    assert material not in stored
    assert data_key not in stored
    assert PKCS8_RSA_PREFIX not in stored
    assert own_server.secret_key.encode() not in stored

    sealed_before = sealed_material_rows(own_server)
    assert len(sealed_before) == 1
    own_server.client().delete_imported_key_material(KeyId=key["KeyId"])
    own_server.stop()  # a clean stop checkpoints SQLite's log; PostgreSQL rows are read back
    stored = stored_bytes(own_server)
    assert sealed_before[0] not in stored
