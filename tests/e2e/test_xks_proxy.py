"""openkms as an XKS proxy: AWS's External Key Store Proxy API v1 (GetKeyMetadata, Encrypt, Decrypt,
GetHealthStatus) at ``https://<server>/xks/<key store>/kms/xks/v1/…`` on the API's own port, over TLS, on
SQLite and PostgreSQL.

Driven by a client of this module's own that follows the specification (JSON bodies with
``requestMetadata``, SigV4 with service ``kms-xks-proxy`` by botocore's signer) and by ``curl
--aws-sigv4`` as the specification's Appendix D does; every error name and HTTP status; restricted key
usages; AES-GCM and the ciphertext data integrity value checked with pyca ``cryptography`` against the
key material (unsealed here from the database with the root key: it is stored nowhere in plaintext);
credential rotation; the audit trail; mutual TLS with a required client certificate subject.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import json
import os
import sqlite3
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.conftest import OPENKMS, REGION, Server, create_pg_database, drop_pg_database
from tests.e2e.storage_scan import keyring_keys, stored_bytes, unseal_independently
from tests.e2e.test_edge_tls import make_ca, make_leaf
from tests.e2e.util import DatedSigV4Auth, by_request_id, wait_for_audit

SERVICE = "kms-xks-proxy"
ALICE = "arn:aws:iam::123456789012:user/Alice"
BOB = "arn:aws:iam::210987654321:user/Bob"
KEY_ARN = "arn:aws:kms:us-east-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


# --- the test's own XKS client ------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str:
        """The ``errorName`` of an error reply."""
        name = self.json()["errorName"]
        assert isinstance(name, str)
        return name


def metadata(operation: str, principal: str = ALICE, key_arn: str | None = KEY_ARN) -> dict[str, str]:
    meta = {"awsPrincipalArn": principal, "kmsOperation": operation, "kmsRequestId": str(uuid.uuid4())}
    if key_arn is not None:
        meta["kmsKeyArn"] = key_arn
    return meta


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class XksClient:
    """An XKS proxy client per the specification: POSTs JSON bodies to ``<uri path>/…``, signed with
    SigV4 for the service ``kms-xks-proxy``, over TLS verified with the server's CA."""

    server: Server
    uri_path: str
    access_key_id: str
    secret: str = field(repr=False)
    region: str = REGION
    client_cert: tuple[Path, Path] | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.server.ca_bundle)
        if self.client_cert is not None:
            ctx.load_cert_chain(str(self.client_cert[0]), str(self.client_cert[1]))
        return ctx

    def send(
        self,
        suffix: str,
        body: dict[str, Any] | bytes | None,
        *,
        method: str = "POST",
        path: str | None = None,
        sign: bool = True,
        access_key_id: str | None = None,
        secret: str | None = None,
        service: str = SERVICE,
        when: dt.datetime | None = None,
        body_after_signing: bytes | None = None,
    ) -> Reply:
        data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        target = path if path is not None else self.uri_path + suffix
        request = AWSRequest(
            method=method,
            url=f"https://127.0.0.1:{self.server.port}{target}",
            data=data,
            headers={"Content-Type": "application/json"},
        )
        if sign:
            creds = Credentials(access_key_id or self.access_key_id, secret or self.secret)
            signer = (
                SigV4Auth(creds, service, self.region)
                if when is None
                else DatedSigV4Auth(creds, service, self.region, when)
            )
            signer.add_auth(request)
        conn = http.client.HTTPSConnection("127.0.0.1", self.server.port, context=self.context(), timeout=30)
        try:
            sent = body_after_signing if body_after_signing is not None else data
            conn.request(method, target, body=sent, headers=dict(request.headers.items()))
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    # -- the four operations --------------------------------------------------------------------------
    def health(self, **kw: Any) -> Reply:
        body = {"requestMetadata": {"kmsRequestId": str(uuid.uuid4()), "kmsOperation": "KmsHealthCheck"}}
        return self.send("/health", body, **kw)

    def metadata(self, key_id: str, principal: str = ALICE, **kw: Any) -> Reply:
        body = {"requestMetadata": metadata("CreateKey", principal, key_arn=None)}
        return self.send(f"/keys/{key_id}/metadata", body, **kw)

    def encrypt(
        self,
        key_id: str,
        plaintext: bytes,
        aad: bytes | None = None,
        *,
        cdiv: bool = True,
        principal: str = ALICE,
        **kw: Any,
    ) -> Reply:
        body: dict[str, Any] = {
            "requestMetadata": metadata("Encrypt", principal),
            "plaintext": b64(plaintext),
            "encryptionAlgorithm": "AES_GCM",
        }
        if aad is not None:
            body["additionalAuthenticatedData"] = b64(aad)
        if cdiv:
            body["ciphertextDataIntegrityValueAlgorithm"] = "SHA_256"
        return self.send(f"/keys/{key_id}/encrypt", body, **kw)

    def decrypt(
        self,
        key_id: str,
        encrypted: dict[str, str],
        aad: bytes | None = None,
        *,
        principal: str = ALICE,
        **fields: Any,
    ) -> Reply:
        body: dict[str, Any] = {
            "requestMetadata": metadata("Decrypt", principal),
            "encryptionAlgorithm": "AES_GCM",
            **{k: encrypted[k] for k in ("ciphertext", "initializationVector", "authenticationTag")},
        }
        if "ciphertextMetadata" in encrypted:
            body["ciphertextMetadata"] = encrypted["ciphertextMetadata"]
        if aad is not None:
            body["additionalAuthenticatedData"] = b64(aad)
        body.update(fields)
        return self.send(f"/keys/{key_id}/decrypt", {k: v for k, v in body.items() if v is not None})


