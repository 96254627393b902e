"""CloudTrail's delivery layout and digest format (audit/cloudtrail_files.py): object names, the same bytes
for the same records, and a digest whose signature verifies over AWS's data-signing string."""

from __future__ import annotations

import gzip
import hashlib
import json

from openkms.audit import cloudtrail_files as ct
from openkms.crypto import trail_signing

AT = 1_767_323_096.7  # 2026-01-02T03:04:56.7Z


class _Signer:
    def __init__(self) -> None:
        private, self.public = trail_signing.generate()
        self._key = trail_signing.PrivateKey(private)
        self.fingerprint = trail_signing.fingerprint(self.public)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def test_object_names_follow_cloudtrails_layout() -> None:
    unique = ct.unique_name("111122223333", "eu-west-1", 5, 9)
    assert len(unique) == 16 and unique == ct.unique_name("111122223333", "eu-west-1", 5, 9)
    assert ct.log_object("111122223333", "eu-west-1", AT, unique) == (
        "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/01/02/"
        f"111122223333_CloudTrail_eu-west-1_20260102T0304Z_{unique}.json.gz"
    )
    assert ct.digest_object("111122223333", "eu-west-1", AT) == (
        "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2026/01/02/"
        "111122223333_CloudTrail-Digest_eu-west-1_openkms_eu-west-1_20260102T030456Z.json.gz"
    )


def test_log_body_is_the_records_as_stored_and_the_same_bytes_every_time() -> None:
    records = ['{"eventID":"a","x":1}', '{"eventID":"b"}']
    body = ct.log_body(records)
    assert json.loads(body) == {"Records": [{"eventID": "a", "x": 1}, {"eventID": "b"}]}
    assert ct.gzipped(body) == ct.gzipped(body) and gzip.decompress(ct.gzipped(body)) == body


def test_digest_signs_awss_string_and_names_the_previous_one() -> None:
    signer = _Signer()
    entry = ct.LogFileEntry("AWSLogs/x.json.gz", "ab" * 32, AT - 60, AT - 1)
    first = ct.make_digest(signer, "111122223333", "eu-west-1", AT - 3600, AT, [entry], None)
    document = json.loads(first.body)
    assert document["previousDigestSignature"] is None and document["logFiles"][0]["hashValue"] == "ab" * 32
    signed = (
        f"{document['digestEndTime']}\nopenkms/{first.s3_object}\n"
        f"{hashlib.sha256(first.body).hexdigest()}\nnull"
    ).encode()
    assert trail_signing.verify(signer.public, signed, bytes.fromhex(first.signature))
    previous = ct.PreviousDigest(first.s3_object, first.hash_value, first.signature)
    second = ct.make_digest(signer, "111122223333", "eu-west-1", AT, AT + 3600, [], previous)
    chained = json.loads(second.body)
    assert chained["previousDigestSignature"] == first.signature
    assert chained["previousDigestHashValue"] == hashlib.sha256(first.body).hexdigest()
    assert chained["newestEventTime"] is None and chained["logFiles"] == []
    signed = ct.string_to_sign(chained["digestEndTime"], second.s3_object, second.hash_value, first.signature)
    assert trail_signing.verify(signer.public, signed, bytes.fromhex(second.signature))
