"""openkms using an external key store: CreateCustomKeyStore with CustomKeyStoreType EXTERNAL_KEY_STORE,
Connect/Disconnect/Update/Delete/DescribeCustomKeyStores, KMS keys with Origin EXTERNAL_KEY_STORE and
their double encryption, against openkms's own XKS proxy (the same server) and another openkms server's,
over TLS (``--tls-self-signed``; the other server's CA by ``--xks-ca-bundle``), on SQLite and PostgreSQL.

A tiny TLS server of this module plays a proxy that is slow (past the client's timeout), answers
garbage, refuses the credential or is stopped: the connection states, AWS's ConnectionErrorCodes and
exceptions, and nothing hangs.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.conftest import Server, create_pg_database, drop_pg_database, free_port
from tests.e2e.test_xks_proxy import start_tls


def _start(data_dir: Path, url: str | None, *args: str) -> Server:
    server = start_tls(data_dir, url, *args)
    creds = server.new_account()
    server.account_id, server.access_key, server.secret_key = (
        creds["AccountId"],
        creds["AccessKeyId"],
        creds["SecretAccessKey"],
    )
    return server


@pytest.fixture(scope="module")
def servers(workdir: Path, backend: str) -> Iterator[tuple[Server, Server]]:
    """(the KMS, another openkms as its remote XKS proxy); the KMS is also its own proxy."""
    made: list[tuple[Server, str | None]] = []
    for name in ("remote", "kms"):
        data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"xksc-{name}-{backend}-"))
        url = create_pg_database() if backend == "postgres" else None
        args = ["--xks-ca-bundle", str(made[0][0].ca_bundle)] if made else []
        made.append((_start(data_dir, url, *args), url))
    yield made[1][0], made[0][0]
    for server, url in made:
        server.stop()
        if url:
            drop_pg_database(url)


@pytest.fixture(scope="module")
def kms(servers: tuple[Server, Server]) -> Any:
    return servers[0].client("kms")


def keystore(proxy: Server) -> dict[str, str]:
    out: dict[str, str] = proxy.admin("create-xks-keystore", "--name", "ks-" + uuid.uuid4().hex[:10])
    return out


def xks_key(proxy: Server, store: dict[str, str], *args: str) -> str:
    key_id = "key-" + uuid.uuid4().hex[:10]
    proxy.admin(
        "create-xks-key", "--keystore", store["XksProxyUriPath"].split("/")[2], "--key-id", key_id, *args
    )
    return key_id


def create_store(kms: Any, endpoint: str, store: dict[str, str], **kw: Any) -> str:
    response = kms.create_custom_key_store(
        CustomKeyStoreName=kw.pop("name", "cks-" + uuid.uuid4().hex[:8]),
        CustomKeyStoreType="EXTERNAL_KEY_STORE",
        XksProxyUriEndpoint=endpoint,
        XksProxyUriPath=kw.pop("path", store["XksProxyUriPath"]),
        XksProxyAuthenticationCredential={
            "AccessKeyId": store["AccessKeyId"],
            "RawSecretAccessKey": kw.pop("secret", store["RawSecretAccessKey"]),
        },
        XksProxyConnectivity="PUBLIC_ENDPOINT",
        **kw,
    )
    store_id: str = response["CustomKeyStoreId"]
    return store_id


def describe(kms: Any, store_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = kms.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]
    return entry


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def endpoint_of(server: Server) -> str:
    return f"https://127.0.0.1:{server.port}"


@pytest.mark.parametrize("remote", [False, True], ids=["own-proxy", "other-openkms"])
def test_full_lifecycle_and_double_encryption(servers: tuple[Server, Server], kms: Any, remote: bool) -> None:
    server, other = servers
    proxy = other if remote else server
    store = keystore(proxy)
    store_id = create_store(kms, endpoint_of(proxy), store, name=f"lifecycle-{remote}-{uuid.uuid4().hex[:6]}")
    assert store_id.startswith("cks-") and len(store_id) == 21
    entry = describe(kms, store_id)
    assert entry["ConnectionState"] == "DISCONNECTED"
    assert entry["CustomKeyStoreType"] == "EXTERNAL_KEY_STORE"
    assert entry["XksProxyConfiguration"] == {
        "Connectivity": "PUBLIC_ENDPOINT",
        "AccessKeyId": store["AccessKeyId"],
        "UriEndpoint": endpoint_of(proxy),
        "UriPath": store["XksProxyUriPath"],
    }
    assert "RawSecretAccessKey" not in json.dumps(entry, default=str)
    external = xks_key(proxy, store)
    with pytest.raises(ClientError) as exc:  # a key only in a connected key store
        kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=store_id, XksKeyId=external)
    assert code(exc) == "CustomKeyStoreInvalidStateException"
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert describe(kms, store_id)["ConnectionState"] == "CONNECTED"
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)  # already connected: nothing to do

    md = kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=store_id, XksKeyId=external)[
        "KeyMetadata"
    ]
    assert (md["Origin"], md["CustomKeyStoreId"], md["XksKeyConfiguration"]) == (
        "EXTERNAL_KEY_STORE",
        store_id,
        {"Id": external},
    )
    key_id = md["KeyId"]
    described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert described["KeyState"] == "Enabled" and described["XksKeyConfiguration"] == {"Id": external}
    with pytest.raises(ClientError) as exc:
        kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=store_id, XksKeyId=external)
    assert code(exc) == "XksKeyAlreadyInUseException"

    context = {"purpose": "xks"}
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"held outside", EncryptionContext=context)["CiphertextBlob"]
    assert blob[0] == 2  # double encryption
    out = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
    assert out["Plaintext"] == b"held outside" and out["KeyId"].endswith(key_id)
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"purpose": "other"})
    assert code(exc) == "InvalidCiphertextException"
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]
    assert "Plaintext" not in kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=16)
    plain_key = kms.create_key()["KeyMetadata"]["KeyId"]
    moved = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=context, DestinationKeyId=plain_key)
    back = kms.re_encrypt(CiphertextBlob=moved["CiphertextBlob"], DestinationKeyId=key_id)
    assert kms.decrypt(CiphertextBlob=back["CiphertextBlob"])["Plaintext"] == b"held outside"
    with pytest.raises(ClientError) as exc:
        kms.enable_key_rotation(KeyId=key_id)
    assert code(exc) == "UnsupportedOperationException"

    # The external key is half of every ciphertext: disabled at the proxy, nothing decrypts.
    name = store["XksProxyUriPath"].split("/")[2]
    proxy.admin("update-xks-key", "--keystore", name, "--key-id", external, "--status", "DISABLED")
    for call in (
        lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext=context),
        lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == "KMSInvalidStateException"
        assert external in exc.value.response["Error"]["Message"]
    proxy.admin("update-xks-key", "--keystore", name, "--key-id", external, "--status", "ENABLED")
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"held outside"

    # A connected key store cannot be deleted, nor its endpoint changed.
    with pytest.raises(ClientError) as exc:
        kms.delete_custom_key_store(CustomKeyStoreId=store_id)
    assert code(exc) == "CustomKeyStoreInvalidStateException"
    with pytest.raises(ClientError) as exc:
        kms.update_custom_key_store(CustomKeyStoreId=store_id, XksProxyUriEndpoint=endpoint_of(proxy))
    assert code(exc) == "CustomKeyStoreInvalidStateException"
    renamed = f"renamed-{uuid.uuid4().hex[:6]}"
    kms.update_custom_key_store(CustomKeyStoreId=store_id, NewCustomKeyStoreName=renamed)
    assert (
        kms.describe_custom_key_stores(CustomKeyStoreName=renamed)["CustomKeyStores"][0]["CustomKeyStoreId"]
        == store_id
    )

    # Disconnected: its keys are Unavailable and cannot be used.
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    assert describe(kms, store_id)["ConnectionState"] == "DISCONNECTED"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Unavailable"
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
    assert code(exc) == "KMSInvalidStateException"
    with pytest.raises(ClientError) as exc:
        kms.delete_custom_key_store(CustomKeyStoreId=store_id)
    assert code(exc) == "CustomKeyStoreHasCMKsException"
    kms.update_custom_key_store(CustomKeyStoreId=store_id, XksProxyUriEndpoint=endpoint_of(proxy))
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"held outside"

    # A key store without keys is deleted once disconnected.
    empty = create_store(kms, endpoint_of(proxy), keystore(proxy))
    kms.delete_custom_key_store(CustomKeyStoreId=empty)
    with pytest.raises(ClientError) as exc:
        describe(kms, empty)
    assert code(exc) == "CustomKeyStoreNotFoundException"


def test_create_checks_the_proxy_and_refuses_what_aws_refuses(
    servers: tuple[Server, Server], kms: Any
) -> None:
    _server, other = servers
    store = keystore(other)
    bad = dict(store, RawSecretAccessKey=base64.b64encode(os.urandom(32)).decode())
    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            {"secret": bad["RawSecretAccessKey"]},
            endpoint_of(other),
            "XksProxyIncorrectAuthenticationCredentialException",
        ),
        (
            {"path": "/xks/no-such-store/kms/xks/v1"},
            endpoint_of(other),
            "XksProxyInvalidConfigurationException",
        ),
        ({}, f"https://127.0.0.1:{free_port()}", "XksProxyUriUnreachableException"),
    ]
    for kw, endpoint, expected in cases:
        with pytest.raises(ClientError) as exc:
            create_store(kms, endpoint, store, **kw)
        assert code(exc) == expected, exc.value.response
    with pytest.raises(ClientError) as exc:
        kms.create_custom_key_store(CustomKeyStoreName="hsm", CloudHsmClusterId="cluster-abcdefghijk")
    assert code(exc) == "UnsupportedOperationException" and "AWS_CLOUDHSM" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        create_store(
            kms,
            endpoint_of(other),
            store,
            XksProxyVpcEndpointServiceName="com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0",
        )
    assert code(exc) == "ValidationException"  # PUBLIC_ENDPOINT takes no VPC endpoint service
    with pytest.raises(ClientError) as exc:
        kms.create_custom_key_store(
            CustomKeyStoreName="vpc",
            CustomKeyStoreType="EXTERNAL_KEY_STORE",
            XksProxyUriEndpoint=endpoint_of(other),
            XksProxyUriPath=store["XksProxyUriPath"],
            XksProxyAuthenticationCredential={
                "AccessKeyId": store["AccessKeyId"],
                "RawSecretAccessKey": store["RawSecretAccessKey"],
            },
            XksProxyConnectivity="VPC_ENDPOINT_SERVICE",
            XksProxyVpcEndpointServiceName="com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0",
        )
    assert code(exc) == "XksProxyVpcEndpointServiceNotFoundException"
    name = "named-" + uuid.uuid4().hex[:6]
    store_id = create_store(kms, endpoint_of(other), store, name=name)
    with pytest.raises(ClientError) as exc:
        create_store(kms, endpoint_of(other), keystore(other), name=name)
    assert code(exc) == "CustomKeyStoreNameInUseException"
    with pytest.raises(ClientError) as exc:
        create_store(kms, endpoint_of(other), store)
    assert code(exc) == "XksProxyUriInUseException"

    # CreateKey checks the external key with GetKeyMetadata.
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    with pytest.raises(ClientError) as exc:
        kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=store_id, XksKeyId="no-such-key")
    assert code(exc) == "XksKeyNotFoundException"
    encrypt_only = xks_key(other, store, "--usage", "encrypt")
    with pytest.raises(ClientError) as exc:
        kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=store_id, XksKeyId=encrypt_only)
    assert code(exc) == "XksKeyInvalidConfigurationException"
    with pytest.raises(ClientError) as exc:
        kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId="cks-00000000000000000", XksKeyId="k")
    assert code(exc) == "CustomKeyStoreNotFoundException"

    # A credential the proxy no longer accepts: INVALID_CREDENTIALS when connecting.
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    other.admin(
        "rotate-xks-credential", "--name", store["XksProxyUriPath"].split("/")[2], "--grace-period", "0"
    )
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    entry = describe(kms, store_id)
    assert (entry["ConnectionState"], entry["ConnectionErrorCode"]) == ("FAILED", "INVALID_CREDENTIALS")
    with pytest.raises(ClientError) as exc:  # FAILED: disconnect first
        kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert code(exc) == "CustomKeyStoreInvalidStateException"


def test_describe_pages_and_the_aws_cli(servers: tuple[Server, Server], kms: Any) -> None:
    server, other = servers
    store = keystore(other)
    # AWS CLI v1 fetches a parameter that starts with https:// (cli_follow_urlparam): the endpoint goes
    # in --cli-input-json.
    out = server.aws(
        "kms", "create-custom-key-store",
        "--custom-key-store-name", "cli-" + uuid.uuid4().hex[:6],
        "--custom-key-store-type", "EXTERNAL_KEY_STORE",
        "--cli-input-json", json.dumps({"XksProxyUriEndpoint": endpoint_of(other)}),
        "--xks-proxy-uri-path", store["XksProxyUriPath"],
        "--xks-proxy-authentication-credential",
        f"AccessKeyId={store['AccessKeyId']},RawSecretAccessKey={store['RawSecretAccessKey']}",
        "--xks-proxy-connectivity", "PUBLIC_ENDPOINT",
    )  # fmt: skip
    store_id = json.loads(out.stdout)["CustomKeyStoreId"]
    listed = json.loads(
        server.aws("kms", "describe-custom-key-stores", "--custom-key-store-id", store_id).stdout
    )
    assert listed["CustomKeyStores"][0]["ConnectionState"] == "DISCONNECTED"
    for _ in range(2):
        create_store(kms, endpoint_of(other), keystore(other))
    seen: list[str] = []
    marker: dict[str, str] = {}
    while True:
        page = kms.describe_custom_key_stores(Limit=2, **marker)
        assert len(page["CustomKeyStores"]) <= 2
        seen += [s["CustomKeyStoreId"] for s in page["CustomKeyStores"]]
        if not page["Truncated"]:
            break
        marker = {"Marker": page["NextMarker"]}
    assert store_id in seen and len(seen) == len(set(seen)) >= 3
    with pytest.raises(ClientError) as exc:
        kms.describe_custom_key_stores(Marker="bogus")
    assert code(exc) == "InvalidMarkerException"


# --- a proxy of this test: well-behaved, slow, garbage, or gone ------------------------------------------


class FakeProxy:
    """A TLS server answering the XKS API (without checking signatures) under ``mode``."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.mode = "ok"
        self.material = AESGCM.generate_key(256)
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if fake.mode == "slow":
                    time.sleep(2)
                if fake.mode == "garbage":
                    self.wfile.write(b"\x00\x01 this is no HTTP\r\n\r\n")
                    return
                answer: dict[str, Any]
                status = 200
                if fake.mode == "bad-json":
                    payload = b"<html>not json</html>"
                else:
                    if self.path.endswith("/health"):
                        answer = {
                            "xksProxyFleetSize": 1,
                            "ekmFleetDetails": [{"id": "f", "healthStatus": "ACTIVE"}],
                        }
                    elif self.path.endswith("/metadata"):
                        answer = {
                            "keySpec": "AES_256",
                            "keyUsage": ["ENCRYPT", "DECRYPT"],
                            "keyStatus": "ENABLED",
                        }
                    elif self.path.endswith("/encrypt"):
                        iv = os.urandom(12)
                        aad = base64.b64decode(body.get("additionalAuthenticatedData", ""))
                        sealed = AESGCM(fake.material).encrypt(iv, base64.b64decode(body["plaintext"]), aad)
                        answer = {
                            "ciphertext": base64.b64encode(sealed[:-16]).decode(),
                            "initializationVector": base64.b64encode(iv).decode(),
                            "authenticationTag": base64.b64encode(sealed[-16:]).decode(),
                        }
                    else:
                        aad = base64.b64decode(body.get("additionalAuthenticatedData", ""))
                        data = base64.b64decode(body["ciphertext"]) + base64.b64decode(
                            body["authenticationTag"]
                        )
                        iv = base64.b64decode(body["initializationVector"])
                        answer = {
                            "plaintext": base64.b64encode(
                                AESGCM(fake.material).decrypt(iv, data, aad)
                            ).decode()
                        }
                    payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_slow_garbage_and_stopped_proxies(servers: tuple[Server, Server], kms: Any) -> None:
    server, _ = servers
    tls = server.data_dir / "tls"  # the KMS trusts its own CA: the fake proxy uses its certificate
    fake = FakeProxy(tls / "server.pem", tls / "server-key.pem")
    try:
        endpoint = f"https://127.0.0.1:{fake.port}"
        credential = {"AccessKeyId": "A" * 20, "RawSecretAccessKey": "s" * 43}
        store = {"XksProxyUriPath": "/kms/xks/v1", **credential}
        store_id = create_store(kms, endpoint, store)
        kms.connect_custom_key_store(CustomKeyStoreId=store_id)
        key_id = kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=store_id, XksKeyId="fake-1")[
            "KeyMetadata"
        ]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"fake")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"fake"

        for mode, connection_error in (
            ("slow", "XKS_PROXY_TIMED_OUT"),
            ("garbage", "XKS_PROXY_INVALID_RESPONSE"),
            ("bad-json", "XKS_PROXY_INVALID_RESPONSE"),
        ):
            fake.mode = mode
            started = time.monotonic()
            with pytest.raises(ClientError) as exc:
                kms.decrypt(CiphertextBlob=blob)
            assert code(exc) == "KMSInvalidStateException", mode
            assert connection_error in exc.value.response["Error"]["Message"]
            assert time.monotonic() - started < 1.5, mode  # the 250 ms timeout, not the proxy's 2 s
            kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
            kms.connect_custom_key_store(CustomKeyStoreId=store_id)
            entry = describe(kms, store_id)
            assert (entry["ConnectionState"], entry.get("ConnectionErrorCode")) == (
                "FAILED",
                connection_error,
            )
            fake.mode = "ok"
            kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
            kms.connect_custom_key_store(CustomKeyStoreId=store_id)
            assert describe(kms, store_id)["ConnectionState"] == "CONNECTED"
        fake.mode = "slow"
        started = time.monotonic()
        with pytest.raises(ClientError) as exc:
            create_store(kms, endpoint, dict(store, XksProxyUriPath="/other/kms/xks/v1"))
        assert code(exc) == "XksProxyUriUnreachableException"
        assert time.monotonic() - started < 1.5
        fake.mode = "ok"
    finally:
        fake.stop()
    with pytest.raises(ClientError) as exc:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code(exc) == "KMSInvalidStateException"
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    entry = describe(kms, store_id)
    assert (entry["ConnectionState"], entry["ConnectionErrorCode"]) == ("FAILED", "XKS_PROXY_NOT_REACHABLE")