# --- servers, key stores, keys ------------------------------------------------------------------------


def start_tls(
    data_dir: Path, database_url: str | None, *args: str, env: dict[str, str] | None = None
) -> Server:
    server = Server(
        data_dir=data_dir, database_url=database_url, extra_args=["--tls-self-signed", *args], env=env or {}
    )
    server.ca_bundle = str(data_dir / "tls" / "ca.pem")
    server.start()
    return server


@pytest.fixture(scope="module")
def proxy(workdir: Path, backend: str) -> Iterator[Server]:
    """An ``openkms serve --tls-self-signed`` of this module, on the backend's database."""
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"xks-{backend}-"))
    url = create_pg_database() if backend == "postgres" else None
    server = start_tls(data_dir, url)
    yield server
    server.stop()
    if url:
        drop_pg_database(url)


def new_keystore(server: Server, *args: str) -> XksClient:
    name = "ks-" + uuid.uuid4().hex[:10]
    out = server.admin("create-xks-keystore", "--name", name, *args)
    return XksClient(server, out["XksProxyUriPath"], out["AccessKeyId"], out["RawSecretAccessKey"])


def keystore_name(client: XksClient) -> str:
    return client.uri_path.split("/")[2]


def new_key(client: XksClient, *args: str) -> str:
    key_id = "key-" + uuid.uuid4().hex[:12]
    out = client.server.admin(
        "create-xks-key", "--keystore", keystore_name(client), "--key-id", key_id, *args
    )
    assert out["XksKeyId"] == key_id
    return key_id


@pytest.fixture(scope="module")
def xks(proxy: Server) -> XksClient:
    return new_keystore(proxy)


@pytest.fixture(scope="module")
def key(xks: XksClient) -> str:
    return new_key(xks)


# --- the database, read and changed behind the server's back ------------------------------------------


