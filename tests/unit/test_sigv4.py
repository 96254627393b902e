"""Tests for SigV4 verification: botocore's own signer is the oracle, plus AWS's get-vanilla vector.

Each request is signed by ``botocore.auth.SigV4Auth`` exactly as boto3 signs a KMS call, turned into
the raw ASGI form the server sees, and checked by parse_authorization -> check_scope ->
SigningKeyCache -> verify_signature. Then one part at a time is changed and the exact error class and
message are asserted.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from openkms.auth.sigv4 import (
    MSG_HOST_NOT_SIGNED,
    MSG_SIGNATURE_MISMATCH,
    Credential,
    SigningKeyCache,
    check_scope,
    derive_signing_key,
    parse_authorization,
    verify_signature,
)
from openkms.crypto.secret import Secret
from openkms.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    ServiceError,
)

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # noqa: S105 (AWS's documented example key)
OTHER_SECRET = "another-secret-key"  # noqa: S105
REGION = "us-east-1"
ENDPOINT = "https://kms.us-east-1.amazonaws.com/"
KMS_BODY = json.dumps({"KeyId": "alias/my-key", "Plaintext": "aGVsbG8="}).encode()
KMS_HEADERS = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.Encrypt"}
ISO = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Raw:
    """A request as the ASGI server hands it over."""

    method: str
    path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes:
        return next(v for k, v in self.headers if k == name)

    def with_header(self, name: bytes, value: bytes | None) -> Raw:
        """A copy with header ``name`` replaced by ``value`` (removed if None)."""
        headers = [(k, v) for k, v in self.headers if k != name]
        if value is not None:
            headers.append((name, value))
        return replace(self, headers=headers)


def sign(
    *,
    method: str = "POST",
    url: str = ENDPOINT,
    body: bytes = KMS_BODY,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    token: str | None = None,
    region: str = REGION,
    service: str = "kms",
    secret: str = SECRET,
    unsigned: frozenset[str] = frozenset(),
) -> Raw:
    """Sign with botocore as boto3 does and return the request as it arrives on the wire; the headers
    named in ``unsigned`` (lowercased) are sent but left out of the signature."""
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers=dict(KMS_HEADERS if headers is None else headers),
        params=params,
    )
    signer = SigV4Auth if not unsigned else _leaving_out(unsigned)
    signer(Credentials(AKID, secret, token), service, region).add_auth(request)
    prepared = request.prepare()
    split = urlsplit(prepared.url)
    wire = [(b"host", split.netloc.encode())]
    for name, value in prepared.headers.items():
        wire.append(
            (name.lower().encode("latin-1"), value if isinstance(value, bytes) else value.encode("latin-1"))
        )
    wire.append((b"user-agent", b"Boto3/1.43.11 md/Botocore#1.43.11 (not signed)"))
    return Raw(method, split.path.encode(), split.query.encode(), wire, prepared.body or b"")


def _leaving_out(names: frozenset[str]) -> type[SigV4Auth]:
    """botocore's signer, signing every header it would except ``names``."""

    class Partial(SigV4Auth):
        def headers_to_sign(self, request: AWSRequest) -> Any:
            headers = super().headers_to_sign(request)
            for name in names:
                del headers[name]
            return headers

    return Partial


def epoch(amz_date: str) -> float:
    return float(calendar.timegm(time.strptime(amz_date, ISO)))


def iso(moment: float) -> str:
    return time.strftime(ISO, time.gmtime(moment))


def as_mapping(raw: Raw) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in raw.headers}


def authenticate(
    raw: Raw,
    *,
    now: float | None = None,
    secret: str = SECRET,
    service: str = "kms",
    region_ok: Callable[[str], bool] = lambda region: region == REGION,
) -> Credential:
    """The server's whole check, in the order the server runs it."""
    cred = parse_authorization(as_mapping(raw))
    check_scope(
        cred, service=service, region_ok=region_ok, now=epoch(cred.amz_date) + 3 if now is None else now
    )
    key = SigningKeyCache().prepared_key(cred.access_key_id, secret, cred.date, cred.region, cred.service)
    verify_signature(
        cred,
        method=raw.method,
        raw_path=raw.path,
        query_string=raw.query,
        headers=raw.headers,
        body=raw.body,
        signing_key=key,
    )
    return cred


