"""Unit tests of the wire layer: request decoding/validation, response encoding and audit views."""

from __future__ import annotations

import base64
import enum
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import botocore.parsers
import orjson
import pytest

from openkms.errors import SerializationException, UnknownOperationException, ValidationException
from openkms.wire import kms_model, operation_names
from openkms.wire.audit import human_time
from openkms.wire.codec import (
    DecodedRequest,
    audit_request_parameters,
    audit_response_elements,
    bench_encrypt,
    decode_request,
    encode_response,
    to_snake,
)
from openkms.wire.validate import MAX_DEPTH, MAX_ELEMENTS, operation_converter

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ONE = "1 validation error detected: "


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def body(document: Any) -> bytes:
    return orjson.dumps(document)


def enum_text(*values: str) -> str:
    return "satisfy enum value set: [" + ", ".join(values) + "]"


# --- model -------------------------------------------------------------------------------------------


def test_model_has_the_54_operations() -> None:
    names = operation_names()
    assert len(names) == 54
    assert {"Encrypt", "GetKeyLastUsage", "ImportKeyMaterial", "VerifyMac"} <= names
    assert kms_model().metadata["targetPrefix"] == "TrentService"
    assert kms_model() is kms_model()


def _same_shape(ours: Any, theirs: Any, seen: set[str]) -> None:
    """``ours`` (openkms.wire.shapes) reads as botocore's ``theirs``, members and elements included."""
    assert (ours.name, ours.type_name, type(ours).__name__) == (
        theirs.name,
        theirs.type_name,
        type(theirs).__name__,
    )
    assert ours.metadata == theirs.metadata
    assert ours.required_members == theirs.required_members
    assert ours.documentation == theirs.documentation
    key = f"{ours.name}:{sorted(ours.metadata.items(), key=str)}"
    if key in seen:  # a recursive shape, or one already compared with these traits
        return
    seen.add(key)
    if theirs.type_name == "string":
        assert ours.enum == theirs.enum
    elif theirs.type_name == "structure":
        assert list(ours.members) == list(theirs.members)
        for name, member in theirs.members.items():
            _same_shape(ours.members[name], member, seen)
    elif theirs.type_name == "list":
        _same_shape(ours.member, theirs.member, seen)
    elif theirs.type_name == "map":
        _same_shape(ours.key, theirs.key, seen)
        _same_shape(ours.value, theirs.value, seen)


@pytest.mark.parametrize("service", ["kms", "cloudtrail"])
def test_shapes_read_without_botocore_are_botocores(service: str) -> None:
    import botocore.loaders
    import botocore.model

    from openkms.wire import shapes

    ours = shapes.load(service)
    description = botocore.loaders.create_loader().load_service_model(service, "service-2")
    theirs = botocore.model.ServiceModel(description, service_name=service)
    assert ours.operation_names == theirs.operation_names
    assert ours.metadata == theirs.metadata
    seen: set[str] = set()
    for name in theirs.operation_names:
        op = theirs.operation_model(name)
        for mine, botos in (
            (ours.operation(name).input_shape, op.input_shape),
            (ours.operation(name).output_shape, op.output_shape),
        ):
            assert (mine is None) == (botos is None)
            if botos is not None:
                _same_shape(mine, botos, seen)
    assert shapes._builtin_description(service) == description  # read directly, not through the fallback


def test_shapes_fall_back_to_botocores_loader(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """With a ~/.aws/models directory (which botocore's loader searches first) the model comes from
    botocore's loader."""
    from openkms.wire import shapes

    (tmp_path / ".aws" / "models").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert shapes._builtin_description("kms") is None
    assert shapes.load("kms").metadata["targetPrefix"] == "TrentService"


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("KeyId", "key_id"),
        ("AWSAccountId", "aws_account_id"),
        ("XksKeyId", "xks_key_id"),
        ("GrantTokens", "grant_tokens"),
        ("EncryptionContextEquals", "encryption_context_equals"),
        ("CloudHsmClusterId", "cloud_hsm_cluster_id"),
        ("KmsRequestId", "kms_request_id"),
        ("message", "message"),
    ],
)
def test_to_snake(name: str, snake: str) -> None:
    assert to_snake(name) == snake


