"""AWS Signature Version 4 verification of requests signed in the ``Authorization`` header.

Responsible for: parsing the ``Authorization`` header (:func:`parse_authorization`), checking the
credential scope and the request time (:func:`check_scope`), deriving and caching signing keys
(:class:`SigningKeyCache`, one per server application: it holds :class:`SigningKey` objects, each a
derived key with its HMAC pad states) and recomputing the signature over the raw request and comparing it in
constant time (:func:`verify_signature`). Looking up the secret for an access key id is the caller's job.

The caller runs the steps in this order, which is the order in which AWS reports the errors::

    cred = parse_authorization(headers)          # MissingAuthenticationToken / IncompleteSignature / ...
    check_scope(cred, service="kms", region_ok=..., now=clock.now())
    secret = lookup(cred.access_key_id)          # unknown key -> UnrecognizedClientException
    key = cache.prepared_key(cred.access_key_id, secret, cred.date, cred.region, cred.service)
    verify_signature(cred, method=..., raw_path=..., query_string=..., headers=..., body=..., signing_key=key)

AWS (Coral) checks, in order: the key=value syntax and the presence of Credential, Signature,
SignedHeaders and a date header (IncompleteSignatureException); the date format (Incomplete...); the
request time against the clock (InvalidSignatureException); ``host`` among the signed headers
(Invalid...); every other header that must be signed (Invalid..., see :func:`unsigned_required_header`);
the algorithm and the five-part Credential (Incomplete...); the scope's region, service,
terminator and date, reported together (Invalid...); the access key; the signature. The one
departure here: the request-time check needs the clock, so it runs in :func:`check_scope`, after the
host, algorithm and Credential-shape checks of :func:`parse_authorization`; only a request with
several faults at once can tell. A wrong terminator is reported by :func:`parse_authorization` on its
own, since :class:`Credential` does not carry it.

Messages never contain the secret key or a signing key. Presigned (query-string) requests are not
supported: without an ``Authorization`` header the answer is MissingAuthenticationTokenException.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote_from_bytes, unquote_to_bytes

from openkms.crypto.secret import Secret
from openkms.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"

MSG_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
MSG_HOST_NOT_SIGNED = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
MSG_NOT_SIGNED = "'{}' must be a 'SignedHeader' in the AWS Authorization."
MSG_MISSING_CREDENTIAL = "Authorization header requires 'Credential' parameter."
MSG_MISSING_SIGNATURE = "Authorization header requires 'Signature' parameter."
MSG_MISSING_SIGNED_HEADERS = "Authorization header requires 'SignedHeaders' parameter."
MSG_MISSING_DATE = "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
MSG_BAD_REGION = "Credential should be scoped to a valid region. "

_STS_PREFIX = ALGORITHM.encode("ascii") + b"\n"
_CONTENT_SHA256 = b"x-amz-content-sha256"
_ISO_BASIC = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class Credential:
    """What the ``Authorization`` header claims (not yet checked against the scope or the secret)."""

    access_key_id: str
    date: str  # YYYYMMDD from the scope
    region: str
    service: str
    signed_headers: tuple[str, ...]  # lowercased, in the order given
    signature: str  # hex
    amz_date: str  # YYYYMMDDTHHMMSSZ: the X-Amz-Date header, or the Date header converted to that form
    security_token: Secret[str] | None  # X-Amz-Security-Token header, if present


# --- Parsing --------------------------------------------------------------------------------------------


def parse_authorization(headers: Mapping[str, str]) -> Credential:
    """Parse and shape-check the ``Authorization`` header.

    ``headers`` maps lowercased names to values decoded as latin-1. Raises
    MissingAuthenticationTokenException ("Missing Authentication Token") without the header;
    IncompleteSignatureException for a malformed one (a parameter without ``=``; missing Credential,
    Signature or SignedHeaders, or no X-Amz-Date/Date header; a date not in ISO-8601 basic format; an
    algorithm other than AWS4-HMAC-SHA256; a Credential without five slash-delimited elements);
    InvalidSignatureException when ``host`` or another header that must be signed is not signed
    (:func:`unsigned_required_header`) or the scope terminator is not aws4_request.
    """
    auth = headers.get("authorization")
    if not auth or auth.isspace():
        raise MissingAuthenticationTokenException()
    # AWS splits the header on commas and white space; the first token is the algorithm.
    tokens = auth.replace(",", " ").split()
    params: dict[str, str] = {}
    for token in tokens[1:]:
        key, eq, value = token.partition("=")
        if not eq:
            raise IncompleteSignatureException(
                f"'{token}' not a valid key=value pair (missing equal-sign) in Authorization header: "
                f"'{auth}'."
            )
        params[key] = value

    credential = params.get("Credential")
    signature = params.get("Signature")
    signed = params.get("SignedHeaders")  # may be empty here; the host check below rejects that
    amz_date_header = headers.get("x-amz-date")
    date_header = headers.get("date")
    missing = []
    if not credential:
        missing.append(MSG_MISSING_CREDENTIAL)
    if not signature:
        missing.append(MSG_MISSING_SIGNATURE)
    if signed is None:
        missing.append(MSG_MISSING_SIGNED_HEADERS)
    if not amz_date_header and not date_header:
        missing.append(MSG_MISSING_DATE)
    if missing or credential is None or signature is None or signed is None:
        raise IncompleteSignatureException(" ".join(missing) + " Authorization=" + auth)

    raw_date = amz_date_header or date_header or ""
    amz_date = raw_date if amz_date_header else _date_header_to_iso(raw_date)
    if amz_date is None or _amz_date_epoch(amz_date) is None:
        raise _bad_date(raw_date)

    signed_headers = tuple(signed.lower().split(";"))
    if "host" not in signed_headers and ":authority" not in signed_headers:
        raise InvalidSignatureException(MSG_HOST_NOT_SIGNED)
    unsigned = unsigned_required_header(headers, signed_headers)
    if unsigned is not None:
        raise InvalidSignatureException(MSG_NOT_SIGNED.format(unsigned))

    if tokens[0] != ALGORITHM:
        raise IncompleteSignatureException(
            f"Unsupported AWS 'algorithm': '{tokens[0]}' (only AWS4-HMAC-SHA256 for now). "
        )

    elements = credential.split("/")
    while elements and not elements[-1]:  # like Java's String.split, trailing empty elements are dropped
        elements.pop()
    if len(elements) != 5:
        raise IncompleteSignatureException(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term,"
            f" got '{credential}'"
        )
    access_key_id, scope_date, region, service, terminator = elements
    if terminator != TERMINATOR:
        raise InvalidSignatureException(
            f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
        )
    session_token = headers.get("x-amz-security-token")
    return Credential(
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers,
        signature,
        amz_date,
        Secret(session_token) if session_token else None,
    )


def unsigned_required_header(headers: Mapping[str, str], signed_headers: tuple[str, ...]) -> str | None:
    """The first header (by lowercased name) the request sends but does not sign although it must, as
    AWS spells it in its message (``X-Amz-Target``), or None.

    AWS's rule ("You must include the host header and any x-amz-* headers in the signature", IAM User
    Guide, *Create a signed AWS API request*): every ``x-amz-*`` header sent — ``X-Amz-Target`` (the
    operation), ``X-Amz-Date``, ``X-Amz-Security-Token``, ``X-Amz-Content-Sha256``, any other — and, when
    the request time comes from ``Date`` (no ``X-Amz-Date``), ``Date``. ``host`` is checked before, with
    its own message. Other headers (``Content-Type`` included, which AWS lists as optional) may be left
    unsigned: nothing else in a request changes how this service reads it.
    """
    signed = _signed_set(signed_headers)
    if not headers.get("x-amz-date") and "date" in headers and "date" not in signed:
        return "Date"  # also first by name: "date" < "x-amz-…"
    first: str | None = None
    for name in headers:
        if name.startswith("x-amz-") and name not in signed and (first is None or name < first):
            first = name
    return None if first is None else "-".join(part.capitalize() for part in first.split("-"))


# Pure memos of pure functions (this, _amz_date_epoch and _signed_header_plan); no secret goes in.
@lru_cache(maxsize=256)
def _signed_set(signed_headers: tuple[str, ...]) -> frozenset[str]:
    return frozenset(signed_headers)


def _bad_date(value: str) -> IncompleteSignatureException:
    return IncompleteSignatureException(
        f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
    )


@lru_cache(maxsize=1024)
def _amz_date_epoch(value: str) -> int | None:
    """Seconds since the epoch for ``YYYYMMDDTHHMMSSZ``, or None if it is not exactly that."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z":
        return None
    digits = value[:8] + value[9:15]
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:
        moment = datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
        )
    except ValueError:
        return None
    return calendar.timegm(moment.timetuple())