def raises(cls: type[ServiceError], message: str, action: Callable[[], object]) -> None:
    with pytest.raises(ServiceError) as info:
        action()
    assert type(info.value) is cls
    assert info.value.message == message


def with_authorization(raw: Raw, old: str, new: str) -> Raw:
    auth = raw.header(b"authorization").decode()
    assert old in auth
    return raw.with_header(b"authorization", auth.replace(old, new).encode())


# --- Requests that must verify ---------------------------------------------------------------------


def test_boto3_kms_request_verifies() -> None:
    raw = sign()
    cred = authenticate(raw)
    assert cred.access_key_id == AKID
    assert (cred.region, cred.service) == (REGION, "kms")
    assert cred.signed_headers == ("content-type", "host", "x-amz-date", "x-amz-target")
    assert cred.amz_date == raw.header(b"x-amz-date").decode()
    assert cred.date == cred.amz_date[:8]
    assert cred.security_token is None


class _Captured(Exception):
    """Raised by a botocore hook to stop a real client before it touches the network."""

    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _capture(request: Any, **_: Any) -> None:
    raise _Captured(request)


@pytest.mark.parametrize("token", [None, "IQoJb3JpZ2luX2VjEXAMPLE=="])
def test_real_boto3_kms_client_request_verifies(token: str | None) -> None:
    """What boto3's KMS client really sends (all its headers, http endpoint with a port)."""
    client = boto3.session.Session().client(
        "kms",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:4599",
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
    )
    client.meta.events.register("before-send.kms", _capture)
    with pytest.raises(_Captured) as info:
        client.encrypt(KeyId="alias/my-key", Plaintext=b"hello", EncryptionContext={"purpose": "test"})
    sent = info.value.request
    split = urlsplit(sent.url)
    wire = [(b"host", split.netloc.encode())]
    for name, value in sent.headers.items():
        wire.append((name.lower().encode(), value if isinstance(value, bytes) else value.encode()))
    cred = authenticate(Raw(sent.method, split.path.encode(), split.query.encode(), wire, sent.body))
    assert cred.security_token == (Secret(token) if token is not None else None)
    assert "x-amz-target" in cred.signed_headers


def test_session_token_request_verifies_and_is_not_in_repr() -> None:
    token = "FQoGZXIvYXdzEXAMPLETOKEN//////////wEaDPv5GPAhRW8pw6/oaSKmAbHnWRLXHaCLCAlEXAMPLE"  # noqa: S105
    cred = authenticate(sign(token=token))
    assert cred.security_token == Secret(token)
    assert "x-amz-security-token" in cred.signed_headers
    assert token not in repr(cred)


def test_path_and_query_in_url_verify() -> None:
    url = (
        "https://kms.us-east-1.amazonaws.com/a/./b//c/../d%20e/%E1%88%B4/?z=1&b=%2Fx&a=2&a=1&k%20x=v~w&empty="
    )
    raw = sign(method="GET", url=url, body=b"")
    assert raw.path == b"/a/./b//c/../d%20e/%E1%88%B4/"
    authenticate(raw)


def test_query_params_with_spaces_and_unicode_verify() -> None:
    raw = sign(method="GET", body=b"", params={"Name": "a b+c", "Ünï": "✓", "Marker": "x/y=z"})
    assert b"+" in raw.query  # the wire form spells a space as '+', the signer as %20
    authenticate(raw)


def test_date_header_instead_of_x_amz_date_verifies() -> None:
    headers = dict(KMS_HEADERS, Date="Mon, 01 Jan 2001 00:00:00 GMT")  # botocore rewrites it to now
    raw = sign(headers=headers)
    assert all(name != b"x-amz-date" for name, _ in raw.headers)
    cred = authenticate(raw)
    assert len(cred.amz_date) == 16 and cred.amz_date.endswith("Z")
    assert "date" in cred.signed_headers