# --- decode: successful conversions ----------------------------------------------------------------------


def test_decode_encrypt_types_and_names() -> None:
    document = {
        "KeyId": KEY_ARN,
        "Plaintext": b64(b"\x00secret\xff"),
        "EncryptionContext": {"Department": "IT", "lowerCase": "v"},
        "GrantTokens": ["token"],
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DryRun": False,
        "Unknown": {"Nested": [1, 2]},
    }
    decoded = decode_request("Encrypt", body(document))
    assert isinstance(decoded, DecodedRequest)
    assert decoded.operation == "Encrypt"
    assert decoded.raw == document
    assert decoded.params == {
        "key_id": KEY_ARN,
        "plaintext": b"\x00secret\xff",
        "encryption_context": {"Department": "IT", "lowerCase": "v"},
        "grant_tokens": ["token"],
        "encryption_algorithm": "SYMMETRIC_DEFAULT",
        "dry_run": False,
    }


def test_decode_nested_structures_lists_and_maps() -> None:
    grant = decode_request(
        "CreateGrant",
        body(
            {
                "KeyId": "k",
                "GranteePrincipal": "arn:aws:iam::111122223333:role/x",
                "Operations": ["Encrypt", "Decrypt"],
                "Constraints": {"EncryptionContextEquals": {"Key": "Value"}},
            }
        ),
    )
    assert grant.params["operations"] == ["Encrypt", "Decrypt"]
    assert grant.params["constraints"] == {"encryption_context_equals": {"Key": "Value"}}
    key = decode_request(
        "CreateKey", body({"Tags": [{"TagKey": "Name", "TagValue": "v"}], "MultiRegion": True})
    )
    assert key.params == {"tags": [{"tag_key": "Name", "tag_value": "v"}], "multi_region": True}


@pytest.mark.parametrize(
    ("valid_to", "epoch"),
    [
        (1747806465, 1747806465.0),
        (1747806465.5, 1747806465.5),
        ("2025-05-21T05:47:45Z", 1747806465.0),
        ("2025-05-21T07:47:45+02:00", 1747806465.0),
        ("2025-05-21T05:47:45", 1747806465.0),
        ("1747806465.25", 1747806465.25),
    ],
)
def test_decode_timestamps(valid_to: Any, epoch: float) -> None:
    decoded = decode_request(
        "ImportKeyMaterial",
        body(
            {"KeyId": "k", "ImportToken": b64(b"t"), "EncryptedKeyMaterial": b64(b"m"), "ValidTo": valid_to}
        ),
    )
    assert decoded.params["valid_to"] == epoch
    assert type(decoded.params["valid_to"]) is float


def test_decode_nulls_integral_floats_and_scalar_strings() -> None:
    assert decode_request("ListKeys", body({"Limit": 5.0, "Marker": None})).params == {"limit": 5}
    context = decode_request(
        "Encrypt", body({"KeyId": 7, "Plaintext": b64(b"x"), "EncryptionContext": {"n": 1, "b": True}})
    )
    assert context.params["key_id"] == "7"
    assert context.params["encryption_context"] == {"n": "1", "b": "true"}


@pytest.mark.parametrize("empty", [b"", b"  \n", b"{}"])
def test_empty_body_for_operation_without_required_members(empty: bytes) -> None:
    decoded = decode_request("ListKeys", empty)
    assert decoded.params == {}
    assert decoded.raw == {}


def test_every_operation_builds_its_validator() -> None:
    for operation in sorted(operation_names()):
        try:
            decode_request(operation, b"{}")
        except ValidationException as error:
            assert error.message.endswith("Member must not be null"), (operation, error.message)
        assert operation_converter(operation) is operation_converter(operation)
        assert encode_response(operation, {}) == b""
        assert audit_request_parameters(operation, {}) is None
        assert audit_response_elements(operation, {}) is None


def test_unknown_operation() -> None:
    with pytest.raises(UnknownOperationException):
        decode_request("NoSuchOperation", b"{}")


