"""Alias naming rules beyond the model's pattern (prefix, reserved names)."""

from __future__ import annotations

from openkms.errors import NotAuthorizedException, ValidationException

PREFIX = "alias/"
RESERVED_PREFIX = "alias/aws/"
MAX_ALIASES_PER_KEY = 50


def check_alias_name(name: str) -> None:
    if not name.startswith(PREFIX) or name == PREFIX:
        raise ValidationException(
            'Alias must start with the prefix "alias/". Please see '
            "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
        )
    if name.startswith(RESERVED_PREFIX):
        raise NotAuthorizedException("Cannot create alias with prefix 'alias/aws/'")