def db_rows(server: Server, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if server.database_url:
        import psycopg

        with psycopg.connect(server.database_url) as conn:
            cursor = conn.execute(sql.replace("?", "%s"), params)
            rows = cursor.fetchall() if cursor.description else []
            conn.commit()
            return [tuple(r) for r in rows]
    db = sqlite3.connect(server.data_dir / "openkms.db")
    try:
        rows = db.execute(sql, params).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


def material_of(client: XksClient, key_id: str) -> bytes:
    """The key's AES-256 material, unsealed here with the root key file and the stored keyring
    (tests/e2e/storage_scan.py re-implements crypto/envelope.py's formats)."""
    name = keystore_name(client)
    ((sealed,),) = db_rows(
        client.server,
        "SELECT material_sealed FROM xks_keys WHERE keystore = ? AND key_id = ?",
        (name, key_id),
    )
    sealed = bytes(sealed)
    root = (client.server.data_dir / "root.key").read_bytes()
    ((wrapped,),) = db_rows(client.server, "SELECT wrapped FROM keyring", ())
    keys = keyring_keys(root, bytes(wrapped))
    material = unseal_independently(keys, "xks-key-material", f"{name}/{key_id}", sealed)
    assert len(material) == 32
    return material


def spec_aad(aad: bytes | None, ciphertext_metadata: bytes | None) -> bytes:
    """The AES-GCM associated data the specification asks for: both fields with their lengths."""
    aad, md = aad or b"", ciphertext_metadata or b""
    return len(aad).to_bytes(2, "big") + aad + len(md).to_bytes(1, "big") + md


# --- admin commands -----------------------------------------------------------------------------------


def test_create_keystore_prints_its_path_and_a_credential_as_the_specification_requires(
    proxy: Server,
) -> None:
    name = "store_" + uuid.uuid4().hex[:8]
    out = proxy.admin("create-xks-keystore", "--name", name)
    assert set(out) == {"XksProxyUriPath", "AccessKeyId", "RawSecretAccessKey"}
    path = out["XksProxyUriPath"]
    assert path == f"/xks/{name}/kms/xks/v1"
    assert len(path) <= 128 and all(c.isalnum() or c in "/-_" for c in path)
    assert 20 <= len(out["AccessKeyId"]) <= 30
    assert set(out["AccessKeyId"]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert 43 <= len(out["RawSecretAccessKey"]) <= 64
    assert set(out["RawSecretAccessKey"]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
    )
    # Without --json: one line per value.
    text = subprocess.run(
        [OPENKMS, "admin", "create-xks-keystore", "--name", name + "-2", *proxy.data_args()],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"XksProxyUriPath:     /xks/{name}-2/kms/xks/v1" in text
    assert "AccessKeyId:" in text and "RawSecretAccessKey:" in text
    # The new key store answers at once (the running server reads it from the database).
    client = XksClient(proxy, path, out["AccessKeyId"], out["RawSecretAccessKey"])
    assert client.health().status == 200


@pytest.mark.parametrize("args", [["--name", "bad/name"], ["--name", ""], ["--name", "x" * 65]])
def test_create_keystore_refuses_bad_names(proxy: Server, args: list[str]) -> None:
    done = subprocess.run(
        [OPENKMS, "admin", "create-xks-keystore", *args, *proxy.data_args()], capture_output=True, text=True
    )
    assert done.returncode != 0 and "key store name" in done.stderr


def test_admin_refuses_duplicates_and_unknown_key_stores(xks: XksClient, key: str) -> None:
    name = keystore_name(xks)
    for args in (
        ["create-xks-keystore", "--name", name],
        ["create-xks-key", "--keystore", name, "--key-id", key],
        ["create-xks-key", "--keystore", "no-such-store", "--key-id", "k"],
        ["create-xks-key", "--keystore", name, "--key-id", "bad key"],
        ["rotate-xks-credential", "--name", "no-such-store"],
        ["update-xks-key", "--keystore", name, "--key-id", "no-such-key", "--status", "DISABLED"],
    ):
        done = subprocess.run(
            [OPENKMS, "admin", *args, *xks.server.data_args()], capture_output=True, text=True
        )
        assert done.returncode != 0, args
        assert "already exists" in done.stderr or "does not exist" in done.stderr or "key id" in done.stderr


def test_admin_lists_updates_and_deletes(proxy: Server) -> None:
    client = new_keystore(proxy, "--max-tps", "100")
    name = keystore_name(client)
    key_id = new_key(client, "--usage", "encrypt")
    stores = {s["Name"]: s for s in proxy.admin("list-xks-keystores")}
    assert stores[name]["XksProxyUriPath"] == client.uri_path
    assert stores[name]["MaxRequestsPerSecond"] == 100
    assert [c["AccessKeyId"] for c in stores[name]["AccessKeys"]] == [client.access_key_id]
    assert stores[name]["KeyCount"] == 1
    assert "RawSecretAccessKey" not in json.dumps(stores[name])
    (listed,) = proxy.admin("list-xks-keys", "--keystore", name)
    assert (
        listed["XksKeyId"] == key_id and listed["KeyUsage"] == ["ENCRYPT"] and listed["KeySpec"] == "AES_256"
    )
    updated = proxy.admin(
        "update-xks-key",
        "--keystore",
        name,
        "--key-id",
        key_id,
        "--usage",
        "encrypt,decrypt",
        "--status",
        "DISABLED",
    )
    assert updated["KeyUsage"] == ["ENCRYPT", "DECRYPT"] and updated["KeyStatus"] == "DISABLED"
    view = proxy.admin("update-xks-keystore", "--name", name, "--no-max-tps")
    assert view["MaxRequestsPerSecond"] is None
    assert proxy.admin("delete-xks-key", "--keystore", name, "--key-id", key_id) == {}
    assert proxy.admin("list-xks-keys", "--keystore", name) == []
    assert client.metadata(key_id).error == "KeyNotFoundException"


# --- the four operations ------------------------------------------------------------------------------


def test_get_health_status(xks: XksClient) -> None:
    reply = xks.health()
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert set(body) == {
        "xksProxyFleetSize",
        "xksProxyVendor",
        "xksProxyModel",
        "ekmVendor",
        "ekmFleetDetails",
    }
    assert isinstance(body["xksProxyFleetSize"], int) and body["xksProxyFleetSize"] >= 1
    assert body["xksProxyVendor"] == "openkms" and body["xksProxyModel"].startswith("openkms ")
    assert 1 <= len(body["ekmFleetDetails"]) <= 10
    (detail,) = body["ekmFleetDetails"]
    assert set(detail) == {"id", "model", "healthStatus"} and detail["healthStatus"] == "ACTIVE"
    # Any kmsOperation is accepted, and the metadata is not validated for this operation.
    assert (
        xks.send("/health", {"requestMetadata": {"kmsOperation": "SomethingNew", "kmsRequestId": "1"}}).status
        == 200
    )
    assert xks.send("/health", b"not json").status == 200


@pytest.mark.parametrize(
    ("usage", "shown"),
    [
        (None, ["ENCRYPT", "DECRYPT"]),
        ("encrypt,decrypt", ["ENCRYPT", "DECRYPT"]),
        ("encrypt", ["ENCRYPT"]),
        ("decrypt", ["DECRYPT"]),
        ("none", []),
    ],
)
def test_get_key_metadata(xks: XksClient, usage: str | None, shown: list[str]) -> None:
    key_id = new_key(xks, *(["--usage", usage] if usage else []))
    reply = xks.metadata(key_id)
    assert reply.status == 200
    assert reply.json() == {"keySpec": "AES_256", "keyUsage": shown, "keyStatus": "ENABLED"}


def test_encrypt_and_decrypt_with_aad_cross_checked_with_cryptography(xks: XksClient, key: str) -> None:
    aad = b"project=nile,department=marketing"
    reply = xks.encrypt(key, b"Hello World!", aad)
    assert reply.status == 200
    out = reply.json()
    assert set(out) == {
        "ciphertext",
        "ciphertextMetadata",
        "initializationVector",
        "authenticationTag",
        "ciphertextDataIntegrityValue",
    }
    ciphertext, iv, tag = (
        base64.b64decode(out[k]) for k in ("ciphertext", "initializationVector", "authenticationTag")
    )
    md = base64.b64decode(out["ciphertextMetadata"])
    assert (
        len(ciphertext) == len(b"Hello World!") and len(iv) in (12, 16) and len(tag) == 16 and len(md) <= 20
    )
    # The CDIV: SHA-256 of aad || ciphertextMetadata || iv || ciphertext || tag.
    assert (
        base64.b64decode(out["ciphertextDataIntegrityValue"])
        == hashlib.sha256(aad + md + iv + ciphertext + tag).digest()
    )
    # pyca cryptography decrypts it with the key's material and the specification's associated data.
    material = material_of(xks, key)
    assert AESGCM(material).decrypt(iv, ciphertext + tag, spec_aad(aad, md)) == b"Hello World!"
    # …and the proxy decrypts what pyca cryptography encrypted.
    own_iv = os.urandom(12)
    sealed = AESGCM(material).encrypt(own_iv, b"from cryptography", spec_aad(aad, md))
    theirs = {
        "ciphertext": b64(sealed[:-16]),
        "initializationVector": b64(own_iv),
        "authenticationTag": b64(sealed[-16:]),
        "ciphertextMetadata": out["ciphertextMetadata"],
    }
    reply = xks.decrypt(key, theirs, aad)
    assert reply.status == 200 and base64.b64decode(reply.json()["plaintext"]) == b"from cryptography"
    # A 16-byte IV is accepted too, as the specification allows.
    iv16 = os.urandom(16)
    sealed = AESGCM(material).encrypt(iv16, b"sixteen", spec_aad(None, None))
    plain = {
        "ciphertext": b64(sealed[:-16]),
        "initializationVector": b64(iv16),
        "authenticationTag": b64(sealed[-16:]),
    }
    assert base64.b64decode(xks.decrypt(key, plain).json()["plaintext"]) == b"sixteen"
    # Round trip through the proxy, and neither the material nor the secret is stored in plaintext.
    reply = xks.decrypt(key, out, aad)
    assert reply.status == 200 and reply.json() == {"plaintext": b64(b"Hello World!")}
    stored = stored_bytes(xks.server)
    assert material not in stored and xks.secret.encode() not in stored


def test_encrypt_without_aad_and_cdiv_and_at_the_specified_sizes(xks: XksClient, key: str) -> None:
    reply = xks.encrypt(key, b"no aad", cdiv=False)
    assert reply.status == 200 and "ciphertextDataIntegrityValue" not in reply.json()
    assert xks.decrypt(key, reply.json()).json()["plaintext"] == b64(b"no aad")
    # The proxy must take 4300 bytes of plaintext and 8192 bytes of AAD.
    big, aad = os.urandom(4300), os.urandom(8192)
    reply = xks.encrypt(key, big, aad)
    assert reply.status == 200
    assert base64.b64decode(xks.decrypt(key, reply.json(), aad).json()["plaintext"]) == big
    empty = xks.encrypt(key, b"")
    assert empty.status == 200 and xks.decrypt(key, empty.json()).json()["plaintext"] == ""


def test_aad_mismatch_and_tampering_are_invalid_ciphertext(xks: XksClient, key: str) -> None:
    aad = b"context"
    out = xks.encrypt(key, b"secret", aad).json()

    def flip(value: str) -> str:
        raw = bytearray(base64.b64decode(value))
        raw[0] ^= 1
        return b64(bytes(raw))

    cases = [
        xks.decrypt(key, out, b"other context"),
        xks.decrypt(key, out),  # AAD missing
        xks.decrypt(key, out, aad, ciphertext=flip(out["ciphertext"])),
        xks.decrypt(key, out, aad, authenticationTag=flip(out["authenticationTag"])),
        xks.decrypt(key, out, aad, initializationVector=flip(out["initializationVector"])),
        xks.decrypt(key, out, aad, ciphertextMetadata=flip(out["ciphertextMetadata"])),
        xks.decrypt(key, out, aad, ciphertextMetadata=None),  # metadata left out
        # The metadata moved into the AAD: the lengths in the associated data tell them apart.
        xks.decrypt(key, out, aad + base64.b64decode(out["ciphertextMetadata"]), ciphertextMetadata=None),
        xks.decrypt(key, out, aad, initializationVector=b64(os.urandom(8))),  # not 12 or 16 bytes
        xks.decrypt(key, out, aad, authenticationTag=b64(os.urandom(12))),  # not 16 bytes
        xks.decrypt(new_key(xks), out, aad),  # another key
    ]
    for reply in cases:
        assert (reply.status, reply.error) == (400, "InvalidCiphertextException"), reply.body
    assert xks.decrypt(key, out, aad).status == 200


def test_encrypt_only_decrypt_only_and_no_usage_keys(xks: XksClient) -> None:
    encrypt_only = new_key(xks, "--usage", "encrypt")
    decrypt_only = new_key(xks, "--usage", "decrypt")
    neither = new_key(xks, "--usage", "none")
    out = xks.encrypt(encrypt_only, b"one way")
    assert out.status == 200
    refused = xks.decrypt(encrypt_only, out.json())
    assert (refused.status, refused.error) == (400, "InvalidKeyUsageException")
    refused = xks.encrypt(decrypt_only, b"x")
    assert (refused.status, refused.error) == (400, "InvalidKeyUsageException")
    # A decrypt-only key decrypts what its material encrypted elsewhere.
    material = material_of(xks, decrypt_only)
    iv = os.urandom(12)
    sealed = AESGCM(material).encrypt(iv, b"made elsewhere", spec_aad(b"a", None))
    made = {
        "ciphertext": b64(sealed[:-16]),
        "initializationVector": b64(iv),
        "authenticationTag": b64(sealed[-16:]),
    }
    reply = xks.decrypt(decrypt_only, made, b"a")
    assert reply.status == 200 and base64.b64decode(reply.json()["plaintext"]) == b"made elsewhere"
    for reply in (xks.encrypt(neither, b"x"), xks.decrypt(neither, made, b"a")):
        assert (reply.status, reply.error) == (400, "InvalidKeyUsageException")
    assert xks.metadata(neither).json()["keyUsage"] == []


# --- errors -------------------------------------------------------------------------------------------


def test_unknown_key(xks: XksClient) -> None:
    for reply in (xks.metadata("no-such-key"), xks.encrypt("no-such-key", b"x")):
        assert (reply.status, reply.error) == (404, "KeyNotFoundException")
        assert reply.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "path",
    [
        "/xks/no-such-store/kms/xks/v1/health",
        "/xks/{name}/kms/xks/v2/health",
        "/xks/{name}/prefix/kms/xks/v1/health",
        "/xks/{name}/kms/xks/v1/keys/{key}/sign",
        "/xks/{name}/kms/xks/v1/keys/{key}",
        "/xks/{name}/kms/xks/v1/keys/bad%20id/encrypt",
        "/xks/{name}/kms/xks/v1/",
        "/xks/",
    ],
)
def test_wrong_path_prefix_or_path(xks: XksClient, key: str, path: str) -> None:
    # Signed for the path it is sent to: only the path is wrong.
    target = path.format(name=keystore_name(xks), key=key)
    reply = xks.send("", {"requestMetadata": metadata("Encrypt")}, path=target)
    assert (reply.status, reply.error) == (404, "InvalidUriPathException")


def test_authentication_failures(xks: XksClient, key: str, proxy: Server) -> None:
    other = new_keystore(proxy)
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    body = {"requestMetadata": metadata("CreateKey", key_arn=None)}
    replies = {
        "bad signature": xks.send(f"/keys/{key}/metadata", body, secret=xks.secret[:-4] + "AAAA"),
        "body changed after signing": xks.send(
            f"/keys/{key}/metadata", body, body_after_signing=json.dumps(body).encode() + b" "
        ),
        "unsigned": xks.send(f"/keys/{key}/metadata", body, sign=False),
        "signed for kms": xks.send(f"/keys/{key}/metadata", body, service="kms"),
        "six minutes old": xks.send(f"/keys/{key}/metadata", body, when=stale),
        "six minutes ahead": xks.send(f"/keys/{key}/metadata", body, when=ahead),
        "unknown access key": xks.send(f"/keys/{key}/metadata", body, access_key_id="A" * 24),
        "another key store's credential": xks.send(
            f"/keys/{key}/metadata", body, access_key_id=other.access_key_id, secret=other.secret
        ),
        "health, bad signature": xks.send("/health", body, secret="x" * 44),
    }
    for case, reply in replies.items():
        assert (reply.status, reply.error) == (401, "AuthenticationFailedException"), case
        message = reply.json()["errorMessage"]
        assert len(message) < 512 and all(" " <= c <= "~" for c in message), case
        assert xks.secret not in message
    # Four minutes of clock skew are fine.
    assert (
        xks.send(f"/keys/{key}/metadata", body, when=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=4)).status
        == 200
    )


def test_get_and_other_methods_are_405(xks: XksClient, key: str) -> None:
    for suffix in ("/health", f"/keys/{key}/metadata", f"/keys/{key}/encrypt", f"/keys/{key}/decrypt"):
        for method in ("GET", "PUT"):
            reply = xks.send(suffix, None, method=method)
            assert reply.status == 405, (method, suffix)
            assert reply.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "ValidationException"),
        (b"[1, 2]", "ValidationException"),
        (b'{"plaintext": "eA==", "encryptionAlgorithm": "AES_GCM"}', "ValidationException"),
        (
            b'{"requestMetadata": "x", "plaintext": "eA==", "encryptionAlgorithm": "AES_GCM"}',
            "ValidationException",
        ),
        (
            {"requestMetadata": {"kmsOperation": "Encrypt", "kmsRequestId": "1", "kmsKeyArn": KEY_ARN}},
            "ValidationException",
        ),
        (
            {
                "requestMetadata": metadata("Encrypt", key_arn=None),
                "plaintext": "eA==",
                "encryptionAlgorithm": "AES_GCM",
            },
            "ValidationException",
        ),
        ({"requestMetadata": metadata("Encrypt"), "encryptionAlgorithm": "AES_GCM"}, "ValidationException"),
        (
            {
                "requestMetadata": metadata("Encrypt"),
                "plaintext": "not base64!",
                "encryptionAlgorithm": "AES_GCM",
            },
            "ValidationException",
        ),
        (
            {"requestMetadata": metadata("Encrypt"), "plaintext": "-_8=", "encryptionAlgorithm": "AES_GCM"},
            "ValidationException",
        ),
        (
            {"requestMetadata": metadata("Encrypt"), "plaintext": 12, "encryptionAlgorithm": "AES_GCM"},
            "ValidationException",
        ),
        ({"requestMetadata": metadata("Encrypt"), "plaintext": "eA=="}, "ValidationException"),
        (
            {"requestMetadata": metadata("Encrypt"), "plaintext": "eA==", "encryptionAlgorithm": "AES_CBC"},
            "ValidationException",
        ),
        (
            {
                "requestMetadata": metadata("Encrypt"),
                "plaintext": "eA==",
                "encryptionAlgorithm": "AES_GCM",
                "ciphertextDataIntegrityValueAlgorithm": "MD5",
            },
            "ValidationException",
        ),
        (
            {
                "requestMetadata": metadata("Encrypt"),
                "plaintext": "eA==",
                "encryptionAlgorithm": "AES_GCM",
                "additionalAuthenticatedData": "%%",
            },
            "ValidationException",
        ),
    ],
)
def test_malformed_encrypt_bodies(xks: XksClient, key: str, body: dict[str, Any] | bytes, error: str) -> None:
    reply = xks.send(f"/keys/{key}/encrypt", body)
    assert (reply.status, reply.error) == (400, error), reply.body