# --- decode: validation messages -----------------------------------------------------------------------

CREATE_KEY_SPECS = enum_text(
    "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1",
    "SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "SM2", "ML_DSA_44", "ML_DSA_65",
    "ML_DSA_87", "ECC_NIST_EDWARDS25519",
)  # fmt: skip
KEY_USAGES = enum_text("SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT")
ORIGINS = enum_text("AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE")
C = "failed to satisfy constraint: Member must"

VALIDATION_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "encrypt-missing-key-id",
        "Encrypt",
        {"Plaintext": b64(b"x")},
        f"{ONE}Value null at 'keyId' {C} not be null",
    ),
    (
        "sign-missing-algorithm",
        "Sign",
        {"KeyId": "k", "Message": b64(b"m")},
        f"{ONE}Value null at 'signingAlgorithm' {C} not be null",
    ),
    (
        "plaintext-empty",
        "Encrypt",
        {"KeyId": "k", "Plaintext": ""},
        f"{ONE}Value at 'plaintext' {C} have length greater than or equal to 1",
    ),
    (
        "plaintext-4097",
        "Encrypt",
        {"KeyId": "k", "Plaintext": b64(b"p" * 4097)},
        f"{ONE}Value at 'plaintext' {C} have length less than or equal to 4096",
    ),
    (
        "message-4097",
        "GenerateMac",
        {"KeyId": "k", "Message": b64(b"p" * 4097), "MacAlgorithm": "HMAC_SHA_256"},
        f"{ONE}Value at 'message' {C} have length less than or equal to 4096",
    ),
    (
        "key-id-2049",
        "DescribeKey",
        {"KeyId": "k" * 2049},
        f"{ONE}Value '{'k' * 2049}' at 'keyId' {C} have length less than or equal to 2048",
    ),
    (
        "random-0",
        "GenerateRandom",
        {"NumberOfBytes": 0},
        f"{ONE}Value '0' at 'numberOfBytes' {C} have value greater than or equal to 1",
    ),
    (
        "random-1025",
        "GenerateRandom",
        {"NumberOfBytes": 1025},
        f"{ONE}Value '1025' at 'numberOfBytes' {C} have value less than or equal to 1024",
    ),
    (
        "limit-0",
        "ListKeys",
        {"Limit": 0},
        f"{ONE}Value '0' at 'limit' {C} have value greater than or equal to 1",
    ),
    (
        "limit-1001",
        "ListKeys",
        {"Limit": 1001},
        f"{ONE}Value '1001' at 'limit' {C} have value less than or equal to 1000",
    ),
    (
        "rotation-89",
        "EnableKeyRotation",
        {"KeyId": "k", "RotationPeriodInDays": 89},
        f"{ONE}Value '89' at 'rotationPeriodInDays' {C} have value greater than or equal to 90",
    ),
    (
        "rotation-2561",
        "EnableKeyRotation",
        {"KeyId": "k", "RotationPeriodInDays": 2561},
        f"{ONE}Value '2561' at 'rotationPeriodInDays' {C} have value less than or equal to 2560",
    ),
    (
        "key-spec",
        "CreateKey",
        {"KeySpec": "AES_256"},
        f"{ONE}Value 'AES_256' at 'keySpec' {C} {CREATE_KEY_SPECS}",
    ),
    ("key-usage", "CreateKey", {"KeyUsage": "RANDOM"}, f"{ONE}Value 'RANDOM' at 'keyUsage' {C} {KEY_USAGES}"),
    ("origin", "CreateKey", {"Origin": "AWS"}, f"{ONE}Value 'AWS' at 'origin' {C} {ORIGINS}"),
    (
        "data-key-spec",
        "GenerateDataKey",
        {"KeyId": "k", "KeySpec": "AES_512"},
        f"{ONE}Value 'AES_512' at 'keySpec' {C} {enum_text('AES_256', 'AES_128')}",
    ),
    (
        "alias-pattern",
        "CreateAlias",
        {"AliasName": "alias/bad name!", "TargetKeyId": "k"},
        f"{ONE}Value 'alias/bad name!' at 'aliasName' {C} satisfy regular expression pattern: "
        "^[a-zA-Z0-9:/_-]+$",
    ),
    (
        "tag-key-129",
        "TagResource",
        {"KeyId": "k", "Tags": [{"TagKey": "ok", "TagValue": ""}, {"TagKey": "t" * 129, "TagValue": "v"}]},
        f"{ONE}Value '{'t' * 129}' at 'tags.2.member.tagKey' {C} have length less than or equal to 128",
    ),
    (
        "tag-key-first",
        "CreateKey",
        {"Tags": [{"TagKey": "t" * 129, "TagValue": "v"}]},
        f"{ONE}Value '{'t' * 129}' at 'tags.1.member.tagKey' {C} have length less than or equal to 128",
    ),
    (
        "tag-value-missing",
        "CreateKey",
        {"Tags": [{"TagKey": "Name"}]},
        f"{ONE}Value null at 'tags.1.member.tagValue' {C} not be null",
    ),
    (
        "grant-operation-in-list",
        "CreateGrant",
        {"KeyId": "k", "GranteePrincipal": "p", "Operations": ["Encrypt", "Explode"]},
        f"{ONE}Value 'Explode' at 'operations.2.member' {C} satisfy enum value set: [Decrypt, Encrypt, "
        "GenerateDataKey, GenerateDataKeyWithoutPlaintext, ReEncryptFrom, ReEncryptTo, Sign, Verify, "
        "GetPublicKey, CreateGrant, RetireGrant, DescribeKey, GenerateDataKeyPair, "
        "GenerateDataKeyPairWithoutPlaintext, GenerateMac, VerifyMac, DeriveSharedSecret]",
    ),
    (
        "grant-tokens-11",
        "Encrypt",
        {"KeyId": "k", "Plaintext": b64(b"x"), "GrantTokens": [f"g{i}" for i in range(11)]},
        f"{ONE}Value '[g0, g1, g2, g3, g4, g5, g6, g7, g8, g9, g10]' at 'grantTokens' {C} have length less "
        "than or equal to 10",
    ),
    (
        "sensitive-string",
        "CreateCustomKeyStore",
        {"CustomKeyStoreName": "store", "KeyStorePassword": "short"},
        f"{ONE}Value at 'keyStorePassword' {C} have length greater than or equal to 7",
    ),
    (
        "nested-sensitive-string",
        "UpdateCustomKeyStore",
        {
            "CustomKeyStoreId": "cks-1",
            "XksProxyAuthenticationCredential": {"AccessKeyId": "A" * 20, "RawSecretAccessKey": "s"},
        },
        f"{ONE}Value at 'xksProxyAuthenticationCredential.rawSecretAccessKey' {C} have length greater than "
        "or equal to 43",
    ),
    (
        "key-material-id",
        "ImportKeyMaterial",
        {
            "KeyId": "k",
            "ImportToken": b64(b"t"),
            "EncryptedKeyMaterial": b64(b"m"),
            "KeyMaterialId": "A" * 64,
        },
        f"{ONE}Value '{'A' * 64}' at 'keyMaterialId' {C} satisfy regular expression pattern: ^[a-f0-9]+$",
    ),
    (
        "two-errors",
        "Encrypt",
        {},
        f"2 validation errors detected: Value null at 'keyId' {C} not be null; "
        f"Value null at 'plaintext' {C} not be null",
    ),
    (
        "two-errors-mixed",
        "GenerateDataKey",
        {"KeyId": "", "NumberOfBytes": 0},
        f"2 validation errors detected: Value '' at 'keyId' {C} have length greater than or equal to 1; "
        f"Value '0' at 'numberOfBytes' {C} have value greater than or equal to 1",
    ),
    (
        "null-is-missing",
        "DescribeKey",
        {"KeyId": None},
        f"{ONE}Value null at 'keyId' {C} not be null",
    ),
]


