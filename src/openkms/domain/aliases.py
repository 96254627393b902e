"""Alias naming rules beyond the model's pattern (prefix, characters, reserved names).

The service model's pattern for AliasName allows ``:``, but AWS refuses it: after ``alias/`` an alias
name holds only letters, digits, ``/``, ``_`` and ``-`` ("<name> contains invalid characters for an
alias"). The character test is a set membership over at most 256 characters (no regular expression).
"""

from __future__ import annotations

from openkms.errors import NotAuthorizedException, ValidationException

PREFIX = "alias/"
RESERVED_PREFIX = "alias/aws/"
MAX_ALIASES_PER_KEY = 50
ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-")


def check_alias_name(name: str) -> None:
    if not name.startswith(PREFIX) or name == PREFIX:
        raise ValidationException(
            'Alias must start with the prefix "alias/". Please see '
            "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
        )
    if not ALLOWED.issuperset(name[len(PREFIX) :]):
        raise ValidationException(f"{name} contains invalid characters for an alias")
    if name.startswith(RESERVED_PREFIX):
        raise NotAuthorizedException("Cannot create alias with prefix 'alias/aws/'")
