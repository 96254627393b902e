"""The parsed-policy cache the event loop relies on: a document is used there only once it is parsed
(a large one takes tens of milliseconds to parse, which must happen on a worker thread). Each runtime
has its own cache (``Runtime.documents``)."""

from __future__ import annotations

import json
import uuid

from openkms.auth.policy import PolicyCache


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
    cache = PolicyCache()
    text = _doc(uuid.uuid4().hex)
    assert cache.cached(text, "key") is None
    doc = cache.parse(text, kind="key")
    assert cache.cached(text, "key") is doc
    assert cache.cached(text, "identity") is None  # parsed per kind
    assert PolicyCache().cached(text, "key") is None  # another runtime's cache is its own


def test_the_cache_is_bounded_and_keeps_recent_documents() -> None:
    cache = PolicyCache()
    first = _doc("first-" + uuid.uuid4().hex)
    cache.parse(first)
    for i in range(cache.size + 10):
        cache.parse(_doc(f"filler-{i}-{uuid.uuid4().hex}"))
        if i % 100 == 0:
            cache.parse(first)  # used now and then: stays
    assert cache.cached(first) is not None
    assert len(cache) <= cache.size