@pytest.mark.parametrize(
    ("operation", "document", "message"),
    [case[1:] for case in VALIDATION_CASES],
    ids=[case[0] for case in VALIDATION_CASES],
)
def test_validation_messages(operation: str, document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationException) as caught:
        decode_request(operation, body(document))
    assert caught.value.message == message
    assert caught.value.code == "ValidationException"
    assert caught.value.status == 400


def test_blob_values_are_never_echoed() -> None:
    secret = b64(b"S" * 4097)
    with pytest.raises(ValidationException) as caught:
        decode_request("Encrypt", body({"KeyId": "k", "Plaintext": secret}))
    assert secret not in caught.value.message
    assert "SSSS" not in caught.value.message


def test_pattern_uses_full_match() -> None:
    with pytest.raises(ValidationException, match="keyMaterialDescription"):
        decode_request(
            "ImportKeyMaterial",
            body(
                {
                    "KeyId": "k",
                    "ImportToken": b64(b"t"),
                    "EncryptedKeyMaterial": b64(b"m"),
                    "KeyMaterialDescription": "ok but not ok!",
                }
            ),
        )


# --- decode: serialization errors --------------------------------------------------------------------

SERIALIZATION_CASES: list[tuple[str, str, bytes, str]] = [
    (
        "string-for-integer",
        "GenerateRandom",
        body({"NumberOfBytes": "5"}),
        "STRING_VALUE can not be converted to an Integer",
    ),
    (
        "fraction",
        "GenerateRandom",
        body({"NumberOfBytes": 1.5}),
        "NUMBER_VALUE can not be converted to an Integer",
    ),
    ("bool-for-int", "ListKeys", body({"Limit": True}), "BOOLEAN_VALUE can not be converted to an Integer"),
    ("int-overflow", "ListKeys", body({"Limit": 2**31}), "NUMBER_VALUE can not be converted to an Integer"),
    (
        "object-for-string",
        "DescribeKey",
        body({"KeyId": {"a": 1}}),
        "Start of structure or map found where not expected.",
    ),
    ("list-for-string", "DescribeKey", body({"KeyId": ["k"]}), "Start of list found where not expected"),
    (
        "string-for-bool",
        "Encrypt",
        body({"DryRun": "true"}),
        "STRING_VALUE can not be converted to a Boolean",
    ),
    ("number-for-blob", "Encrypt", body({"Plaintext": 5}), "NUMBER_VALUE can not be converted to a Blob"),
    ("list-for-map", "Encrypt", body({"EncryptionContext": ["a"]}), "Start of list found where not expected"),
    (
        "object-in-map",
        "Encrypt",
        body({"EncryptionContext": {"a": {"b": "c"}}}),
        "Start of structure or map found where not expected.",
    ),
    ("string-for-list", "Encrypt", body({"GrantTokens": "t"}), "STRING_VALUE can not be converted to a List"),
    (
        "string-for-structure",
        "CreateGrant",
        body({"Constraints": "c"}),
        "STRING_VALUE can not be converted to a Structure",
    ),
    (
        "bool-for-timestamp",
        "ImportKeyMaterial",
        body({"ValidTo": True}),
        "BOOLEAN_VALUE can not be converted to a Timestamp",
    ),
    (
        "bad-date",
        "ImportKeyMaterial",
        body({"ValidTo": "tomorrow"}),
        "Value at 'validTo' is not a valid timestamp",
    ),
    (
        "b64-padding",
        "Encrypt",
        body({"Plaintext": "YWJ"}),
        "Value at 'plaintext' is not valid base64-encoded data",
    ),
    (
        "b64-alphabet",
        "Encrypt",
        body({"Plaintext": "YW-_"}),
        "Value at 'plaintext' is not valid base64-encoded data",
    ),
    (
        "b64-unicode",
        "Encrypt",
        body({"Plaintext": "é"}),
        "Value at 'plaintext' is not valid base64-encoded data",
    ),
    (
        "b64-trailing",
        "Encrypt",
        body({"Plaintext": "YWI=YWI="}),
        "Value at 'plaintext' is not valid base64-encoded data",
    ),
    ("not-json", "Encrypt", b"{not json", "Unable to parse request body as JSON"),
    ("not-utf8", "Encrypt", b'{"KeyId": "\xff"}', "Unable to parse request body as JSON"),
    ("list-body", "Encrypt", b"[]", "Start of list found where not expected"),
    ("string-body", "Encrypt", b'"x"', "STRING_VALUE can not be converted to a Structure"),
    ("null-body", "ListKeys", b"null", "NULL_VALUE can not be converted to a Structure"),
    (
        "too-deep",
        "ListKeys",
        b'{"X":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}",
        f"Request body is nested more than {MAX_DEPTH} levels deep",
    ),
    (
        "too-many",
        "ListKeys",
        body({"X": list(range(MAX_ELEMENTS))}),
        f"Request body has more than {MAX_ELEMENTS} elements",
    ),
    ("orjson-depth", "ListKeys", b"[" * 5000 + b"]" * 5000, "Unable to parse request body as JSON"),
]


