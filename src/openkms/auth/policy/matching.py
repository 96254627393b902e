"""Matching a statement's Action, Resource and Principal elements against a request.

Everything here is built once when a policy is parsed: exact values go into sets (one hash lookup at
evaluation time), wildcard values into compiled globs (:mod:`openkms.auth.policy.glob`), and ``*``
into a flag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from openkms.auth.policy.context import AWS_SERVICE, ROOT, EvalContext
from openkms.auth.policy.glob import Glob, compile_text
from openkms.auth.policy.variables import Pattern, make_pattern, parse_template

# How a resource-policy statement's principal matched the caller.
NO_MATCH = 0
ACCOUNT = 1  # through the account principal (root ARN / account id): delegation to IAM
DIRECT = 2  # the caller itself (user, role, session, service) or "*"

_ACCOUNT_ID = re.compile(r"\d{12}\Z")
_ROOT_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):root\Z")


@dataclass(frozen=True, slots=True)
class ActionMatcher:
    """Action or NotAction values; matching is case-insensitive (``action`` arrives lower-cased)."""

    any: bool
    exact: frozenset[str]
    globs: tuple[Glob, ...]

    def matches(self, action: str) -> bool:
        if self.any or action in self.exact:
            return True
        return any(glob.match(action) for glob in self.globs)


def action_matcher(values: Iterable[str]) -> ActionMatcher:
    exact: set[str] = set()
    globs: list[Glob] = []
    for value in values:
        value = value.lower()
        if value == "*":
            return ActionMatcher(True, frozenset(), ())
        if "*" in value or "?" in value:
            globs.append(compile_text(value))
        else:
            exact.add(value)
    return ActionMatcher(False, frozenset(exact), tuple(globs))


@dataclass(frozen=True, slots=True)
class ResourceMatcher:
    """Resource or NotResource values (ARN-aware wildcards, case-sensitive, policy variables)."""

    any: bool
    exact: frozenset[str]
    patterns: tuple[Pattern, ...]

    def matches(self, ctx: EvalContext) -> bool:
        """Raises ``Unresolved`` when a pattern's policy variable has no value."""
        if self.any:
            return True
        resource = ctx.resource
        if resource in self.exact:
            return True
        return any(pattern.matches(resource, ctx) for pattern in self.patterns)


def resource_matcher(values: Iterable[str], *, variables: bool) -> ResourceMatcher:
    exact: set[str] = set()
    patterns: list[Pattern] = []
    for value in values:
        if value == "*":
            return ResourceMatcher(True, frozenset(), ())
        template = parse_template(value, variables=variables)
        if template.static is not None and "*" not in value and "?" not in value:
            exact.add(template.static)
        else:
            patterns.append(make_pattern(template, arn=True))
    return ResourceMatcher(False, frozenset(exact), tuple(patterns))


@dataclass(frozen=True, slots=True)
class PrincipalSpec:
    """A Principal / NotPrincipal element, normalised.

    ``accounts`` holds the account ids named by id or root ARN; ``arns`` the user, role and
    assumed-role session ARNs; ``services`` the service principals; ``federated`` is kept for
    completeness (no federated callers reach this engine). ``aws`` lists the AWS values as written,
    for the principal-existence check.
    """

    any: bool
    accounts: frozenset[str]
    arns: frozenset[str]
    services: frozenset[str]
    federated: frozenset[str]
    aws: tuple[str, ...]

    def match(self, ctx: EvalContext) -> int:
        """How this Principal element names the caller: NO_MATCH, ACCOUNT or DIRECT."""
        if self.any:
            return DIRECT
        caller = ctx.caller
        if caller.principal_type == AWS_SERVICE:
            return DIRECT if caller.arn in self.services or "*" in self.services else NO_MATCH
        if caller.principal_type != ROOT and (
            caller.arn in self.arns or (ctx.role_arn is not None and ctx.role_arn in self.arns)
        ):
            return DIRECT
        if caller.account_id in self.accounts:
            return ACCOUNT
        return NO_MATCH

    def covers(self, ctx: EvalContext) -> bool:
        """For NotPrincipal: whether every identity AWS checks for the caller is listed.

        AWS checks the account, then the user (or, for a session, the role or the session): a
        NotPrincipal that names a user but not the user's account still applies to that user.
        """
        if self.any:
            return True
        caller = ctx.caller
        if caller.principal_type == AWS_SERVICE:
            return caller.arn in self.services or "*" in self.services
        if caller.account_id not in self.accounts:
            return False
        if caller.principal_type == ROOT:
            return True
        return caller.arn in self.arns or (ctx.role_arn is not None and ctx.role_arn in self.arns)


def principal_spec(
    *, any_: bool, aws: Iterable[str], services: Iterable[str], federated: Iterable[str]
) -> PrincipalSpec:
    aws = tuple(aws)
    accounts: set[str] = set()
    arns: set[str] = set()
    for value in aws:
        if value == "*":
            any_ = True
            continue
        account = account_of_principal(value)
        if account is not None:
            accounts.add(account)
        else:
            arns.add(value)
    return PrincipalSpec(
        any_, frozenset(accounts), frozenset(arns), frozenset(services), frozenset(federated), aws
    )


def account_of_principal(value: str) -> str | None:
    """The account id when ``value`` is an account principal (``111122223333`` or its root ARN)."""
    if _ACCOUNT_ID.match(value):
        return value
    root = _ROOT_ARN.match(value)
    return root.group(1) if root else None
