"""The one policy JSON loader: strict for submitted documents, lenient (as before) for stored ones, so
a policy accepted before the strict rule existed keeps working."""

from __future__ import annotations

import pytest

from openkms.auth.policy import parse_policy
from openkms.auth.policy.jsontext import PolicyJSONError, load_policy_json
from openkms.errors import MalformedPolicyDocumentException

STATEMENT = (
    '{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*",'
    ' "Resource": "*", "Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": NUMBER}}}'
)
STORED = {
    "NaN": STATEMENT.replace("NUMBER", "NaN"),
    "Infinity": STATEMENT.replace("NUMBER", "Infinity"),
    "1e999": STATEMENT.replace("NUMBER", "1e999"),
    "huge integer": STATEMENT.replace("NUMBER", "9" * 400),
    "duplicate key": STATEMENT.replace("NUMBER", "1").replace(
        '"Effect": "Allow"', '"Effect": "Deny", "Effect": "Allow"'
    ),
}


@pytest.mark.parametrize("name", list(STORED))
def test_strict_refuses_and_lenient_reads(name: str) -> None:
    text = '{"Version": "2012-10-17", "Statement": [' + STORED[name] + "]}"
    with pytest.raises(PolicyJSONError):
        load_policy_json(text, strict=True)
    with pytest.raises(MalformedPolicyDocumentException, match=r"The policy is not valid JSON\."):
        parse_policy(text, kind="key", strict=True)
    doc = parse_policy(text, kind="key")  # a stored document: read as it was accepted
    assert len(doc.statements) == 1


def test_duplicate_keys_refused_at_any_depth() -> None:
    with pytest.raises(PolicyJSONError):
        load_policy_json('{"a": {"b": {"c": 1, "c": 2}}}', strict=True)
    assert load_policy_json('{"a": {"b": {"c": 1, "c": 2}}}', strict=False) == {"a": {"b": {"c": 2}}}


def test_ordinary_numbers_pass() -> None:
    assert load_policy_json('{"a": [1, -2, 3.5, 1e308, "NaN"]}', strict=True) == {
        "a": [1, -2, 3.5, 1e308, "NaN"]
    }