@pytest.mark.parametrize(
    ("operation", "raw_body", "message"),
    [case[1:] for case in SERIALIZATION_CASES],
    ids=[case[0] for case in SERIALIZATION_CASES],
)
def test_serialization_errors(operation: str, raw_body: bytes, message: str) -> None:
    with pytest.raises(SerializationException) as caught:
        decode_request(operation, raw_body)
    assert caught.value.message == message


def test_bounds_accept_what_they_should() -> None:
    ok = b'{"X":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    assert decode_request("ListKeys", ok).params == {}
    many = body({"X": list(range(MAX_ELEMENTS - 1))})
    assert decode_request("ListKeys", many).params == {}


def test_serialization_error_wins_over_validation_errors() -> None:
    with pytest.raises(SerializationException):
        decode_request("Encrypt", body({"KeyId": "", "Plaintext": "!!"}))


# --- encode ----------------------------------------------------------------------------------------------


class KeySpec(enum.StrEnum):
    SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"


class KeyState(enum.StrEnum):
    ENABLED = "Enabled"


CREATED = datetime(2022, 8, 10, 22, 38, 27, 500000, tzinfo=UTC)


def key_metadata() -> dict[str, Any]:
    return {
        "aws_account_id": "111122223333",
        "key_id": "1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn": KEY_ARN,
        "creation_date": CREATED,
        "enabled": True,
        "description": "",
        "key_usage": "ENCRYPT_DECRYPT",
        "key_state": KeyState.ENABLED,
        "deletion_date": None,
        "valid_to": 1747806465.25,
        "origin": "AWS_KMS",
        "key_manager": "CUSTOMER",
        "customer_master_key_spec": KeySpec.SYMMETRIC_DEFAULT,
        "key_spec": KeySpec.SYMMETRIC_DEFAULT,
        "encryption_algorithms": [KeySpec.SYMMETRIC_DEFAULT],
        "multi_region": False,
        "multi_region_configuration": None,
    }