def test_malformed_decrypt_and_metadata_bodies(xks: XksClient, key: str) -> None:
    good = xks.encrypt(key, b"x").json()
    base = {
        "requestMetadata": metadata("Decrypt"),
        "encryptionAlgorithm": "AES_GCM",
        **{
            k: good[k]
            for k in ("ciphertext", "initializationVector", "authenticationTag", "ciphertextMetadata")
        },
    }
    for name in ("ciphertext", "initializationVector", "authenticationTag", "encryptionAlgorithm"):
        reply = xks.send(f"/keys/{key}/decrypt", {k: v for k, v in base.items() if k != name})
        assert (reply.status, reply.error) == (400, "ValidationException"), name
    reply = xks.send(f"/keys/{key}/decrypt", {**base, "ciphertextMetadata": b64(b"m" * 21)})
    assert (reply.status, reply.error) == (400, "ValidationException")
    reply = xks.send(f"/keys/{key}/decrypt", {**base, "requestMetadata": metadata("Decrypt", key_arn=None)})
    assert (reply.status, reply.error) == (400, "ValidationException")
    for body in (b"{", {"requestMetadata": {"kmsOperation": "CreateKey"}}):
        reply = xks.send(f"/keys/{key}/metadata", body)
        assert (reply.status, reply.error) == (400, "ValidationException")
    # Fields this proxy does not know are ignored (the specification may add some).
    assert xks.send(f"/keys/{key}/decrypt", {**base, "somethingNew": 1}).status == 200