def _date_header_to_iso(value: str) -> str | None:
    """A ``Date`` header (ISO-8601 basic, or an HTTP date such as RFC 1123) as ``YYYYMMDDTHHMMSSZ``."""
    if _amz_date_epoch(value) is not None:
        return value
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)  # OverflowError past year 1 or 9999
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment.strftime(_ISO_BASIC)


# --- Scope and time -------------------------------------------------------------------------------------


def check_scope(
    cred: Credential,
    *,
    service: str,
    region_ok: Callable[[str], bool],
    now: float,
    max_skew: float = 900.0,
) -> None:
    """Check the request time against ``now`` and the credential scope against this endpoint.

    A request time more than ``max_skew`` seconds from ``now`` either way raises
    InvalidSignatureException ("Signature expired: ..." / "Signature not yet current: ..."). Then the
    scope's region (``region_ok``), service and date (against the request time's date) are checked
    and every mismatch is reported in one InvalidSignatureException, as AWS does. An ``amz_date`` that
    is not ISO-8601 basic format (possible only for a hand-built Credential; :func:`parse_authorization`
    rejects it first) raises IncompleteSignatureException, as AWS answers a malformed X-Amz-Date.
    """
    request_time = _amz_date_epoch(cred.amz_date)
    if request_time is None:
        raise _bad_date(cred.amz_date)
    if request_time < now - max_skew:
        raise InvalidSignatureException(
            f"Signature expired: {cred.amz_date} is now earlier than {_iso(now - max_skew)} "
            f"({_iso(now)} - {_span(max_skew)}.)"
        )
    if request_time > now + max_skew:
        raise InvalidSignatureException(
            f"Signature not yet current: {cred.amz_date} is still later than {_iso(now + max_skew)} "
            f"({_iso(now)} + {_span(max_skew)}.)"
        )
    message = ""
    if not region_ok(cred.region):
        message += MSG_BAD_REGION
    if cred.service != service:
        message += f"Credential should be scoped to correct service: '{service}'. "
    if cred.date != cred.amz_date[:8]:
        message += (
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{cred.date}' != '{cred.amz_date[:8]}', from '{cred.amz_date}'."
        )
    if message:
        raise InvalidSignatureException(message)


