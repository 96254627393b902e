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
