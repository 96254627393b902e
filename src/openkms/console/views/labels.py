"""A key's labels as the console checks them before asking the service: the alias name (required in
the console, as in AWS's) and the tags, for the create-key wizard and the replica wizard."""

from __future__ import annotations

import re

from openkms.console.api import Api, ApiError

ALIAS_CHARS = re.compile(r"^[a-zA-Z0-9/_-]+$")
TAG_CHARS = re.compile(r"^[\w\s.:/=+\-@]*$")
MAX_TAGS = 50


def alias_problem(alias: str) -> str | None:
    """What is wrong with an alias name (without its ``alias/`` prefix) before the service is asked."""
    if not alias:
        return "Enter an alias. Aliases are required in the console."
    if not ALIAS_CHARS.match(alias):
        return (
            "The alias can contain only letters, numbers, forward slashes (/), underscores (_) "
            "and dashes (-)."
        )
    if alias.lower().startswith("aws/"):
        return "The alias cannot begin with aws/. That prefix is reserved for AWS managed keys."
    if len(alias) > 250:
        return "The alias can have up to 250 characters."
    return None


async def alias_taken(api: Api, alias: str) -> bool:
    """Whether the alias names a key in the API's Region (any refusal: CreateAlias will tell)."""
    try:
        await api.kms("DescribeKey", KeyId="alias/" + alias)
    except ApiError:
        return False
    return True


def check_tags(tags: list[list[str]], errors: dict[str, str]) -> list[list[str]]:
    """The tag rows that are not empty, each checked as the service would (errors by row)."""
    tags = [t for t in tags if t[0] or t[1]]
    seen: set[str] = set()
    for i, (key, value) in enumerate(tags):
        if not key:
            errors[f"tag_key_{i}"] = "Enter a tag key."
        elif len(key) > 128:
            errors[f"tag_key_{i}"] = "The tag key can have up to 128 characters."
        elif key.lower().startswith("aws:"):
            errors[f"tag_key_{i}"] = "Tag keys cannot begin with aws:. That prefix is reserved for AWS."
        elif key in seen:
            errors[f"tag_key_{i}"] = "Each tag key must be unique."
        elif not TAG_CHARS.match(key):
            errors[f"tag_key_{i}"] = (
                "Tag keys can contain only letters, numbers, spaces and the characters _ . : / = + - @"
            )
        seen.add(key)
        if len(value) > 256:
            errors[f"tag_value_{i}"] = "The tag value can have up to 256 characters."
        elif not TAG_CHARS.match(value):
            errors[f"tag_value_{i}"] = (
                "Tag values can contain only letters, numbers, spaces and the characters _ . : / = + - @"
            )
    if len(tags) > MAX_TAGS:
        errors["tags"] = f"A key can have up to {MAX_TAGS} tags."
    return tags