def test_oversized_body_and_data_are_unsupported(xks: XksClient, key: str) -> None:
    reply = xks.send(f"/keys/{key}/encrypt", b"{" + b" " * (64 * 1024) + b"}")
    assert (reply.status, reply.error) == (501, "UnsupportedOperationException")
    reply = xks.encrypt(key, os.urandom(16 * 1024 + 1))
    assert (reply.status, reply.error) == (501, "UnsupportedOperationException")
    reply = xks.encrypt(key, b"x", os.urandom(16 * 1024 + 1))
    assert (reply.status, reply.error) == (501, "UnsupportedOperationException")
    assert xks.health().status == 200


def test_disabled_key_is_invalid_state(xks: XksClient) -> None:
    key_id = new_key(xks)
    out = xks.encrypt(key_id, b"before").json()
    xks.server.admin(
        "update-xks-key", "--keystore", keystore_name(xks), "--key-id", key_id, "--status", "DISABLED"
    )
    assert xks.metadata(key_id).json()["keyStatus"] == "DISABLED"
    for reply in (xks.encrypt(key_id, b"x"), xks.decrypt(key_id, out)):
        assert (reply.status, reply.error) == (400, "InvalidStateException")
    xks.server.admin(
        "update-xks-key", "--keystore", keystore_name(xks), "--key-id", key_id, "--status", "ENABLED"
    )
    assert xks.decrypt(key_id, out).json()["plaintext"] == b64(b"before")


