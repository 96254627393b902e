"""Trusted proxies: forwarding headers (``X-Forwarded-For``, ``X-Forwarded-Proto``, ``Forwarded``)
are ignored from any peer not in ``--trusted-proxies`` and honoured from one that is — for the
``aws:SourceIp`` and ``aws:SecureTransport`` conditions of a key policy, and the audit trail's
``sourceIPAddress``."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, launch
from tests.e2e.util import wait_for_audit

CLIENT_IP = "203.0.113.7"


def _policy(account: str) -> str:
    """The account administers the key; Encrypt only from CLIENT_IP over TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "NotAction": ["kms:Encrypt"],
                    "Resource": "*",
                },
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "kms:Encrypt",
                    "Resource": "*",
                    "Condition": {
                        "IpAddress": {"aws:SourceIp": f"{CLIENT_IP}/32"},
                        "Bool": {"aws:SecureTransport": "true"},
                    },
                },
            ],
        }
    )


def _start(workdir: Path, *args: str) -> Server:
    return launch(Path(tempfile.mkdtemp(dir=workdir, prefix="proxy-")), None, extra_args=list(args))


@pytest.fixture(scope="module")
def untrusting(workdir: Path) -> Iterator[Server]:
    server = _start(workdir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def behind_proxy(workdir: Path) -> Iterator[Server]:
    server = _start(workdir, "--trusted-proxies", "127.0.0.0/8,10.0.0.0/8")
    yield server
    server.stop()


def _client_with_headers(server: Server, headers: dict[str, str]) -> Any:
    kms = server.client()

    def add(request: Any, **_: Any) -> None:
        for name, value in headers.items():
            request.headers[name] = value

    kms.meta.events.register("before-sign.kms.*", add)
    return kms


FORGED = [
    {"X-Forwarded-For": CLIENT_IP, "X-Forwarded-Proto": "https"},
    {"Forwarded": f'for="{CLIENT_IP}";proto=https'},
    {"X-Forwarded-For": f"{CLIENT_IP}, 127.0.0.1", "X-Forwarded-Proto": "http, https"},
]


@pytest.mark.parametrize("headers", FORGED, ids=["x-forwarded", "forwarded", "chain"])
def test_forwarding_headers_from_an_untrusted_peer_are_ignored(
    untrusting: Server, headers: dict[str, str]
) -> None:
    kms = _client_with_headers(untrusting, headers)
    key = kms.create_key(Policy=_policy(untrusting.account_id))["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as denied:
        kms.encrypt(KeyId=key, Plaintext=b"x")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    request_id = denied.value.response["ResponseMetadata"]["RequestId"]
    records = wait_for_audit(
        untrusting, ("--event-name", "Encrypt"), lambda rs: any(r["requestID"] == request_id for r in rs)
    )
    record = next(r for r in records if r["requestID"] == request_id)
    assert record["sourceIPAddress"] == "127.0.0.1"


@pytest.mark.parametrize("headers", FORGED, ids=["x-forwarded", "forwarded", "chain"])
def test_forwarding_headers_from_a_trusted_proxy_are_honoured(
    behind_proxy: Server, headers: dict[str, str]
) -> None:
    kms = _client_with_headers(behind_proxy, headers)
    key = kms.create_key(Policy=_policy(behind_proxy.account_id))["KeyMetadata"]["KeyId"]
    response = kms.encrypt(KeyId=key, Plaintext=b"x")
    request_id = response["ResponseMetadata"]["RequestId"]
    records = wait_for_audit(
        behind_proxy, ("--event-name", "Encrypt"), lambda rs: any(r["requestID"] == request_id for r in rs)
    )
    record = next(r for r in records if r["requestID"] == request_id)
    assert record["sourceIPAddress"] == CLIENT_IP
    assert "errorCode" not in record


def test_a_trusted_proxy_cannot_be_used_to_forge_an_earlier_hop(behind_proxy: Server) -> None:
    # The client sends its own X-Forwarded-For naming CLIENT_IP; the proxy (10.1.1.1, trusted) appends
    # the address it saw (198.51.100.9). The rightmost untrusted hop is the client.
    kms = _client_with_headers(
        behind_proxy,
        {"X-Forwarded-For": f"{CLIENT_IP}, 198.51.100.9, 10.1.1.1", "X-Forwarded-Proto": "https"},
    )
    key = kms.create_key(Policy=_policy(behind_proxy.account_id))["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as denied:
        kms.encrypt(KeyId=key, Plaintext=b"x")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    request_id = denied.value.response["ResponseMetadata"]["RequestId"]
    records = wait_for_audit(
        behind_proxy, ("--event-name", "Encrypt"), lambda rs: any(r["requestID"] == request_id for r in rs)
    )
    assert next(r for r in records if r["requestID"] == request_id)["sourceIPAddress"] == "198.51.100.9"


def test_without_forwarded_proto_a_plain_connection_is_not_secure(behind_proxy: Server) -> None:
    kms = _client_with_headers(behind_proxy, {"X-Forwarded-For": CLIENT_IP})
    key = kms.create_key(Policy=_policy(behind_proxy.account_id))["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as denied:
        kms.encrypt(KeyId=key, Plaintext=b"x")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


def test_bad_trusted_proxies_refuse_to_start(workdir: Path) -> None:
    server = Server(
        data_dir=Path(tempfile.mkdtemp(dir=workdir, prefix="proxy-bad-")),
        database_url=None,
        extra_args=["--trusted-proxies", "10.0.0.0/33"],
    )
    with pytest.raises(RuntimeError, match="--trusted-proxies"):
        server.start()