def test_header_values_are_trimmed_and_repeated_headers_joined() -> None:
    # botocore signs one "x-amz-meta-tags" header "a b,c d"; the wire carries it twice, with extra spaces.
    raw = sign(headers=dict(KMS_HEADERS, **{"X-Amz-Meta-Tags": "a b,c d"}))
    spaced = raw.with_header(b"x-amz-meta-tags", None)
    spaced = replace(
        spaced, headers=[*spaced.headers, (b"x-amz-meta-tags", b"  a   b "), (b"x-amz-meta-tags", b"c \t d")]
    )
    authenticate(spaced)
    assert "x-amz-meta-tags" in parse_authorization(as_mapping(raw)).signed_headers


def test_content_sha256_header_matching_the_body_verifies() -> None:
    raw = sign(headers=dict(KMS_HEADERS, **{"X-Amz-Content-SHA256": hashlib.sha256(KMS_BODY).hexdigest()}))
    authenticate(raw)


def test_aws_test_suite_get_vanilla() -> None:
    """aws-sig-v4-test-suite/get-vanilla: checks canonicalisation independently of botocore."""
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )
    headers = [(b"host", b"example.amazonaws.com"), (b"x-amz-date", b"20150830T123600Z")]
    raw = Raw("GET", b"/", b"", [*headers, (b"authorization", auth.encode())], b"")
    cred = authenticate(raw, service="service", now=epoch("20150830T123600Z"))
    assert cred.signature.startswith("5fa00fa3")
    # and the same request with any other secret fails
    raises(
        InvalidSignatureException,
        MSG_SIGNATURE_MISMATCH,
        lambda: authenticate(raw, service="service", now=epoch("20150830T123600Z"), secret=SECRET[:-1]),
    )


# --- One changed part: the signature no longer matches ---------------------------------------------


def _flip_body(raw: Raw) -> Raw:
    return replace(raw, body=raw.body[:-2] + bytes([raw.body[-2] ^ 1]) + raw.body[-1:])


MISMATCHES: dict[str, Callable[[Raw], Raw]] = {
    "body byte": _flip_body,
    "signed header value": lambda r: r.with_header(b"x-amz-target", b"TrentService.Decrypt"),
    "signed header missing": lambda r: r.with_header(b"x-amz-target", None),
    "host": lambda r: r.with_header(b"host", b"kms.us-east-2.amazonaws.com"),
    "method": lambda r: replace(r, method="PUT"),
    "path": lambda r: replace(r, path=b"/x"),
    "query": lambda r: replace(r, query=b"a=1"),
    "signature": lambda r: with_authorization(r, "Signature=", "Signature=0"),
}


@pytest.mark.parametrize("change", MISMATCHES)
def test_changed_part_is_a_signature_mismatch(change: str) -> None:
    raw = MISMATCHES[change](sign())
    raises(InvalidSignatureException, MSG_SIGNATURE_MISMATCH, lambda: authenticate(raw))


def test_changed_query_value_is_a_signature_mismatch() -> None:
    raw = sign(method="GET", url=ENDPOINT + "?a=1&b=2", body=b"")
    authenticate(raw)
    raises(
        InvalidSignatureException,
        MSG_SIGNATURE_MISMATCH,
        lambda: authenticate(replace(raw, query=b"a=1&b=3")),
    )


def test_wrong_secret_is_a_signature_mismatch() -> None:
    raw = sign(secret=OTHER_SECRET)
    raises(InvalidSignatureException, MSG_SIGNATURE_MISMATCH, lambda: authenticate(raw))


def test_body_changed_under_a_signed_content_sha256_is_a_signature_mismatch() -> None:
    raw = sign(headers=dict(KMS_HEADERS, **{"X-Amz-Content-SHA256": hashlib.sha256(KMS_BODY).hexdigest()}))
    raises(InvalidSignatureException, MSG_SIGNATURE_MISMATCH, lambda: authenticate(_flip_body(raw)))
    # an unsigned claim about the body is refused (every x-amz-* header must be signed)
    claim = hashlib.sha256(b"other").hexdigest().encode()
    raises(
        InvalidSignatureException,
        "'X-Amz-Content-Sha256' must be a 'SignedHeader' in the AWS Authorization.",
        lambda: authenticate(sign().with_header(b"x-amz-content-sha256", claim)),
    )


