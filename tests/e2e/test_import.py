"""Bring your own key, driven from outside exactly as AWS's import guide tells users to do it: the AWS
CLI calls create-key / get-parameters-for-import / import-key-material, openssl (or the `cryptography`
library with only the wrapping public key) wraps the material. Every error of the import path is
provoked and checked (code and message)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Server
from tests.e2e.importing import import_material, openssl_wrap, params, wrap

ALGORITHMS = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"]
SPECS = ["RSA_2048", "RSA_3072", "RSA_4096"]


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return err["Code"], err.get("Message", "")


def external_key(kms: Any, **kw: Any) -> dict[str, Any]:
    md: dict[str, Any] = kms.create_key(Origin="EXTERNAL", **kw)["KeyMetadata"]
    return md


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_aws_guide_with_cli_and_openssl(server: Server, tmp_path: Path, algorithm: str) -> None:
    created = json.loads(server.aws("kms", "create-key", "--origin", "EXTERNAL").stdout)["KeyMetadata"]
    assert created["KeyState"] == "PendingImport"
    assert created["Origin"] == "EXTERNAL"
    assert created["Enabled"] is False
    for absent in ("ExpirationModel", "ValidTo", "CurrentKeyMaterialId"):
        assert absent not in created
    key_id = created["KeyId"]
    out = json.loads(
        server.aws(
            "kms", "get-parameters-for-import", "--key-id", key_id,
            "--wrapping-algorithm", algorithm, "--wrapping-key-spec", "RSA_2048",
        ).stdout
    )  # fmt: skip
    assert out["KeyId"] == created["Arn"]
    assert set(out) == {"KeyId", "ImportToken", "PublicKey", "ParametersValidTo"}
    token = tmp_path / "ImportToken.bin"
    token.write_bytes(base64.b64decode(out["ImportToken"]))
    public_der = base64.b64decode(out["PublicKey"])
    material = tmp_path / "PlaintextKeyMaterial.bin"
    material.write_bytes(os.urandom(32))
    wrapped = openssl_wrap(tmp_path, algorithm, public_der, material)
    imported = json.loads(
        server.aws(
            "kms", "import-key-material", "--key-id", key_id,
            "--encrypted-key-material", f"fileb://{wrapped}", "--import-token", f"fileb://{token}",
            "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE",
        ).stdout
    )  # fmt: skip
    assert imported["KeyId"] == created["Arn"]
    assert len(imported["KeyMaterialId"]) == 64
    described = json.loads(server.aws("kms", "describe-key", "--key-id", key_id).stdout)["KeyMetadata"]
    assert described["KeyState"] == "Enabled"
    assert described["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert described["CurrentKeyMaterialId"] == imported["KeyMaterialId"]
    plaintext = tmp_path / "pt"
    plaintext.write_bytes(b"imported key works")
    blob = json.loads(
        server.aws("kms", "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{plaintext}").stdout
    )["CiphertextBlob"]
    ct = tmp_path / "ct"
    ct.write_bytes(base64.b64decode(blob))
    dec = json.loads(server.aws("kms", "decrypt", "--ciphertext-blob", f"fileb://{ct}").stdout)
    assert base64.b64decode(dec["Plaintext"]) == b"imported key works"
    assert dec["KeyMaterialId"] == imported["KeyMaterialId"]


def test_openssl_accepts_wrapping_public_key(kms: Any, tmp_path: Path) -> None:
    import subprocess

    key = external_key(kms)
    p = params(kms, key["KeyId"], "RSAES_OAEP_SHA_256", "RSA_3072")
    der = tmp_path / "pub.der"
    der.write_bytes(p["PublicKey"])
    text = subprocess.run(
        ["openssl", "pkey", "-pubin", "-inform", "DER", "-in", str(der), "-noout", "-text"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "3072 bit" in text
    valid_for = p["ParametersValidTo"].timestamp() - time.time()
    assert 24 * 3600 - 120 < valid_for <= 24 * 3600 + 5


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_wrapping_combination_round_trips(server: Server, kms: Any, spec: str, algorithm: str) -> None:
    key = external_key(kms)
    p = params(kms, key["KeyId"], algorithm, spec)
    public = serialization.load_der_public_key(p["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == int(spec.split("_")[1])
    material = os.urandom(32)
    kms.import_key_material(
        KeyId=key["KeyId"],
        ImportToken=p["ImportToken"],
        EncryptedKeyMaterial=wrap(algorithm, p["PublicKey"], material),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_fresh_wrapping_pair_per_call(kms: Any) -> None:
    key = external_key(kms)
    first = params(kms, key["KeyId"])
    second = params(kms, key["KeyId"])
    assert first["PublicKey"] != second["PublicKey"]
    assert first["ImportToken"] != second["ImportToken"]
    # The public key of one response does not fit the token of another.
    with pytest.raises(ClientError) as exc:
        kms.import_key_material(
            KeyId=key["KeyId"],
            ImportToken=second["ImportToken"],
            EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", first["PublicKey"], os.urandom(32)),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    assert error(exc)[0] == "InvalidCiphertextException"


@pytest.mark.parametrize(
    ("algorithm", "spec", "code"),
    [
        ("RSAES_PKCS1_V1_5", "RSA_2048", "ValidationException"),
        ("SM2PKE", "RSA_2048", "ValidationException"),
        ("RSAES_OAEP_SHA_256", "SM2", "ValidationException"),
    ],
)
def test_refused_wrapping_choices(kms: Any, algorithm: str, spec: str, code: str) -> None:
    key = external_key(kms)
    with pytest.raises(ClientError) as exc:
        params(kms, key["KeyId"], algorithm, spec)
    assert error(exc)[0] == code


def test_unknown_wrapping_algorithm_is_a_validation_error(kms: Any) -> None:
    key = external_key(kms)
    with pytest.raises(ClientError) as exc:
        kms.get_parameters_for_import(
            KeyId=key["KeyId"], WrappingAlgorithm="RSA_OAEP", WrappingKeySpec="RSA_2048"
        )
    code, message = error(exc)
    assert code == "ValidationException"
    assert message.startswith(
        "1 validation error detected: Value 'RSA_OAEP' at 'wrappingAlgorithm' failed to satisfy"
    )


def test_import_operations_on_an_aws_kms_key(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]
    expected = (
        "UnsupportedOperationException",
        f"{key['Arn']} origin is AWS_KMS which is not valid for this operation.",
    )
    with pytest.raises(ClientError) as exc:
        params(kms, key["KeyId"])
    assert error(exc) == expected
    with pytest.raises(ClientError) as exc:
        kms.import_key_material(
            KeyId=key["KeyId"],
            ImportToken=b"x" * 64,
            EncryptedKeyMaterial=b"y" * 256,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    assert error(exc) == expected
    with pytest.raises(ClientError) as exc:
        kms.delete_imported_key_material(KeyId=key["KeyId"])
    assert error(exc) == expected


def test_alias_is_not_accepted_for_import(kms: Any) -> None:
    key = external_key(kms)
    name = f"alias/imp-{key['KeyId'][:8]}"
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    with pytest.raises(ClientError) as exc:
        params(kms, name)
    assert error(exc) == ("NotFoundException", f"Invalid keyId '{name}'")


def test_pending_deletion_key_refuses_import(kms: Any) -> None:
    key = external_key(kms)
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    with pytest.raises(ClientError) as exc:
        params(kms, key["KeyId"])
    assert error(exc) == ("KMSInvalidStateException", f"{key['Arn']} is pending deletion.")


def _import_call(kms: Any, key_id: str, token: bytes, wrapped: bytes, **extra: Any) -> Any:
    extra.setdefault("ExpirationModel", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    return kms.import_key_material(KeyId=key_id, ImportToken=token, EncryptedKeyMaterial=wrapped, **extra)


def test_import_errors(kms: Any) -> None:
    key = external_key(kms)
    other = external_key(kms)
    material = os.urandom(32)
    p = params(kms, key["KeyId"])
    good = wrap("RSAES_OAEP_SHA_256", p["PublicKey"], material)

    # Garbage token.
    with pytest.raises(ClientError) as exc:
        _import_call(kms, key["KeyId"], os.urandom(200), good)
    assert error(exc)[0] == "InvalidImportTokenException"
    # An edited token (one bit flipped).
    edited = bytearray(p["ImportToken"])
    edited[40] ^= 1
    with pytest.raises(ClientError) as exc:
        _import_call(kms, key["KeyId"], bytes(edited), good)
    assert error(exc)[0] == "InvalidImportTokenException"
    # A token issued for another key, even with material wrapped with that key's public key.
    po = params(kms, other["KeyId"])
    with pytest.raises(ClientError) as exc:
        _import_call(
            kms, key["KeyId"], po["ImportToken"], wrap("RSAES_OAEP_SHA_256", po["PublicKey"], material)
        )
    assert error(exc) == (
        "InvalidImportTokenException",
        "The import token is invalid or associated with a different KMS key.",
    )
    # Another algorithm than the one requested (OAEP SHA-1 for RSAES_OAEP_SHA_256).
    with pytest.raises(ClientError) as exc:
        _import_call(kms, key["KeyId"], p["ImportToken"], wrap("RSAES_OAEP_SHA_1", p["PublicKey"], material))
    assert error(exc)[0] == "InvalidCiphertextException"
    # Corrupted wrapped material.
    corrupt = bytearray(good)
    corrupt[17] ^= 0x80
    with pytest.raises(ClientError) as exc:
        _import_call(kms, key["KeyId"], p["ImportToken"], bytes(corrupt))
    assert error(exc)[0] == "InvalidCiphertextException"
    # Material of the wrong size.
    with pytest.raises(ClientError) as exc:
        _import_call(
            kms, key["KeyId"], p["ImportToken"], wrap("RSAES_OAEP_SHA_256", p["PublicKey"], os.urandom(16))
        )
    assert error(exc)[0] == "IncorrectKeyMaterialException"
    # Nothing changed through all of that.
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    # The right material works, once: the token's wrapping key is destroyed after use.
    _import_call(kms, key["KeyId"], p["ImportToken"], good)
    with pytest.raises(ClientError) as exc:
        _import_call(kms, key["KeyId"], p["ImportToken"], good)
    assert error(exc)[0] == "InvalidImportTokenException"
    # Reimport of different material.
    with pytest.raises(ClientError) as exc:
        import_material(kms, key["KeyId"], os.urandom(32))
    assert error(exc)[0] == "IncorrectKeyMaterialException"
    # A KeyMaterialId that is not the material's.
    with pytest.raises(ClientError) as exc:
        import_material(kms, key["KeyId"], material, KeyMaterialId="a" * 64)
    assert error(exc)[0] == "IncorrectKeyMaterialException"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"ExpirationModel": "KEY_MATERIAL_EXPIRES"},
            "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
        ),
        ({}, "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES"),
        ({"ValidTo": time.time() - 60}, "The validTo date must be in the future."),
        (
            {"ValidTo": time.time() + 366 * 86400},
            "The validTo date must be no more than 365 days in the future.",
        ),
        (
            {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ValidTo": time.time() + 3600},
            "A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE",
        ),
        (
            {
                "ImportType": "NEW_KEY_MATERIAL",
                "KeyMaterialId": "a" * 64,
                "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE",
            },
            "KeyMaterialId cannot be specified when ImportType is NEW_KEY_MATERIAL.",
        ),
    ],
)
def test_expiry_parameter_rules(kms: Any, extra: dict[str, Any], message: str) -> None:
    key = external_key(kms)
    p = params(kms, key["KeyId"])
    with pytest.raises(ClientError) as exc:
        kms.import_key_material(
            KeyId=key["KeyId"],
            ImportToken=p["ImportToken"],
            EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", p["PublicKey"], os.urandom(32)),
            **extra,
        )
    assert error(exc) == ("ValidationException", message)


def test_reimport_changes_expiry_and_delete_then_reimport_restores(kms: Any) -> None:
    key = external_key(kms)
    material = os.urandom(32)
    valid_to = int(time.time()) + 10 * 86400
    first = import_material(
        kms, key["KeyId"], material, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to
    )
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert md["ValidTo"].timestamp() == valid_to
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before deletion", EncryptionContext={"k": "v"})[
        "CiphertextBlob"
    ]

    # Reimport of the same material at any time, with another expiry model; same KeyMaterialId.
    again = import_material(kms, key["KeyId"], material, "RSA_AES_KEY_WRAP_SHA_1", "RSA_3072")
    assert again["KeyMaterialId"] == first["KeyMaterialId"]
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in md

    deleted = kms.delete_imported_key_material(KeyId=key["KeyId"])
    assert deleted["KeyId"] == key["Arn"]
    assert deleted["KeyMaterialId"] == first["KeyMaterialId"]
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "PendingImport"
    assert md["Enabled"] is False
    assert "ExpirationModel" not in md
    assert md["CurrentKeyMaterialId"] == first["KeyMaterialId"]
    pending = ("KMSInvalidStateException", f"{key['Arn']} is pending import.")
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"k": "v"})
    assert error(exc) == pending
    with pytest.raises(ClientError) as exc:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    assert error(exc) == pending

    import_material(kms, key["KeyId"], material, "RSAES_OAEP_SHA_1", "RSA_4096")
    out = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"k": "v"})
    assert out["Plaintext"] == b"before deletion"
    assert out["KeyMaterialId"] == first["KeyMaterialId"]


def test_new_key_material_and_on_demand_rotation(kms: Any) -> None:
    key = external_key(kms)
    first_material, second_material = os.urandom(32), os.urandom(32)
    first = import_material(kms, key["KeyId"], first_material, KeyMaterialDescription="first")
    old_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"old")["CiphertextBlob"]

    with pytest.raises(ClientError) as exc:
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert error(exc) == (
        "KMSInvalidStateException",
        f"No available key material pending rotation for the key: {key['Arn']}.",
    )
    with pytest.raises(ClientError) as exc:
        kms.enable_key_rotation(KeyId=key["KeyId"])
    assert error(exc) == (
        "UnsupportedOperationException",
        f"{key['Arn']} origin is EXTERNAL which is not valid for this operation.",
    )
    # Already associated material cannot come in as NEW.
    with pytest.raises(ClientError) as exc:
        import_material(kms, key["KeyId"], first_material, ImportType="NEW_KEY_MATERIAL")
    assert error(exc)[0] == "IncorrectKeyMaterialException"

    second = import_material(
        kms, key["KeyId"], second_material, ImportType="NEW_KEY_MATERIAL", KeyMaterialDescription="second"
    )
    with pytest.raises(ClientError) as exc:
        import_material(kms, key["KeyId"], os.urandom(32), ImportType="NEW_KEY_MATERIAL")
    code, message = error(exc)
    assert code == "KMSInvalidStateException"
    assert message.endswith(f"another key material (id: {second['KeyMaterialId']}) is pending rotation.")
    assert f"cannot be imported into KMS key {key['Arn']}" in message

    every = kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    states = {r["KeyMaterialId"]: r["KeyMaterialState"] for r in every}
    assert states == {first["KeyMaterialId"]: "CURRENT", second["KeyMaterialId"]: "PENDING_ROTATION"}
    assert kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"] == []

    assert kms.rotate_key_on_demand(KeyId=key["KeyId"])["KeyId"] == key["Arn"]
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["CurrentKeyMaterialId"] == second["KeyMaterialId"]
    new_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"new")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=old_blob)["KeyMaterialId"] == first["KeyMaterialId"]
    assert kms.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == second["KeyMaterialId"]

    rotations = kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]
    assert len(rotations) == 1
    entry = rotations[0]
    assert entry["KeyMaterialId"] == second["KeyMaterialId"]
    assert entry["KeyMaterialState"] == "CURRENT"
    assert entry["RotationType"] == "ON_DEMAND"
    assert entry["ImportState"] == "IMPORTED"
    assert entry["KeyMaterialDescription"] == "second"
    every = kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert {r["KeyMaterialId"]: r["KeyMaterialState"] for r in every} == {
        first["KeyMaterialId"]: "NON_CURRENT",
        second["KeyMaterialId"]: "CURRENT",
    }

    # Deleting a non-current (still permanently associated) material makes the key PendingImport.
    kms.delete_imported_key_material(KeyId=key["KeyId"], KeyMaterialId=first["KeyMaterialId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    import_material(kms, key["KeyId"], first_material, KeyMaterialId=first["KeyMaterialId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"old"


def _audit(server: Server, *args: str) -> list[dict[str, Any]]:
    import subprocess

    from tests.conftest import OPENKMS

    deadline = time.time() + 5
    while True:
        out = subprocess.run(
            [OPENKMS, "audit", "list", *server.data_args(), "--json", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        records: list[dict[str, Any]] = json.loads(out)
        if records or time.time() > deadline:
            return records
        time.sleep(0.1)


def test_audit_records_of_the_import_path(server: Server, kms: Any) -> None:
    key = external_key(kms)
    material = os.urandom(32)
    p = params(kms, key["KeyId"])
    wrapped = wrap("RSAES_OAEP_SHA_256", p["PublicKey"], material)
    kms.import_key_material(
        KeyId=key["KeyId"], ImportToken=p["ImportToken"], EncryptedKeyMaterial=wrapped,
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )  # fmt: skip
    deleted = kms.delete_imported_key_material(KeyId=key["KeyId"])
    gp = _audit(server, "--key-id", key["KeyId"], "--event-name", "GetParametersForImport")
    assert len(gp) == 1
    assert gp[0]["responseElements"] is None
    assert gp[0]["readOnly"] is True
    assert gp[0]["requestParameters"] == {
        "keyId": key["KeyId"],
        "wrappingAlgorithm": "RSAES_OAEP_SHA_256",
        "wrappingKeySpec": "RSA_2048",
    }
    ik = _audit(server, "--key-id", key["KeyId"], "--event-name", "ImportKeyMaterial")
    assert len(ik) == 1
    assert ik[0]["requestParameters"] == {
        "keyId": key["KeyId"],
        "expirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE",
    }
    assert ik[0]["responseElements"] == {"keyId": key["Arn"], "keyMaterialId": deleted["KeyMaterialId"]}
    assert ik[0]["readOnly"] is False
    dk = _audit(server, "--key-id", key["KeyId"], "--event-name", "DeleteImportedKeyMaterial")
    assert dk[0]["responseElements"] == {"keyId": key["Arn"], "keyMaterialId": deleted["KeyMaterialId"]}
    everything = json.dumps(_audit(server, "--key-id", key["KeyId"]))
    for secret in (p["ImportToken"], p["PublicKey"], wrapped, material):
        assert base64.b64encode(secret).decode() not in everything


def test_openkms_import_commands(server: Server, kms: Any, tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import OPENKMS

    env = server.cli_env()
    key = external_key(kms)
    material = tmp_path / "material.bin"
    material.write_bytes(os.urandom(32))
    subprocess.run(
        [OPENKMS, "import-key-material", "--key-id", key["KeyId"], "--material-file", str(material)],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"cli")["CiphertextBlob"]
    kms.delete_imported_key_material(KeyId=key["KeyId"])

    # The air-gapped way: download in the console's layout, wrap offline, import from the directory.
    out = tmp_path / "params"
    subprocess.run(
        [OPENKMS, "get-parameters-for-import", "--key-id", key["KeyId"], "--out-dir", str(out)],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    assert {p.name for p in out.iterdir()} == {"WrappingPublicKey.bin", "ImportToken.bin", "README.txt"}
    subprocess.run(
        [OPENKMS, "wrap-key-material", "--parameters-dir", str(out), "--material-file", str(material)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [OPENKMS, "import-key-material", "--key-id", key["KeyId"], "--parameters-dir", str(out)],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"cli"