def test_allowed_principals_are_access_denied_for_others(xks: XksClient) -> None:
    by_arn = new_key(xks, "--allow-principal", ALICE)
    by_account = new_key(xks, "--allow-principal", "123456789012")
    for key_id in (by_arn, by_account):
        assert xks.metadata(key_id).status == 200
        out = xks.encrypt(key_id, b"alice's")
        assert out.status == 200
        assert xks.decrypt(key_id, out.json()).status == 200
        for reply in (
            xks.metadata(key_id, principal=BOB),
            xks.encrypt(key_id, b"x", principal=BOB),
            xks.decrypt(key_id, out.json(), principal=BOB),
        ):
            assert (reply.status, reply.error) == (403, "AccessDeniedException")
    assert xks.health().status == 200  # never subject to this authorization
    xks.server.admin(
        "update-xks-key", "--keystore", keystore_name(xks), "--key-id", by_arn, "--allow-any-principal"
    )
    assert xks.metadata(by_arn, principal=BOB).status == 200


def test_request_quota_of_a_key_store_is_throttling(proxy: Server) -> None:
    client = new_keystore(proxy, "--max-tps", "1")
    replies = [client.health() for _ in range(3)]
    assert replies[0].status == 200
    throttled = [r for r in replies[1:] if r.status != 200]
    assert throttled and all((r.status, r.error) == (429, "ThrottlingException") for r in throttled)
    proxy.admin("update-xks-keystore", "--name", keystore_name(client), "--no-max-tps")
    assert [client.health().status for _ in range(3)] == [200, 200, 200]


