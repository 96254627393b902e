"""The parsed-policy cache the event loop relies on: a document is used there only once it is parsed
(a large one takes tens of milliseconds to parse, which must happen on a worker thread)."""

from __future__ import annotations

import json
import uuid

from openkms.auth.policy import cached_policy, parse_policy
from openkms.auth.policy import document as document_module


def _doc(sid: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": sid, "Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}
            ],
        }
    )


def test_a_document_is_cached_only_once_parsed() -> None:
    text = _doc(uuid.uuid4().hex)
    assert cached_policy(text, "key") is None
    doc = parse_policy(text, kind="key")
    assert cached_policy(text, "key") is doc
    assert cached_policy(text, "identity") is None  # parsed per kind


def test_the_cache_is_bounded_and_keeps_recent_documents() -> None:
    first = _doc("first-" + uuid.uuid4().hex)
    parse_policy(first)
    for i in range(document_module._CACHE_SIZE + 10):
        parse_policy(_doc(f"filler-{i}-{uuid.uuid4().hex}"))
        if i % 100 == 0:
            parse_policy(first)  # used now and then: stays
    assert cached_policy(first) is not None
    assert len(document_module._cache) <= document_module._CACHE_SIZE