def parse_with_botocore(operation: str, payload: bytes) -> dict[str, Any]:
    parser = botocore.parsers.JSONParser()
    shape = kms_model().operation_model(operation).output_shape
    parsed: dict[str, Any] = parser.parse({"body": payload, "headers": {}, "status_code": 200}, shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


def test_encode_create_key_round_trip() -> None:
    payload = encode_response("CreateKey", {"key_metadata": key_metadata()})
    document = orjson.loads(payload)
    metadata = document["KeyMetadata"]
    assert metadata["AWSAccountId"] == "111122223333"
    assert metadata["CreationDate"] == CREATED.timestamp()
    assert metadata["ValidTo"] == 1747806465.25
    assert metadata["KeyState"] == "Enabled"
    assert metadata["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert "DeletionDate" not in metadata
    assert "MultiRegionConfiguration" not in metadata
    assert b"null" not in payload
    parsed = parse_with_botocore("CreateKey", payload)["KeyMetadata"]
    assert parsed["CreationDate"] == CREATED
    assert parsed["ValidTo"] == datetime.fromtimestamp(1747806465.25, UTC)
    assert parsed["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert parsed["Enabled"] is True


def test_encode_blobs_nested_lists_and_maps() -> None:
    encrypt = encode_response(
        "Encrypt",
        {"ciphertext_blob": b"\x01\x02", "key_id": KEY_ARN, "encryption_algorithm": "SYMMETRIC_DEFAULT"},
    )
    assert orjson.loads(encrypt) == {
        "CiphertextBlob": "AQI=",
        "KeyId": KEY_ARN,
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    assert parse_with_botocore("Encrypt", encrypt)["CiphertextBlob"] == b"\x01\x02"
    grants = encode_response(
        "ListGrants",
        {
            "grants": [
                {
                    "grant_id": "g",
                    "creation_date": 1660171107,
                    "operations": ["Encrypt"],
                    "constraints": {"encryption_context_subset": {"Dept": "IT"}},
                }
            ],
            "truncated": False,
        },
    )
    assert orjson.loads(grants) == {
        "Grants": [
            {
                "GrantId": "g",
                "CreationDate": 1660171107,
                "Operations": ["Encrypt"],
                "Constraints": {"EncryptionContextSubset": {"Dept": "IT"}},
            }
        ],
        "Truncated": False,
    }


def test_encode_empty_bodies() -> None:
    assert encode_response("DisableKey", None) == b""
    assert encode_response("DisableKey", {}) == b""
    assert encode_response("TagResource", {}) == b""
    assert encode_response("ListKeys", None) == b""
    assert encode_response("ListKeys", {"next_marker": None}) == b"{}"
    assert encode_response("GenerateRandom", {"plaintext": b"r"}) == b'{"Plaintext":"cg=="}'


@pytest.mark.parametrize(
    ("operation", "result", "error"),
    [
        ("CreateKey", {"key_metadat": {}}, KeyError),
        ("CreateKey", {"key_metadata": {"key_idd": "k"}}, KeyError),
        ("CreateKey", {"KeyMetadata": {}}, KeyError),
        ("DisableKey", {"key_id": "k"}, ValueError),
        ("Encrypt", {"ciphertext_blob": "not bytes"}, TypeError),
        ("Encrypt", {"key_id": 5}, TypeError),
        ("GenerateRandom", {"plaintext": "text"}, TypeError),
        ("DescribeKey", {"key_metadata": {"creation_date": datetime(2022, 1, 1)}}, ValueError),
        ("ListKeys", {"truncated": "no"}, TypeError),
    ],
)
def test_encode_programming_errors(operation: str, result: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        encode_response(operation, result)


def test_encode_aware_datetime_in_other_zone() -> None:
    moment = datetime(2022, 8, 11, 0, 38, 27, tzinfo=timezone(timedelta(hours=2)))
    payload = encode_response("ScheduleKeyDeletion", {"key_id": "k", "deletion_date": moment})
    assert orjson.loads(payload)["DeletionDate"] == 1660171107.0


# --- audit -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (1660171107, "Aug 10, 2022, 10:38:27 PM"),
        (1747806465.9, "May 21, 2025, 5:47:45 AM"),
        (datetime(2024, 1, 2, 0, 5, 6, tzinfo=UTC), "Jan 2, 2024, 12:05:06 AM"),
        (datetime(2024, 12, 31, 12, 0, 0, tzinfo=UTC), "Dec 31, 2024, 12:00:00 PM"),
    ],
)
def test_human_time(moment: datetime | float, text: str) -> None:
    assert human_time(moment) == text


def test_audit_request_drops_secrets_and_camel_cases() -> None:
    raw = {
        "KeyId": KEY_ARN,
        "Plaintext": b64(b"secret"),
        "EncryptionContext": {"Department": "IT"},
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "Unknown": "x",
    }
    assert audit_request_parameters("Encrypt", raw) == {
        "keyId": KEY_ARN,
        "encryptionContext": {"Department": "IT"},
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    imported = audit_request_parameters(
        "ImportKeyMaterial",
        {
            "KeyId": "k",
            "ImportToken": b64(b"t"),
            "EncryptedKeyMaterial": b64(b"m"),
            "ValidTo": 1747806465,
            "ExpirationModel": "KEY_MATERIAL_EXPIRES",
        },
    )
    assert imported == {
        "keyId": "k",
        "validTo": "May 21, 2025, 5:47:45 AM",
        "expirationModel": "KEY_MATERIAL_EXPIRES",
    }
    for operation, secret_member in [
        ("Decrypt", "CiphertextBlob"),
        ("Verify", "Signature"),
        ("VerifyMac", "Mac"),
        ("DeriveSharedSecret", "PublicKey"),
        ("CreateCustomKeyStore", "KeyStorePassword"),
    ]:
        logged = audit_request_parameters(operation, {"KeyId": "k", secret_member: "c2VjcmV0"})
        assert "c2VjcmV0" not in orjson.dumps(logged).decode(), operation


def test_audit_request_nested_and_policy() -> None:
    assert audit_request_parameters(
        "CreateKey",
        {
            "Description": "d",
            "Tags": [{"TagKey": "Name", "TagValue": "v"}],
            "Policy": "{}",
            "KeySpec": "HMAC_256",
        },
    ) == {
        "description": "d",
        "tags": [{"tagKey": "Name", "tagValue": "v"}],
        "policy": "{}",
        "keySpec": "HMAC_256",
    }
    assert audit_request_parameters(
        "CreateGrant", {"KeyId": "k", "Constraints": {"EncryptionContextEquals": {"Key": "V"}}}
    ) == {"keyId": "k", "constraints": {"encryptionContextEquals": {"Key": "V"}}}
    assert audit_request_parameters("ListKeys", {}) is None
    assert audit_request_parameters("GenerateRandom", {"NumberOfBytes": 32}) == {"numberOfBytes": 32}
    assert audit_request_parameters("NoSuchOperation", {"KeyId": "k"}) is None


def test_audit_response_elements() -> None:
    logged = audit_response_elements("CreateKey", {"key_metadata": key_metadata()})
    assert logged is not None
    metadata = logged["keyMetadata"]
    assert metadata["AWSAccountId"] == "111122223333"
    assert metadata["creationDate"] == "Aug 10, 2022, 10:38:27 PM"
    assert metadata["keyState"] == "Enabled"
    assert type(metadata["keySpec"]) is str
    assert metadata["encryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert "deletionDate" not in metadata
    assert audit_response_elements(
        "ScheduleKeyDeletion", {"key_id": KEY_ARN, "deletion_date": 1660171107.0, "pending_window_in_days": 7}
    ) == {"keyId": KEY_ARN, "deletionDate": "Aug 10, 2022, 10:38:27 PM", "pendingWindowInDays": 7}
    assert audit_response_elements("ImportKeyMaterial", {"key_id": KEY_ARN, "key_material_id": "a" * 64}) == {
        "keyId": KEY_ARN,
        "keyMaterialId": "a" * 64,
    }
    assert audit_response_elements("GetPublicKey", {"key_id": KEY_ARN, "public_key": b"der"}) == {
        "keyId": KEY_ARN
    }
    assert audit_response_elements("DisableKey", None) is None
    assert audit_response_elements("ListKeys", {}) is None


@pytest.mark.parametrize(
    ("operation", "result"),
    [
        ("Encrypt", {"ciphertext_blob": b"c", "key_id": KEY_ARN}),
        ("GenerateDataKey", {"plaintext": b"p", "ciphertext_blob": b"c", "key_id": KEY_ARN}),
        ("GetParametersForImport", {"key_id": KEY_ARN, "import_token": b"t", "public_key": b"k"}),
        ("GetKeyPolicy", {"policy": "{}", "policy_name": "default"}),
    ],
)
def test_audit_responses_cloudtrail_never_records(operation: str, result: dict[str, Any]) -> None:
    assert audit_response_elements(operation, result) is None


# --- timing ----------------------------------------------------------------------------------------------


def test_print_codec_timings() -> None:
    timings = bench_encrypt(rounds=5_000)
    for label, micros in timings.items():
        print(f"{label}: {micros:.2f} µs")
    assert set(timings) == {"decode_request(Encrypt)", "encode_response(Encrypt)"}
