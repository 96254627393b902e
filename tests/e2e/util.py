"""Helpers shared by the end-to-end tests: AWS error capture, raw signed HTTP requests and the audit
trail read back through ``openkms audit list``."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import OPENKMS, REGION, Server

JSON_CT = "application/x-amz-json-1.1"

# Appendix A: the members every KeyMetadata carries.
ALWAYS_MEMBERS = frozenset(
    {
        "AWSAccountId",
        "KeyId",
        "Arn",
        "CreationDate",
        "Enabled",
        "Description",
        "KeyUsage",
        "KeyState",
        "Origin",
        "KeyManager",
        "KeySpec",
        "CustomerMasterKeySpec",
        "MultiRegion",
    }
)


@dataclass(frozen=True)
class AwsError:
    code: str
    message: str
    status: int


def aws_error(fn: Callable[..., Any], **kwargs: Any) -> AwsError:
    """Call a boto3 operation that must fail and return its error (fails the test if it succeeds)."""
    try:
        result = fn(**kwargs)
    except ClientError as exc:
        return AwsError(
            exc.response["Error"]["Code"],
            exc.response["Error"].get("Message", ""),
            exc.response["ResponseMetadata"]["HTTPStatusCode"],
        )
    raise AssertionError(f"expected an error, got {result!r}")


def members(response: dict[str, Any]) -> set[str]:
    """The members of a boto3 response, without ResponseMetadata."""
    return set(response) - {"ResponseMetadata"}


# --- raw HTTP ------------------------------------------------------------------------------------------


class DatedSigV4Auth(SigV4Auth):
    """botocore's signer with a chosen request time (to send stale or future X-Amz-Date values)."""

    def __init__(self, credentials: Credentials, service: str, region: str, when: dt.datetime) -> None:
        super().__init__(credentials, service, region)
        self._when = when

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self._when.strftime("%Y%m%dT%H%M%SZ")
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        self._inject_signature_to_request(request, self.signature(string_to_sign, request))


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_call(
    server: Server,
    operation: str,
    body: dict[str, Any] | bytes,
    *,
    target: str | None = None,
    region: str = REGION,
    service: str = "kms",
    access_key: str | None = None,
    secret_key: str | None = None,
    when: dt.datetime | None = None,
    sign: bool = True,
    mutate: Callable[[dict[str, str]], None] | None = None,
    body_after_signing: bytes | None = None,
) -> RawResponse:
    """POST one AWS JSON 1.1 request, signed with botocore's SigV4 signer unless ``sign`` is False.

    ``mutate`` edits the headers after signing; ``body_after_signing`` replaces the body that is sent.
    """
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {
        "Content-Type": JSON_CT,
        "X-Amz-Target": f"TrentService.{operation}" if target is None else target,
    }
    request = AWSRequest(method="POST", url=server.endpoint + "/", data=data, headers=headers)
    if sign:
        creds = Credentials(access_key or server.access_key, secret_key or server.secret_key)
        signer = (
            SigV4Auth(creds, service, region)
            if when is None
            else DatedSigV4Auth(creds, service, region, when)
        )
        signer.add_auth(request)
    sent = dict(request.headers.items())
    if mutate is not None:
        mutate(sent)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(
            "POST", "/", body=body_after_signing if body_after_signing is not None else data, headers=sent
        )
        resp = conn.getresponse()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


# --- audit trail ---------------------------------------------------------------------------------------


def audit_list(server: Server, *args: str) -> list[dict[str, Any]]:
    """``openkms audit list … --json`` on the server's data."""
    out = subprocess.run(
        [OPENKMS, "audit", "list", *server.data_args(), "--json", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    records = json.loads(out)
    assert isinstance(records, list)
    return records


def wait_for_audit(
    server: Server,
    args: tuple[str, ...],
    ready: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 5.0,
) -> list[dict[str, Any]]:
    """Poll the audit trail until ``ready(records)``; read-only calls are written asynchronously."""
    deadline = time.time() + timeout
    while True:
        records = audit_list(server, *args)
        if ready(records) or time.time() > deadline:
            return records
        time.sleep(0.1)


def by_request_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["requestID"]: r for r in records if "requestID" in r}


class NoAnswer(Exception):
    """The server did not answer in time, or closed the connection twice without answering."""


class KeepAlive:
    """Requests over one keep-alive HTTP connection, reopened when the server closes it (a request the
    closed connection lost is sent once more)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.count = 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """(status, headers as sent, body) of one request; raises :class:`NoAnswer`."""
        self.count += 1
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
            except TimeoutError:
                self.close()
                raise NoAnswer(f"no answer within {self.timeout:g} s") from None
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine) as exc:
                self.close()
                if attempt == 2:
                    raise NoAnswer(f"connection closed without an answer: {exc!r}") from None
                continue
            if response.will_close:
                self.close()
            return response.status, response.getheaders(), data
        raise AssertionError("unreachable")


def retry(fn: Callable[[], Any], within: float = 2.0) -> Any:
    """``fn()``, tried again for up to ``within`` seconds while it raises ClientError (a change still
    on its way through the change feed to the process that answers)."""
    deadline = time.time() + within
    while True:
        try:
            return fn()
        except ClientError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