def test_unsigned_payload_is_not_accepted() -> None:
    raw = sign(headers=dict(KMS_HEADERS, **{"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}))
    raises(InvalidSignatureException, MSG_SIGNATURE_MISMATCH, lambda: authenticate(raw))


# --- Headers that must be signed ------------------------------------------------------------------

TOKEN = "FQoGZXIvYXdzEXAMPLETOKEN//////////wEaDPv5GPAhRW8pw6/oaSKmAbHnWRLXHaCLCAlEXAMPLE"  # noqa: S105


def _not_signed(name: str) -> str:
    return f"'{name}' must be a 'SignedHeader' in the AWS Authorization."


def _date_only() -> dict[str, str]:
    return dict(KMS_HEADERS, Date="Mon, 01 Jan 2001 00:00:00 GMT")  # botocore rewrites it to now


# (label, how the request is made) -> the header AWS's message names
MUST_BE_SIGNED: dict[str, tuple[Callable[[], Raw], str]] = {
    "X-Amz-Target": (lambda: sign(unsigned=frozenset({"x-amz-target"})), "X-Amz-Target"),
    "X-Amz-Date": (lambda: sign(unsigned=frozenset({"x-amz-date"})), "X-Amz-Date"),
    "X-Amz-Security-Token": (
        lambda: sign(token=TOKEN, unsigned=frozenset({"x-amz-security-token"})),
        "X-Amz-Security-Token",
    ),
    "X-Amz-Content-SHA256": (
        lambda: sign(
            headers=dict(KMS_HEADERS, **{"X-Amz-Content-SHA256": hashlib.sha256(KMS_BODY).hexdigest()}),
            unsigned=frozenset({"x-amz-content-sha256"}),
        ),
        "X-Amz-Content-Sha256",
    ),
    "a custom x-amz-foo": (
        lambda: sign(headers=dict(KMS_HEADERS, **{"X-Amz-Foo": "1"}), unsigned=frozenset({"x-amz-foo"})),
        "X-Amz-Foo",
    ),
    "an x-amz-* header added after signing": (lambda: sign().with_header(b"x-amz-foo", b"1"), "X-Amz-Foo"),
    "an empty x-amz-* header added after signing": (lambda: sign().with_header(b"x-amz-x", b""), "X-Amz-X"),
    "Date, when it gives the request time": (
        lambda: sign(headers=_date_only(), unsigned=frozenset({"date"})),
        "Date",
    ),
    "several: the first by name": (
        lambda: sign(
            headers=dict(KMS_HEADERS, **{"X-Amz-Foo": "1"}),
            unsigned=frozenset({"x-amz-target", "x-amz-foo", "x-amz-date"}),
        ),
        "X-Amz-Date",
    ),
    "Date before any x-amz-*": (
        lambda: sign(headers=_date_only(), unsigned=frozenset({"date", "x-amz-target"})),
        "Date",
    ),
}


@pytest.mark.parametrize("case", MUST_BE_SIGNED)
def test_a_header_that_must_be_signed_but_is_not(case: str) -> None:
    make, name = MUST_BE_SIGNED[case]
    raises(InvalidSignatureException, _not_signed(name), lambda: authenticate(make()))


def test_host_is_reported_before_the_other_unsigned_headers() -> None:
    raw = sign(unsigned=frozenset({"host", "x-amz-target"}))
    raises(InvalidSignatureException, MSG_HOST_NOT_SIGNED, lambda: authenticate(raw))


def test_unsigned_target_cannot_be_changed() -> None:
    """The review's case: signed over host;x-amz-date only, then DescribeKey turned into DisableKey."""
    raw = sign(
        headers=dict(KMS_HEADERS, **{"X-Amz-Target": "TrentService.DescribeKey"}),
        unsigned=frozenset({"content-type", "x-amz-target"}),
    )
    for target in (b"TrentService.DescribeKey", b"TrentService.DisableKey"):
        tampered = raw.with_header(b"x-amz-target", target)
        raises(InvalidSignatureException, _not_signed("X-Amz-Target"), lambda r=tampered: authenticate(r))


# headers AWS lets a client leave unsigned; changing them changes nothing this service reads
MAY_BE_UNSIGNED: dict[str, Callable[[], Raw]] = {
    "Content-Type": lambda: sign(unsigned=frozenset({"content-type"})),
    "Content-Type changed after signing": lambda: sign(unsigned=frozenset({"content-type"})).with_header(
        b"content-type", b"application/x-www-form-urlencoded"
    ),
    "User-Agent": lambda: sign().with_header(b"user-agent", b"other"),
    "X-Amzn-Trace-Id": lambda: sign().with_header(
        b"x-amzn-trace-id", b"Root=1-5759e988-bd862e3fe1be46a994272793"
    ),
    "Date beside a signed X-Amz-Date": lambda: sign().with_header(b"date", b"Mon, 01 Jan 2001 00:00:00 GMT"),
}


@pytest.mark.parametrize("case", MAY_BE_UNSIGNED)
def test_a_header_that_may_be_unsigned(case: str) -> None:
    authenticate(MAY_BE_UNSIGNED[case]())


# --- Scope and time --------------------------------------------------------------------------------


def test_region_not_served_here() -> None:
    raw = sign(region="eu-west-1")
    raises(
        InvalidSignatureException,
        "Credential should be scoped to a valid region. ",
        lambda: authenticate(raw),
    )


def test_wrong_service() -> None:
    raw = sign(service="dynamodb")
    raises(
        InvalidSignatureException,
        "Credential should be scoped to correct service: 'kms'. ",
        lambda: authenticate(raw),
    )


def test_scope_date_differs_from_request_date() -> None:
    raw = sign()
    amz = raw.header(b"x-amz-date").decode()
    raw = with_authorization(raw, f"/{amz[:8]}/", "/20000101/")
    raises(
        InvalidSignatureException,
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        f"'20000101' != '{amz[:8]}', from '{amz}'.",
        lambda: authenticate(raw),
    )


def test_all_scope_faults_are_reported_together() -> None:
    raw = with_authorization(sign(region="mars-1", service="s3"), "/mars-1/s3/", "/mars-1/s3/")
    amz = raw.header(b"x-amz-date").decode()
    raw = with_authorization(raw, f"/{amz[:8]}/", "/19991231/")
    raises(
        InvalidSignatureException,
        "Credential should be scoped to a valid region. "
        "Credential should be scoped to correct service: 'kms'. "
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        f"'19991231' != '{amz[:8]}', from '{amz}'.",
        lambda: authenticate(raw),
    )


def test_request_16_minutes_old_is_expired() -> None:
    raw = sign()
    amz = raw.header(b"x-amz-date").decode()
    now = epoch(amz) + 16 * 60
    raises(
        InvalidSignatureException,
        f"Signature expired: {amz} is now earlier than {iso(now - 900)} ({iso(now)} - 15 min.)",
        lambda: authenticate(raw, now=now),
    )


def test_request_16_minutes_ahead_is_not_yet_current() -> None:
    raw = sign()
    amz = raw.header(b"x-amz-date").decode()
    now = epoch(amz) - 16 * 60
    raises(
        InvalidSignatureException,
        f"Signature not yet current: {amz} is still later than {iso(now + 900)} ({iso(now)} + 15 min.)",
        lambda: authenticate(raw, now=now),
    )


def test_request_within_15_minutes_either_way_verifies() -> None:
    raw = sign()
    amz = raw.header(b"x-amz-date").decode()
    authenticate(raw, now=epoch(amz) + 900)
    authenticate(raw, now=epoch(amz) - 900)


def _cred(amz_date: str = "20261129T010000Z") -> Credential:
    return Credential(AKID, "20261129", REGION, "kms", ("host", "x-amz-date"), "00", amz_date, None)


def test_time_messages_word_for_word() -> None:
    def scope(cred: Credential, now: str) -> None:
        check_scope(cred, service="kms", region_ok=lambda r: True, now=epoch(now))

    raises(
        InvalidSignatureException,
        "Signature expired: 20261129T010000Z is now earlier than 20261129T014500Z "
        "(20261129T020000Z - 15 min.)",
        lambda: scope(_cred(), "20261129T020000Z"),
    )
    raises(
        InvalidSignatureException,
        "Signature not yet current: 20261129T010000Z is still later than 20261129T003000Z "
        "(20261129T001500Z + 15 min.)",
        lambda: scope(_cred(), "20261129T001500Z"),
    )
    raises(
        IncompleteSignatureException,
        "Date must be in ISO-8601 'basic format'. Got '2026-11-29T01:00:00Z'. See http://en.wikipedia.org/wiki/ISO_8601",
        lambda: scope(_cred(amz_date="2026-11-29T01:00:00Z"), "20261129T010000Z"),
    )


# --- Malformed Authorization headers ---------------------------------------------------------------

GOOD_AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=abcdef0123"
)
REQUIRES = {
    "C": "Authorization header requires 'Credential' parameter.",
    "S": "Authorization header requires 'Signature' parameter.",
    "H": "Authorization header requires 'SignedHeaders' parameter.",
    "D": "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
}


def _requires(codes: str, auth: str) -> str:
    return " ".join(REQUIRES[c] for c in codes) + " Authorization=" + auth


MALFORMED: list[tuple[str | None, dict[str, str], type[ServiceError], str]] = [
    (None, {}, MissingAuthenticationTokenException, "Missing Authentication Token"),
    ("", {}, MissingAuthenticationTokenException, "Missing Authentication Token"),
    ("X", {}, IncompleteSignatureException, _requires("CSHD", "X")),
    (
        "Basic Og==",
        {"x-amz-date": "20150830T123600Z"},
        IncompleteSignatureException,
        _requires("CSH", "Basic Og=="),
    ),
    (
        "Bearer eyJhbGciOi",
        {},
        IncompleteSignatureException,
        "'eyJhbGciOi' not a valid key=value pair (missing equal-sign) in Authorization header: "
        "'Bearer eyJhbGciOi'.",
    ),
    (
        "AWS4-HMAC-SHA256 Credential= AKID/20150830/us-east-1/kms/aws4_request, SignedHeaders=host, "
        "Signature=ab",
        {},
        IncompleteSignatureException,
        "'AKID/20150830/us-east-1/kms/aws4_request' not a valid key=value pair (missing equal-sign) in "
        "Authorization header: 'AWS4-HMAC-SHA256 Credential= AKID/20150830/us-east-1/kms/aws4_request, "
        "SignedHeaders=host, Signature=ab'.",
    ),
    (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request",
        {"x-amz-date": "20150830T123600Z"},
        IncompleteSignatureException,
        _requires("SH", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request"),
    ),
    (
        "AWS4- Signature=b Credential=a",
        {"date": "a"},
        IncompleteSignatureException,
        _requires("H", "AWS4- Signature=b Credential=a"),
    ),
    (
        GOOD_AUTH,
        {},
        IncompleteSignatureException,
        _requires("D", GOOD_AUTH),
    ),
    (
        GOOD_AUTH,
        {"x-amz-date": "2015-08-30T12:36:00Z"},
        IncompleteSignatureException,
        "Date must be in ISO-8601 'basic format'. Got '2015-08-30T12:36:00Z'. See http://en.wikipedia.org/wiki/ISO_8601",
    ),
    (
        GOOD_AUTH,
        {"date": "yesterday"},
        IncompleteSignatureException,
        "Date must be in ISO-8601 'basic format'. Got 'yesterday'. See http://en.wikipedia.org/wiki/ISO_8601",
    ),
    (
        GOOD_AUTH.replace("content-type;host;x-amz-date", "content-type;x-amz-date"),
        {"x-amz-date": "20150830T123600Z"},
        InvalidSignatureException,
        MSG_HOST_NOT_SIGNED,
    ),
    (
        GOOD_AUTH.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
        {"x-amz-date": "20150830T123600Z"},
        IncompleteSignatureException,
        "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now). ",
    ),
    (
        GOOD_AUTH.replace("/kms/aws4_request", "/kms"),
        {"x-amz-date": "20150830T123600Z"},
        IncompleteSignatureException,
        "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
        "got 'AKIDEXAMPLE/20150830/us-east-1/kms'",
    ),
    (
        GOOD_AUTH.replace("/kms/aws4_request", "/kms/aws4_request/extra"),
        {"x-amz-date": "20150830T123600Z"},
        IncompleteSignatureException,
        "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
        "got 'AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request/extra'",
    ),
    (
        GOOD_AUTH.replace("aws4_request", "aws5_request"),
        {"x-amz-date": "20150830T123600Z"},
        InvalidSignatureException,
        "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. ",
    ),
]


@pytest.mark.parametrize(("auth", "extra", "cls", "message"), MALFORMED)
def test_malformed_authorization(
    auth: str | None, extra: dict[str, str], cls: type[ServiceError], message: str
) -> None:
    headers = {"host": "kms.us-east-1.amazonaws.com", **extra}
    if auth is not None:
        headers["authorization"] = auth
    raises(cls, message, lambda: parse_authorization(headers))


def test_credential_trailing_slashes_are_ignored_and_rfc1123_date_is_converted() -> None:
    auth = GOOD_AUTH.replace("/kms/aws4_request", "/kms/aws4_request//").replace("x-amz-date", "date")
    cred = parse_authorization({"authorization": auth, "date": "Sun, 30 Aug 2015 12:36:00 GMT"})
    assert (cred.access_key_id, cred.date, cred.region, cred.service) == (AKID, "20150830", REGION, "kms")
    assert cred.amz_date == "20150830T123600Z"
    assert cred.signed_headers == ("content-type", "host", "date")
    assert cred.signature == "abcdef0123"


def test_verify_refuses_a_credential_without_host() -> None:
    raw = sign()
    cred = replace(parse_authorization(as_mapping(raw)), signed_headers=("content-type", "x-amz-date"))
    raises(
        InvalidSignatureException,
        MSG_HOST_NOT_SIGNED,
        lambda: verify_signature(
            cred,
            method="POST",
            raw_path=b"/",
            query_string=b"",
            headers=raw.headers,
            body=raw.body,
            signing_key=b"k",
        ),
    )


# --- Signing keys ----------------------------------------------------------------------------------


def _chain(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def test_signing_key_cache_derives_caches_and_evicts() -> None:
    cache = SigningKeyCache(max_entries=2)
    first = cache.signing_key(AKID, SECRET, "20150830", REGION, "kms")
    assert (
        first
        == _chain(SECRET, "20150830", REGION, "kms")
        == derive_signing_key(SECRET, "20150830", REGION, "kms")
    )
    assert cache.signing_key(AKID, SECRET, "20150830", REGION, "kms") is first
    prepared = cache.prepared_key(AKID, SECRET, "20150830", REGION, "kms")  # what the server verifies with
    assert prepared.key is first and first.hex() not in repr(prepared)
    assert prepared.hmac_hex(b"to sign") == hmac.new(first, b"to sign", hashlib.sha256).hexdigest().encode()
    rotated = cache.signing_key(AKID, SECRET + "x", "20150830", REGION, "kms")
    assert rotated == _chain(SECRET + "x", "20150830", REGION, "kms") != first
    assert len(cache) == 2
    cache.signing_key(AKID, SECRET, "20150831", REGION, "kms")
    assert len(cache) == 2
    assert SECRET not in repr(cache) and first.hex() not in repr(cache)
    cache.clear()
    assert len(cache) == 0


def test_error_messages_never_carry_the_secret_or_signing_key() -> None:
    raw = sign(secret=OTHER_SECRET)
    key = derive_signing_key(SECRET, raw.header(b"x-amz-date").decode()[:8], REGION, "kms")
    with pytest.raises(InvalidSignatureException) as info:
        authenticate(raw)
    text = f"{info.value} {info.value!r}"
    assert SECRET not in text and OTHER_SECRET not in text and key.hex() not in text
