"""CloudTrail's S3 delivery, as files: the object names of log files and digest files, a log file's
body (``{"Records": [...]}``, gzipped), and a digest file with its data-signing string, as AWS documents
them ("CloudTrail digest file structure", "Custom implementations of CloudTrail log file integrity
validation") and ``aws cloudtrail validate-logs`` checks them:

* a log file's ``hashValue`` is the hex SHA-256 of its *uncompressed* content;
* a digest is signed (SHA256withRSA) over ``digestEndTime + "\\n" + bucket + "/" + object + "\\n" +
  hex SHA-256 of the uncompressed digest + "\\n" + previousDigestSignature`` ("null" for the first);
* the signature (hex) is kept in S3 object metadata (``x-amz-meta-signature``): here in a sidecar file
  ``<digest file>.sig``, and in the next digest's ``previousDigestSignature``.

There is no S3 here: the bucket is the fixed pseudo name :data:`BUCKET`, the trail :data:`TRAIL`.
Pure functions; the gzip stream carries no name or time, so the same records give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

BUCKET = "openkms"
TRAIL = "openkms"
SIGNATURE_ALGORITHM = "SHA256withRSA"
HASH_ALGORITHM = "SHA-256"


class DigestSigner(Protocol):
    """The digest signing key: its public key's fingerprint (``digestPublicKeyFingerprint``) and
    SHA256withRSA (PKCS #1 v1.5) signatures."""

    @property
    def fingerprint(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC)


def event_time(seconds: float) -> str:
    """``2015-08-17T14:01:31Z``: the digest's times."""
    return _utc(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_object(account: str, region: str, at: float, unique: str) -> str:
    """``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz``."""
    when = _utc(at)
    return (
        f"AWSLogs/{account}/CloudTrail/{region}/{when:%Y/%m/%d}/"
        f"{account}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{unique}.json.gz"
    )


def digest_object(account: str, region: str, end: float) -> str:
    """``AWSLogs/<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/<account>_CloudTrail-Digest_<region>_<trail>_<region>_<YYYYMMDDTHHmmssZ>.json.gz``
    (the trail's home Region is the Region itself: one trail per Region)."""
    when = _utc(end)
    return (
        f"AWSLogs/{account}/CloudTrail-Digest/{region}/{when:%Y/%m/%d}/"
        f"{account}_CloudTrail-Digest_{region}_{TRAIL}_{region}_{when:%Y%m%dT%H%M%SZ}.json.gz"
    )


def unique_name(account: str, region: str, first_id: int, last_id: int) -> str:
    """The 16 characters that make a log file's name unique, from the rows it holds: the same range is
    always the same name."""
    return hashlib.sha256(f"{account}|{region}|{first_id}|{last_id}".encode()).hexdigest()[:16]


def log_body(records: Sequence[str]) -> bytes:
    """``{"Records":[...]}`` of the stored records (JSON texts, as they are), uncompressed."""
    return b'{"Records":[' + b",".join(r.encode() for r in records) + b"]}"


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class LogFileEntry:
    s3_object: str
    hash_value: str  # of the uncompressed content
    oldest_event: float
    newest_event: float


@dataclass(frozen=True)
class PreviousDigest:
    s3_object: str
    hash_value: str  # of the uncompressed digest
    signature: str  # hex


@dataclass(frozen=True)
class Digest:
    s3_object: str
    body: bytes  # uncompressed JSON
    signature: str  # hex
    hash_value: str  # of ``body``


def string_to_sign(end_time: str, s3_object: str, body_hash: str, previous_signature: str | None) -> bytes:
    previous = previous_signature if previous_signature is not None else "null"
    return f"{end_time}\n{BUCKET}/{s3_object}\n{body_hash}\n{previous}".encode()


def make_digest(
    signer: DigestSigner,
    account: str,
    region: str,
    start: float,
    end: float,
    files: Sequence[LogFileEntry],
    previous: PreviousDigest | None,
) -> Digest:
    """The digest of ``files`` for (start, end], chained to ``previous`` (None: the first)."""
    s3_object = digest_object(account, region, end)
    document: dict[str, Any] = {
        "awsAccountId": account,
        "digestStartTime": event_time(start),
        "digestEndTime": event_time(end),
        "digestS3Bucket": BUCKET,
        "digestS3Object": s3_object,
        "digestPublicKeyFingerprint": signer.fingerprint,
        "digestSignatureAlgorithm": SIGNATURE_ALGORITHM,
        "newestEventTime": event_time(max(f.newest_event for f in files)) if files else None,
        "oldestEventTime": event_time(min(f.oldest_event for f in files)) if files else None,
        "previousDigestS3Bucket": BUCKET if previous is not None else None,
        "previousDigestS3Object": previous.s3_object if previous is not None else None,
        "previousDigestHashValue": previous.hash_value if previous is not None else None,
        "previousDigestHashAlgorithm": HASH_ALGORITHM if previous is not None else None,
        "previousDigestSignature": previous.signature if previous is not None else None,
        "logFiles": [
            {
                "s3Bucket": BUCKET,
                "s3Object": f.s3_object,
                "hashValue": f.hash_value,
                "hashAlgorithm": HASH_ALGORITHM,
                "newestEventTime": event_time(f.newest_event),
                "oldestEventTime": event_time(f.oldest_event),
            }
            for f in files
        ],
    }
    body = json.dumps(document, separators=(",", ":")).encode()
    body_hash = sha256_hex(body)
    to_sign = string_to_sign(
        document["digestEndTime"], s3_object, body_hash, previous.signature if previous else None
    )
    return Digest(s3_object, body, signer.sign(to_sign).hex(), body_hash)
