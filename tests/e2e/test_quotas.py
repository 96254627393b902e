"""Request quotas: a burst over a configured quota gets ThrottlingException (HTTP 400, AWS's message,
recorded in the caller's audit trail); boto3's standard retries complete every call; other accounts
and other quota groups are not throttled; ``aws-default`` applies AWS's values; a bad document
refuses to start."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, launch
from tests.e2e.util import raw_call, wait_for_audit

NO_RETRY = {"mode": "standard", "total_max_attempts": 1}  # (max_attempts counts retries: 1 retries once)
MESSAGE = "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."


@pytest.fixture(scope="module")
def quota_server(workdir: Path) -> Iterator[Server]:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="quotas-"))
    quotas = data_dir.parent / f"{data_dir.name}-quotas.toml"
    quotas.write_text(
        "[quotas]\nDescribeKey = 2\ncryptographic_symmetric = 3\nGetKeyRotationStatus = 5\nListKeys = 1000\n"
    )
    server = launch(data_dir, None, extra_args=["--request-quotas", str(quotas)])
    yield server
    server.stop()


@dataclass
class Burst:
    ok: int
    throttled: list[ClientError]
    seconds: float

    def admitted_at_most(self, rate: float) -> bool:
        """No more calls succeeded than a bucket of one second at ``rate`` allows in the time taken."""
        return self.ok <= max(rate, 1.0) + rate * self.seconds + 1


def _burst(fn: Any, count: int, threads: int = 8) -> Burst:
    """``count`` calls of ``fn`` from ``threads`` threads at once."""
    ok, throttled = 0, []
    lock = threading.Lock()

    def one(_: int) -> None:
        nonlocal ok
        try:
            fn()
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ThrottlingException":
                raise
            with lock:
                throttled.append(exc)
        else:
            with lock:
                ok += 1

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return Burst(ok, throttled, time.monotonic() - started)


def test_a_burst_over_the_quota_is_throttled_with_aws_answer(quota_server: Server) -> None:
    kms = quota_server.client(retries=NO_RETRY)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    burst = _burst(lambda: kms.describe_key(KeyId=key), 40)
    assert burst.ok >= 2 and burst.admitted_at_most(2), burst
    assert burst.throttled
    error = burst.throttled[0].response
    assert error["Error"]["Message"] == MESSAGE
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    request_id = error["ResponseMetadata"]["RequestId"]
    records = wait_for_audit(
        quota_server,
        ("--event-name", "DescribeKey"),
        lambda rs: any(r["requestID"] == request_id for r in rs),
    )
    record = next(r for r in records if r["requestID"] == request_id)
    assert record["errorCode"] == "ThrottlingException"
    assert record["errorMessage"] == MESSAGE


def test_raw_throttled_answer_is_aws_json(quota_server: Server) -> None:
    answers = [raw_call(quota_server, "DescribeKey", {"KeyId": "alias/none"}) for _ in range(30)]
    throttled = [a for a in answers if a.status == 400 and a.json()["__type"] == "ThrottlingException"]
    assert throttled
    assert throttled[0].json() == {"__type": "ThrottlingException", "message": MESSAGE}


def test_boto3_standard_retries_complete_every_call(quota_server: Server) -> None:
    kms = quota_server.client(retries={"mode": "standard", "max_attempts": 20})
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    burst = _burst(lambda: kms.get_key_rotation_status(KeyId=key), 20)
    assert burst.ok == 20 and not burst.throttled


def test_other_accounts_and_other_groups_are_not_throttled(quota_server: Server) -> None:
    kms = quota_server.client(retries=NO_RETRY)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    ecc = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    other = quota_server.new_account()
    other_kms = quota_server.client(
        access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"], retries=NO_RETRY
    )
    other_key = other_kms.create_key()["KeyMetadata"]["KeyId"]
    burst = _burst(lambda: kms.encrypt(KeyId=key, Plaintext=b"x"), 40)
    assert burst.throttled and burst.admitted_at_most(3)  # this account's symmetric budget is spent
    # ECC keys have a budget of their own (not configured here: unlimited)...
    for _ in range(5):
        kms.sign(KeyId=ecc, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    # ...ListKeys too, and the other account's symmetric budget is whole.
    assert kms.list_keys()["Keys"]
    for _ in range(3):
        other_kms.encrypt(KeyId=other_key, Plaintext=b"x")


def test_aws_default_profile_applies_aws_values(workdir: Path) -> None:
    server = launch(
        Path(tempfile.mkdtemp(dir=workdir, prefix="quotas-aws-")),
        None,
        extra_args=["--request-quotas", "aws-default"],
    )
    try:
        kms = server.client(retries=NO_RETRY)
        key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        params = {"KeyId": key, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}
        kms.get_parameters_for_import(**params)  # AWS's quota: 1 per second
        with pytest.raises(ClientError) as throttled:
            kms.get_parameters_for_import(**params)
        assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
        assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    finally:
        server.stop()


@pytest.mark.parametrize(
    "document",
    [
        "[quotas]\nNoSuchOperation = 5\n",
        "[quotas]\nCreateKey = -1\n",
        "[quotas]\nCreateKey = 'fast'\n",
        '{"quotas": {"CreateKey": 5}, "other": 1}',
        "not toml at all = = =",
    ],
)
def test_a_bad_quotas_document_refuses_to_start(workdir: Path, document: str) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="quotas-bad-"))
    path = data_dir.parent / f"{data_dir.name}.toml"
    path.write_text(document)
    server = Server(data_dir=data_dir, database_url=None, extra_args=["--request-quotas", str(path)])
    with pytest.raises(RuntimeError, match="--request-quotas"):
        server.start()


def test_json_document_with_processes_shares_the_budget(workdir: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="quotas-json-"))
    path = data_dir.parent / f"{data_dir.name}.json"
    path.write_text(json.dumps({"processes": 2, "quotas": {"DescribeKey": 4}}))
    server = launch(data_dir, None, extra_args=["--request-quotas", str(path)])
    try:
        kms = server.client(retries=NO_RETRY)
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        burst = _burst(lambda: kms.describe_key(KeyId=key), 40)
        assert burst.throttled and burst.admitted_at_most(2)  # this process holds half of 4/s
    finally:
        server.stop()
