"""The XKS proxy's pure rules (domain/xks.py), its AES-GCM and CDIV (crypto/xks.py, checked against
pyca cryptography and hashlib directly), and the TLS client subject names a key store matches."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from openkms.crypto import xks as xks_crypto
from openkms.domain import xks
from openkms.server.tls import subject_name
from openkms.service.xks.proxy import common_names

META = {"awsPrincipalArn": "arn:aws:iam::111122223333:user/a", "kmsOperation": "Encrypt", "kmsRequestId": "r"}


def test_error_names_and_statuses_are_the_specifications() -> None:
    table = {cls.name: cls.status for cls in xks.ERRORS}
    assert table == {
        "ValidationException": 400,
        "InvalidStateException": 400,
        "InvalidCiphertextException": 400,
        "InvalidKeyUsageException": 400,
        "AuthenticationFailedException": 401,
        "AccessDeniedException": 403,
        "KeyNotFoundException": 404,
        "InvalidUriPathException": 404,
        "ThrottlingException": 429,
        "UnsupportedOperationException": 501,
        "DependencyTimeoutException": 503,
        "InternalException": 500,
    }
    assert (xks.MethodNotAllowed.name, xks.MethodNotAllowed.status) == ("ValidationException", 405)


def test_error_messages_are_short_printable_ascii() -> None:
    error = xks.ValidationException("é\x00" + "x" * 600)
    assert len(error.message) == 511 and error.message.startswith("??x")
    assert error.body().startswith(b'{"errorName":"ValidationException","errorMessage":"??x')


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/xks/a/kms/xks/v1/health", xks.Route("a", xks.Operation.GET_HEALTH_STATUS, None)),
        (
            "/xks/a-b_1/kms/xks/v1/keys/k.1-_/metadata",
            xks.Route("a-b_1", xks.Operation.GET_KEY_METADATA, "k.1-_"),
        ),
        ("/xks/a/kms/xks/v1/keys/k/encrypt", xks.Route("a", xks.Operation.ENCRYPT, "k")),
        ("/xks/a/kms/xks/v1/keys/k/decrypt", xks.Route("a", xks.Operation.DECRYPT, "k")),
    ],
)
def test_routes(path: str, route: xks.Route) -> None:
    assert xks.route(path) == route


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/kms/xks/v1/health",
        "/xks/kms/xks/v1/health",
        "/xks/a/kms/xks/v1",
        "/xks/a/kms/xks/v1/",
        "/xks/a/kms/xks/v1/health/",
        "/xks/a/b/kms/xks/v1/health",
        "/xks/a.b/kms/xks/v1/health",
        "/xks/a/kms/xks/v1/keys/k/sign",
        "/xks/a/kms/xks/v1/keys/k",
        "/xks/a/kms/xks/v1/keys//encrypt",
        "/xks/a/kms/xks/v1/keys/k%20/encrypt",
        "/xks/a/kms/xks/v1/keys/" + "k" * 129 + "/encrypt",
    ],
)
def test_other_paths_are_invalid(path: str) -> None:
    with pytest.raises(xks.InvalidUriPathException):
        xks.route(path)


def test_uri_path_and_names() -> None:
    assert xks.uri_path("n") == "/xks/n/kms/xks/v1"
    assert len(xks.uri_path("n" * 64)) <= 128
    for bad in ("", "n" * 65, "a/b", "a.b", "ä"):
        assert not xks.valid_name(bad)
        with pytest.raises(ValueError):
            xks.uri_path(bad)
    assert xks.valid_key_id("A-z_0.9") and not xks.valid_key_id("a b") and not xks.valid_key_id("k" * 129)


def test_usages() -> None:
    assert xks.parse_usage("encrypt,decrypt") == xks.parse_usage("DECRYPT, encrypt") == ("ENCRYPT", "DECRYPT")
    assert xks.parse_usage("encrypt") == ("ENCRYPT",) and xks.parse_usage("none") == ()
    with pytest.raises(ValueError):
        xks.parse_usage("sign")


def test_allowed_principals() -> None:
    alice = "arn:aws:iam::111122223333:user/alice"
    assert xks.principal_allowed((), "AWS Internal")
    assert xks.principal_allowed((alice,), alice)
    assert xks.principal_allowed(("111122223333",), "arn:aws:iam::111122223333:role/r")
    assert not xks.principal_allowed(("111122223333",), "arn:aws:iam::444455556666:user/alice")
    assert not xks.principal_allowed((alice,), "ec2.amazonaws.com")
    assert xks.valid_allowed_principal("111122223333") and xks.valid_allowed_principal(alice)
    assert not xks.valid_allowed_principal("alice")


def test_encrypt_request_decoding() -> None:
    request = xks.encrypt_request(
        {
            "requestMetadata": {**META, "kmsKeyArn": "arn:k", "kmsViaService": "ebs"},
            "plaintext": base64.b64encode(b"p").decode(),
            "additionalAuthenticatedData": base64.b64encode(b"a").decode(),
            "encryptionAlgorithm": "AES_GCM",
            "ciphertextDataIntegrityValueAlgorithm": "SHA_256",
            "future": True,
        }
    )
    assert (request.plaintext, request.aad, request.integrity_value) == (b"p", b"a", True)
    assert request.meta.kms_key_arn == "arn:k" and request.meta.principal_arn == META["awsPrincipalArn"]
    with pytest.raises(xks.ValidationException):  # Encrypt needs kmsKeyArn
        xks.encrypt_request({"requestMetadata": META, "plaintext": "", "encryptionAlgorithm": "AES_GCM"})
    assert xks.metadata_request({"requestMetadata": META}).kms_key_arn is None


def test_audited_metadata_keeps_strings_only_and_bounds_them() -> None:
    document = {"requestMetadata": {"a": "x" * 3000, "n": 1, **{f"f{i}": "v" for i in range(40)}}}
    kept = xks.audited_metadata(document)
    assert kept is not None and len(kept) == 32 and len(kept["a"]) == 2048 and "n" not in kept
    assert xks.audited_metadata({"requestMetadata": []}) is None and xks.audited_metadata(None) is None


def test_aes_gcm_with_lengths_in_the_associated_data() -> None:
    key = xks_crypto.new_key()
    encrypted = xks_crypto.encrypt(key, b"plaintext", b"aad", b"\x01")
    assert len(encrypted.iv) == 12 and len(encrypted.tag) == 16 and len(encrypted.ciphertext) == 9
    expected_aad = b"\x00\x03aad\x01\x01"
    assert (
        AESGCM(key).decrypt(encrypted.iv, encrypted.ciphertext + encrypted.tag, expected_aad) == b"plaintext"
    )
    assert xks_crypto.associated_data(None, None) == b"\x00\x00\x00"
    parts = (encrypted.iv, encrypted.ciphertext, encrypted.tag)
    assert xks_crypto.decrypt(key, *parts, b"aad", b"\x01") == b"plaintext"
    for aad, metadata in ((b"aad\x01", None), (b"aa", b"d\x01"), (b"aad", None), (None, b"\x01")):
        with pytest.raises(xks_crypto.InvalidCiphertext):
            xks_crypto.decrypt(key, *parts, aad, metadata)


def test_integrity_value() -> None:
    key = os.urandom(32)
    encrypted = xks_crypto.encrypt(key, b"data", b"aad", b"md")
    digest = hashlib.sha256(b"aad" + b"md" + encrypted.iv + encrypted.ciphertext + encrypted.tag).digest()
    assert xks_crypto.integrity_value(b"aad", b"md", encrypted) == digest
    assert (
        xks_crypto.integrity_value(None, None, encrypted)
        == hashlib.sha256(encrypted.iv + encrypted.ciphertext + encrypted.tag).digest()
    )
    assert xks_crypto.self_test()


def test_client_subject_names_and_their_common_names() -> None:
    peercert = {
        "subject": (
            (("countryName", "US"),),
            (("organizationName", "Amazon, Inc."),),
            (("commonName", "cks.kms.eu-west-1.amazonaws.com"),),
        )
    }
    name = subject_name(peercert)
    assert name == "CN=cks.kms.eu-west-1.amazonaws.com,O=Amazon\\, Inc.,C=US"
    assert common_names(name) == ["cks.kms.eu-west-1.amazonaws.com"]
    tricky = subject_name({"subject": ((("commonName", " a,b+c\\ "),), (("commonName", "two"),))})
    assert common_names(tricky) == ["two", " a,b+c\\ "]
    assert common_names("O=x") == []