def test_a_failing_key_manager_is_an_internal_exception(xks: XksClient) -> None:
    key_id = new_key(xks)
    db_rows(
        xks.server,
        "UPDATE xks_keys SET material_sealed = ? WHERE keystore = ? AND key_id = ?",
        (b"\x01" + b"\x00" * 60, keystore_name(xks), key_id),
    )
    reply = xks.encrypt(key_id, b"x")
    assert (reply.status, reply.error) == (500, "InternalException")
    assert "Request id" in reply.json()["errorMessage"] and "Traceback" not in reply.json()["errorMessage"]
    assert xks.health().status == 200


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # SQLite readers never wait for a lock
def test_dependency_timeout(proxy: Server, xks: XksClient, key: str) -> None:
    """A database that does not answer in --xks-timeout seconds is DependencyTimeoutException (503):
    another process locks the keys table in PostgreSQL."""
    assert proxy.database_url
    import psycopg

    twin = start_tls(proxy.data_dir, proxy.database_url, "--xks-timeout", "0.3")
    try:
        client = XksClient(twin, xks.uri_path, xks.access_key_id, xks.secret)
        assert client.encrypt(key, b"x").status == 200
        with psycopg.connect(proxy.database_url) as conn:
            conn.execute("LOCK TABLE xks_keys IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            reply = client.encrypt(key, b"x")
            assert (reply.status, reply.error) == (503, "DependencyTimeoutException")
            assert time.monotonic() - started < 5
            assert client.health().status == 200  # the health check reads no key
            conn.rollback()
        assert client.encrypt(key, b"x").status == 200
    finally:
        twin.stop()


def test_plain_http_is_refused(workdir: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="xks-http-"))
    server = Server(data_dir=data_dir, database_url=None)
    server.start()
    try:
        out = server.admin("create-xks-keystore", "--name", "plain")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        request = AWSRequest(
            method="POST",
            url=f"http://127.0.0.1:{server.port}{out['XksProxyUriPath']}/health",
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(Credentials(out["AccessKeyId"], out["RawSecretAccessKey"]), SERVICE, REGION).add_auth(
            request
        )
        conn.request(
            "POST", f"{out['XksProxyUriPath']}/health", body=b"{}", headers=dict(request.headers.items())
        )
        response = conn.getresponse()
        assert response.status == 403
        assert json.loads(response.read())["errorName"] == "AccessDeniedException"
    finally:
        server.stop()


# --- credential rotation ------------------------------------------------------------------------------


def test_credential_rotation(proxy: Server) -> None:
    first = new_keystore(proxy)
    name = keystore_name(first)

    def with_(out: dict[str, str]) -> XksClient:
        assert out["XksProxyUriPath"] == first.uri_path
        return XksClient(proxy, out["XksProxyUriPath"], out["AccessKeyId"], out["RawSecretAccessKey"])

    out = proxy.admin("rotate-xks-credential", "--name", name)
    assert out["PreviousAccessKeyId"] == first.access_key_id and out["PreviousValidUntil"]
    second = with_(out)
    assert second.access_key_id != first.access_key_id
    assert first.health().status == 200 and second.health().status == 200  # the old one in its grace period
    third = with_(proxy.admin("rotate-xks-credential", "--name", name))
    assert first.health().status == 401  # older than the replaced one: ended by the rotation
    assert second.health().status == 200 and third.health().status == 200
    fourth = with_(proxy.admin("rotate-xks-credential", "--name", name, "--grace-period", "0"))
    assert [c.health().status for c in (first, second, third, fourth)] == [401, 401, 401, 200]
    fifth = with_(proxy.admin("rotate-xks-credential", "--name", name, "--grace-period", "1"))
    assert fourth.health().status == 200 and fifth.health().status == 200
    time.sleep(1.2)
    assert (fourth.health().status, fifth.health().status) == (401, 200)
    (store,) = [s for s in proxy.admin("list-xks-keystores") if s["Name"] == name]
    assert [c["AccessKeyId"] for c in store["AccessKeys"]] == [fifth.access_key_id]


# --- curl, as the specification's Appendix D ---------------------------------------------------------


def curl(
    client: XksClient, suffix: str, body: dict[str, Any], tmp_path: Path, secret: str | None = None
) -> tuple[int, Any]:
    request = tmp_path / f"request-{uuid.uuid4().hex}.json"
    request.write_text(json.dumps(body))
    done = subprocess.run(
        [
            "curl",
            "--silent",
            "--cacert",
            str(client.server.ca_bundle),
            "--aws-sigv4",
            f"aws:amz:{REGION}:kms-xks-proxy",
            "--user",
            f"{client.access_key_id}:{secret or client.secret}",
            "-X",
            "POST",
            "-H",
            "Content-Type:application/json",
            "--data",
            f"@{request}",
            "--write-out",
            "\n%{response_code}",
            f"https://127.0.0.1:{client.server.port}{client.uri_path}{suffix}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    text, _, code = done.stdout.rpartition("\n")
    return int(code), json.loads(text)


def test_curl_aws_sigv4_as_in_appendix_d(xks: XksClient, key: str, tmp_path: Path) -> None:
    status, health = curl(
        xks,
        "/health",
        {"requestMetadata": {"kmsOperation": "KmsHealthCheck", "kmsRequestId": str(uuid.uuid4())}},
        tmp_path,
    )
    assert status == 200 and health["ekmFleetDetails"][0]["healthStatus"] == "ACTIVE"
    status, meta = curl(
        xks, f"/keys/{key}/metadata", {"requestMetadata": metadata("CreateKey", key_arn=None)}, tmp_path
    )
    assert status == 200 and meta == {
        "keySpec": "AES_256",
        "keyUsage": ["ENCRYPT", "DECRYPT"],
        "keyStatus": "ENABLED",
    }
    encrypt = {
        "requestMetadata": metadata("GenerateDataKey"),
        "plaintext": b64(b"Hello World!"),
        "encryptionAlgorithm": "AES_GCM",
    }
    status, out = curl(xks, f"/keys/{key}/encrypt", encrypt, tmp_path)
    assert status == 200 and {"ciphertext", "initializationVector", "authenticationTag"} <= set(out)
    decrypt = {
        "requestMetadata": metadata("Decrypt"),
        "encryptionAlgorithm": "AES_GCM",
        **{
            k: out[k]
            for k in ("ciphertext", "ciphertextMetadata", "initializationVector", "authenticationTag")
        },
    }
    status, plain = curl(xks, f"/keys/{key}/decrypt", decrypt, tmp_path)
    assert status == 200 and base64.b64decode(plain["plaintext"]) == b"Hello World!"
    status, error = curl(xks, "/health", {"requestMetadata": {}}, tmp_path, secret="wrong" * 9)
    assert status == 401 and error["errorName"] == "AuthenticationFailedException"


# --- the audit trail, and the KMS API on the same port -----------------------------------------------


def test_every_call_is_audited_with_the_request_metadata(xks: XksClient, key: str) -> None:
    meta = metadata("GenerateDataKey")
    body = {
        "requestMetadata": meta,
        "plaintext": b64(b"never in the trail"),
        "encryptionAlgorithm": "AES_GCM",
    }
    ok = xks.send(f"/keys/{key}/encrypt", body)
    refused = xks.send(f"/keys/{key}/encrypt", body, secret="y" * 44)
    missing = xks.encrypt("no-such-key", b"x")
    wrong_path = xks.send("", {}, path="/xks/no-such-store/kms/xks/v1/health")
    ids = [r.headers["x-amzn-requestid"] for r in (ok, refused, missing, wrong_path)]
    records = by_request_id(
        wait_for_audit(
            xks.server,
            ("--limit", "200"),
            lambda rs: set(ids) <= set(by_request_id(rs)),
        )
    )
    first = records[ids[0]]
    assert first["eventSource"] == "kms-xks-proxy" and first["eventName"] == "Encrypt" and first["readOnly"]
    assert first["userIdentity"] == {"type": "XksProxyCredential", "accessKeyId": xks.access_key_id}
    params = first["requestParameters"]
    assert params["keyStore"] == keystore_name(xks) and params["externalKeyId"] == key
    assert params["requestMetadata"] == meta  # awsPrincipalArn, kmsOperation, kmsRequestId, kmsKeyArn
    assert params["encryptionAlgorithm"] == "AES_GCM"
    assert "errorCode" not in first and first["awsRegion"] == REGION
    assert records[ids[1]]["errorCode"] == "AuthenticationFailedException"
    assert records[ids[1]]["userIdentity"]["type"] == "Unknown"
    assert records[ids[1]]["requestParameters"]["requestMetadata"]["kmsRequestId"] == meta["kmsRequestId"]
    assert records[ids[2]]["errorCode"] == "KeyNotFoundException"
    assert records[ids[3]]["errorCode"] == "InvalidUriPathException"
    trail = json.dumps([records[i] for i in ids])
    assert b64(b"never in the trail") not in trail and xks.secret not in trail
    # The trail can be read by external key id too.
    by_key = wait_for_audit(xks.server, ("--key-id", key), lambda rs: ids[0] in by_request_id(rs))
    assert ids[0] in by_request_id(by_key)


def test_the_kms_api_answers_on_the_same_port(proxy: Server) -> None:
    creds = proxy.new_account()
    kms = boto3.client(
        "kms",
        endpoint_url=proxy.endpoint,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        verify=proxy.ca_bundle,
        config=Config(retries={"max_attempts": 1}),
    )
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kms")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kms"


# --- mutual TLS ---------------------------------------------------------------------------------------


def test_mutual_tls_and_a_key_stores_required_client_subject(workdir: Path, tmp_path: Path) -> None:
    ca_path, ca_cert, ca_key = make_ca(tmp_path, "kms-client-ca")
    kms_cn = f"cks.kms.{REGION}.amazonaws.com"
    aws_kms = make_leaf(tmp_path, kms_cn, (ca_cert, ca_key))
    someone = make_leaf(tmp_path, "someone-else", (ca_cert, ca_key))
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="xks-mtls-"))
    server = start_tls(data_dir, None, "--tls-client-ca", str(ca_path))
    try:
        strict = new_keystore(server, "--tls-client-cn", kms_cn)
        lenient = new_keystore(server)
        for client in (strict, lenient):
            client.client_cert = aws_kms
            assert client.health().status == 200
        lenient.client_cert = someone
        assert lenient.health().status == 200
        strict.client_cert = someone
        reply = strict.health()
        assert (reply.status, reply.error) == (401, "AuthenticationFailedException")
        strict.client_cert = None  # no certificate: the TLS handshake fails
        with pytest.raises((ssl.SSLError, ConnectionError)):
            strict.health()
        server.admin("update-xks-keystore", "--name", keystore_name(strict), "--no-tls-client-cn")
        strict.client_cert = someone
        assert strict.health().status == 200
    finally:
        server.stop()
