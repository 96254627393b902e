"""Several `openkms serve` processes on one PostgreSQL database behave as one service: they share the
root key (``--root-key-file``), keys created on one are usable on the other at once, and state changes
reach the other's caches within a second."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import OPENKMS, Server, create_pg_database, drop_pg_database, launch


@pytest.fixture
def two_nodes(workdir: Path) -> Iterator[tuple[Server, Server]]:
    url = create_pg_database()
    first = launch(Path(tempfile.mkdtemp(dir=workdir, prefix="node-a-")), url)
    second = Server(
        data_dir=Path(tempfile.mkdtemp(dir=workdir, prefix="node-b-")),
        database_url=url,
        extra_args=["--root-key-file", str(first.data_dir / "root.key")],
    )
    second.start()
    second.account_id, second.access_key, second.secret_key = (
        first.account_id,
        first.access_key,
        first.secret_key,
    )
    yield first, second
    second.stop()
    first.stop()
    drop_pg_database(url)


def eventually(check: Any, within: float = 1.0) -> float:
    """Poll ``check`` until it passes; returns how long it took (must be within ``within`` seconds)."""
    start = time.time()
    while True:
        try:
            check()
            return time.time() - start
        except (AssertionError, ClientError, pytest.fail.Exception):
            if time.time() - start > within:
                raise
            time.sleep(0.02)


def test_two_processes_are_one_service(two_nodes: tuple[Server, Server]) -> None:
    a, b = (node.client() for node in two_nodes)
    key = a.create_key(Description="made on node a")["KeyMetadata"]
    # Usable on the other node at once (and its cache is now warm).
    blob = a.encrypt(KeyId=key["KeyId"], Plaintext=b"shared")["CiphertextBlob"]
    assert b.decrypt(CiphertextBlob=blob)["Plaintext"] == b"shared"
    b.create_alias(AliasName="alias/multinode", TargetKeyId=key["KeyId"])
    assert a.describe_key(KeyId="alias/multinode")["KeyMetadata"]["KeyId"] == key["KeyId"]

    # DisableKey on node a takes effect on node b within a second, with its warm cache.
    a.disable_key(KeyId=key["KeyId"])

    def refused_on_b() -> None:
        with pytest.raises(ClientError) as exc:
            b.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
        assert exc.value.response["Error"]["Code"] == "DisabledException"

    eventually(refused_on_b)
    b.enable_key(KeyId=key["KeyId"])
    eventually(lambda: a.encrypt(KeyId=key["KeyId"], Plaintext=b"x"))

    # Alias retargeting and deletion scheduling propagate too.
    other = b.create_key()["KeyMetadata"]
    a.encrypt(KeyId="alias/multinode", Plaintext=b"warm")
    b.update_alias(AliasName="alias/multinode", TargetKeyId=other["KeyId"])

    def alias_moved() -> None:
        out = a.encrypt(KeyId="alias/multinode", Plaintext=b"x")
        assert out["KeyId"] == other["Arn"]

    eventually(alias_moved)
    b.schedule_key_deletion(KeyId=other["KeyId"], PendingWindowInDays=7)

    def pending_on_a() -> None:
        with pytest.raises(ClientError) as exc:
            a.encrypt(KeyId=other["KeyId"], Plaintext=b"x")
        assert exc.value.response["Error"]["Code"] == "KMSInvalidStateException"

    eventually(pending_on_a)


def test_new_access_key_is_usable_on_every_node_at_once(two_nodes: tuple[Server, Server]) -> None:
    first, second = two_nodes
    account = first.new_account()
    kms = second.client(access_key=account["AccessKeyId"], secret_key=account["SecretAccessKey"])
    assert kms.list_keys()["Keys"] == []
    kms.create_key()
    # Deleting the access key locks it out of both nodes within a second.
    subprocess.run(
        [
            OPENKMS,
            "admin",
            "delete-access-key",
            "--access-key-id",
            account["AccessKeyId"],
            *first.data_args(),
        ],
        check=True,
    )

    def locked_out() -> None:
        with pytest.raises(ClientError) as exc:
            kms.list_keys()
        assert exc.value.response["Error"]["Code"] == "UnrecognizedClientException"

    eventually(locked_out)
