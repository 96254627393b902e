"""Member-name conversions between the wire (PascalCase) and Python/CloudTrail spellings."""

from __future__ import annotations

import functools
import re

# A boundary before an upper-case letter that follows a lower-case letter or digit ("KeyId" -> Key|Id),
# and before the last capital of an acronym that starts a new word ("AWSAccount" -> AWS|Account).
_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@functools.lru_cache(maxsize=2048)  # pure memo of a pure function
def to_snake(name: str) -> str:
    """Python's snake_case of a wire member name.

    ``"KeyId"`` -> ``"key_id"``, ``"AWSAccountId"`` -> ``"aws_account_id"``,
    ``"XksKeyId"`` -> ``"xks_key_id"``.
    """
    return _WORD_BOUNDARY.sub("_", name).lower()


def lower_first(name: str) -> str:
    """AWS's lower camelCase of a member name: only the first letter is lowered (``AWSAccountId`` ->
    ``aWSAccountId``). Used for validation-message paths and CloudTrail member names."""
    return name[:1].lower() + name[1:]
