"""A client of a server's own endpoints (``/sys/…``, ``/readyz``) for ``openkms operator``: plain JSON
over HTTP(S), signed with SigV4 (service ``kms``) where the server asks for it, with the AWS
credentials and region found the way the AWS CLI finds them (environment, shared files, profiles).

TLS is verified against the system's store, or ``ca_bundle`` (``--ca-bundle`` / ``AWS_CA_BUNDLE``).
Bodies are bounded both ways; nothing given (a share) is ever logged or put in an error.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

MAX_ANSWER = 64 * 1024
DEFAULT_REGION = "us-east-1"


class SysClientError(Exception):
    """The server could not be reached, or answered something that is not JSON."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def _context(url: str, ca_bundle: str | None) -> ssl.SSLContext | None:
    if not url.startswith("https:"):
        return None
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()


def _sign(request: AWSRequest) -> None:
    session = botocore.session.get_session()
    credentials = session.get_credentials()
    if credentials is None:
        raise SysClientError(
            "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)"
        )
    region = session.get_config_variable("region") or DEFAULT_REGION
    SigV4Auth(credentials.get_frozen_credentials(), "kms", region).add_auth(request)


def call(
    endpoint: str,
    method: str,
    path: str,
    document: dict[str, Any] | None = None,
    *,
    signed: bool = False,
    ca_bundle: str | None = None,
    timeout: float = 30.0,
) -> Answer:
    """``method endpoint+path`` with ``document`` as its JSON body; the status and the JSON answer."""
    if not endpoint.startswith(("http://", "https://")):
        raise SysClientError(f"the endpoint must be an http:// or https:// URL, not {endpoint[:100]!r}")
    url = endpoint.rstrip("/") + path
    body = json.dumps(document).encode() if document is not None else b""
    headers = {"content-type": "application/json"} if document is not None else {}
    if signed:
        aws = AWSRequest(method=method, url=url, data=body, headers=headers)
        _sign(aws)
        headers = dict(aws.headers.items())
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_context(url, ca_bundle)) as response:  # noqa: S310
            status, raw = response.status, response.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(MAX_ANSWER + 1)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SysClientError(f"cannot reach {endpoint}: {reason}") from None
    if len(raw) > MAX_ANSWER:
        raise SysClientError(f"{endpoint} answered more than {MAX_ANSWER} bytes")
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        raise SysClientError(
            f"{endpoint} did not answer JSON (HTTP {status}): is it an openkms server?"
        ) from None
    if not isinstance(value, dict):
        raise SysClientError(f"{endpoint} did not answer a JSON object (HTTP {status})")
    return Answer(status, value)