def _iso(moment: float) -> str:
    return time.strftime(_ISO_BASIC, time.gmtime(moment))


def _span(seconds: float) -> str:
    return f"{int(seconds) // 60} min" if seconds % 60 == 0 else f"{seconds:g} sec"


# --- Signing keys ---------------------------------------------------------------------------------------


def derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    key = hmac.digest(("AWS4" + secret).encode("utf-8"), date.encode("utf-8"), "sha256")
    key = hmac.digest(key, region.encode("utf-8"), "sha256")
    key = hmac.digest(key, service.encode("utf-8"), "sha256")
    return hmac.digest(key, b"aws4_request", "sha256")


def _fingerprint(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class SigningKey:
    """A signing key with the SHA-256 states after its inner and outer HMAC pads (RFC 2104), computed
    once: :meth:`hmac_hex` then costs three times less than :func:`hmac.digest`."""

    __slots__ = ("_inner", "_outer", "key")

    def __init__(self, key: bytes) -> None:
        self.key = key
        block = key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def hmac_hex(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under this key, as lowercase hex."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest().encode("ascii")

    def __repr__(self) -> str:
        return "SigningKey(...)"


class SigningKeyCache:
    """LRU cache of signing keys by (access key id, secret fingerprint, date, region, service).

    A rotated secret gets a new entry (the fingerprint differs); a key is derived once per day per
    scope. Meant for one asyncio loop: no locks, but concurrent use cannot corrupt it.
    """

    __slots__ = ("_entries", "_max_entries")

    def __init__(self, max_entries: int = 4096) -> None:
        self._entries: OrderedDict[tuple[str, bytes, str, str, str], SigningKey] = OrderedDict()
        self._max_entries = max_entries

    def signing_key(self, access_key_id: str, secret: str, date: str, region: str, service: str) -> bytes:
        """The signing key's bytes (see :meth:`prepared_key`)."""
        return self.prepared_key(access_key_id, secret, date, region, service).key

    def prepared_key(
        self, access_key_id: str, secret: str, date: str, region: str, service: str
    ) -> SigningKey:
        """The signing key of this scope, derived on first use, with its HMAC pad states."""
        cache_key = (access_key_id, _fingerprint(secret), date, region, service)
        entries = self._entries
        key = entries.get(cache_key)
        if key is not None:
            try:  # noqa: SIM105 (contextlib.suppress costs more than the whole lookup)
                entries.move_to_end(cache_key)
            except KeyError:  # evicted meanwhile by another thread; the key is still right
                pass
            return key
        key = SigningKey(derive_signing_key(secret, date, region, service))
        entries[cache_key] = key
        while len(entries) > self._max_entries:
            entries.popitem(last=False)
        return key

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"SigningKeyCache(entries={len(self._entries)}, max_entries={self._max_entries})"


# --- Signature ------------------------------------------------------------------------------------------


def verify_signature(
    cred: Credential,
    *,
    method: str,
    raw_path: bytes,
    query_string: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes,
    signing_key: SigningKey | bytes,
) -> None:
    """Recompute the SigV4 signature of the raw request and compare it in constant time.

    ``headers`` are the ASGI headers (lowercased name bytes, value bytes); ``signing_key`` is best a
    :class:`SigningKey` from the cache (bytes are prepared on the spot). Raises
    InvalidSignatureException with AWS's mismatch message when the signature differs or a signed
    header is absent from the request, and with the host message when ``host`` is not signed.
    """
    names, wanted, signed_line = _signed_header_plan(cred.signed_headers)
    if b"host" not in wanted and b":authority" not in wanted:
        raise InvalidSignatureException(MSG_HOST_NOT_SIGNED)
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in wanted:
            value = b" ".join(value.split())
            previous = found.get(name)
            found[name] = value if previous is None else previous + b"," + value
    if len(found) != len(names):
        raise InvalidSignatureException(MSG_SIGNATURE_MISMATCH)  # a signed header is not in the request

    # The body's own hash, spelled as in a signed X-Amz-Content-Sha256 header if that header agrees with
    # it; any other value (UNSIGNED-PAYLOAD, a hash of another body) is not taken on trust.
    payload_hash = hashlib.sha256(body).hexdigest().encode("ascii")
    claimed_hash = found.get(_CONTENT_SHA256)
    if claimed_hash is not None and claimed_hash.lower() == payload_hash:
        payload_hash = claimed_hash
    canonical_request = b"\n".join(
        (
            method.encode("latin-1", "replace"),
            b"/" if raw_path == b"/" else _canonical_path(raw_path),
            _canonical_query(query_string) if query_string else b"",
            b"".join([name + b":" + found[name] + b"\n" for name in names]),
            signed_line,
            payload_hash,
        )
    )
    scope = f"{cred.amz_date}\n{cred.date}/{cred.region}/{cred.service}/{TERMINATOR}\n"
    string_to_sign = (
        _STS_PREFIX
        + scope.encode("latin-1", "replace")
        + hashlib.sha256(canonical_request).hexdigest().encode("ascii")
    )
    if not isinstance(signing_key, SigningKey):
        signing_key = SigningKey(signing_key)
    expected = signing_key.hmac_hex(string_to_sign)
    if not hmac.compare_digest(expected, cred.signature.encode("latin-1", "replace")):
        raise InvalidSignatureException(MSG_SIGNATURE_MISMATCH)


@lru_cache(maxsize=256)
def _signed_header_plan(signed_headers: tuple[str, ...]) -> tuple[tuple[bytes, ...], frozenset[bytes], bytes]:
    """(sorted distinct names, the same as a set, the SignedHeaders line) for a SignedHeaders list."""
    names = tuple(sorted({name.encode("latin-1", "replace") for name in signed_headers}))
    return names, frozenset(names), b";".join(names)


def _canonical_path(raw_path: bytes) -> bytes:
    """The canonical URI for a non-S3 service: dot segments and empty segments removed (RFC 3986
    5.2.4), then the path as sent URI-encoded once more, as botocore and the other SDKs sign it."""
    if not raw_path:
        return b"/"
    segments: list[bytes] = []
    for segment in raw_path.split(b"/"):
        if segment == b"..":
            if segments:
                segments.pop()
        elif segment and segment != b".":
            segments.append(segment)
    path = (b"/" if raw_path[:1] == b"/" else b"") + b"/".join(segments)
    if raw_path[-1:] == b"/" and segments:
        path += b"/"
    return quote_from_bytes(path, safe="/~").encode("ascii")


def _canonical_query(query_string: bytes) -> bytes:
    """Parameters decoded (``+`` is a space) and re-encoded per RFC 3986, sorted by name then value."""
    pairs = []
    for part in query_string.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            pairs.append((_encode_query_part(name), _encode_query_part(value)))
    pairs.sort()
    return b"&".join([name + b"=" + value for name, value in pairs])


def _encode_query_part(part: bytes) -> bytes:
    return quote_from_bytes(unquote_to_bytes(part.replace(b"+", b" ")), safe="-_.~").encode("ascii")


# --- Signing (this service as a client: the XKS proxies it calls) --------------------------------------


def sign_request(
    *,
    method: str,
    host: str,
    path: str,
    body: bytes,
    access_key_id: str,
    secret: str,
    region: str,
    service: str,
    now: float,
) -> dict[str, str]:
    """The headers of a SigV4-signed request without a query string: ``host`` (as given, with its port
    when not 443), ``x-amz-date``, ``x-amz-content-sha256``, ``content-type`` (JSON) and
    ``authorization``, all signed."""
    amz_date = _iso(now)
    date = amz_date[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {
        "content-type": "application/json",
        "host": host,
        "x-amz-content-sha256": payload_hash,
        "x-amz-date": amz_date,
    }
    names = sorted(headers)
    canonical_request = "\n".join(
        (
            method,
            _canonical_path(path.encode("ascii")).decode("ascii"),
            "",
            "".join(f"{name}:{headers[name]}\n" for name in names),
            ";".join(names),
            payload_hash,
        )
    )
    scope = f"{date}/{region}/{service}/{TERMINATOR}"
    string_to_sign = "\n".join(
        (ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode("ascii")).hexdigest())
    )
    signature = SigningKey(derive_signing_key(secret, date, region, service)).hmac_hex(
        string_to_sign.encode("ascii")
    )
    headers["authorization"] = (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={';'.join(names)}, "
        f"Signature={signature.decode('ascii')}"
    )
    return headers
