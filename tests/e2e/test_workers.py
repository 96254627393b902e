"""`openkms serve --workers N`: several processes on one port behave as one service — a key created
through one worker is usable through every other at once, and a change reaches every worker within a
second (on SQLite through the polled change table, on PostgreSQL through LISTEN/NOTIFY)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server


def fresh_clients(server: Server, n: int) -> list[Any]:
    """Clients with their own connections, so that requests land on different workers."""
    return [server.client() for _ in range(n)]


def test_workers_are_one_service(own_server: Server) -> None:
    own_server.extra_args = ["--workers", "2"]
    own_server.restart()
    kms = own_server.client()
    key = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"shared")["CiphertextBlob"]
    for client in fresh_clients(own_server, 8):
        assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"shared"
    warm = fresh_clients(own_server, 8)
    for client in warm:  # every worker now has the key in its cache
        client.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    kms.disable_key(KeyId=key["KeyId"])
    deadline = time.time() + 1.5
    pending = list(warm)
    while pending:
        client = pending[0]
        try:
            client.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "DisabledException"
            pending.pop(0)
            continue
        if time.time() > deadline:
            pytest.fail("a worker still used a disabled key after 1.5 s")
        time.sleep(0.05)


def test_workers_serve_the_edge_settings(workdir: Any) -> None:
    """TLS, trusted proxies and the limits reach every worker process (uvicorn's workers are spawned
    from a pickled configuration)."""
    import socket
    import tempfile
    from pathlib import Path

    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="workers-edge-"))
    server = Server(
        data_dir=data_dir,
        database_url=None,
        extra_args=["--workers", "2", "--tls-self-signed", "--max-headers", "20"],
    )
    server.ca_bundle = str(data_dir / "tls" / "ca.pem")
    server.start()
    try:
        creds = server.new_account()
        server.access_key, server.secret_key = creds["AccessKeyId"], creds["SecretAccessKey"]
        for client in fresh_clients(server, 6):
            assert client.list_keys()["Keys"] == []
        import ssl

        ctx = ssl.create_default_context(cafile=server.ca_bundle)
        for _ in range(4):  # on every worker: more than 20 headers is refused
            with (
                socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
                ctx.wrap_socket(raw, server_hostname="localhost") as sock,
            ):
                sock.sendall(
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                    + b"".join(b"X-%d: v\r\n" % i for i in range(30))
                    + b"\r\n"
                )
                assert sock.recv(100).startswith(b"HTTP/1.1 431 ")
    finally:
        server.stop()
