"""Policy variables (``${aws:username}``) and wildcard patterns (``*`` and ``?``).

A policy string is parsed once into a :class:`Template`: a tuple of tokens that are wildcard text
(``*``/``?`` keep their meaning), literal text (``${*}``, ``${?}``, ``${$}`` and substituted variable
values, which never act as wildcards) and variables (``${key}`` or ``${key, 'default'}``). Variables
are recognised only in documents whose Version is ``2012-10-17``; in older documents the text is
literal, as AWS does.

Patterns without variables are compiled (:mod:`openkms.auth.policy.glob`) when the policy is parsed;
patterns with variables are rendered per request and compiled through a bounded cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from openkms.auth.policy.context import EvalContext
from openkms.auth.policy.glob import LITERAL, WILD, ArnGlob, Glob, cached_glob

VARIABLE = 2  # ${key} or ${key, 'default'}

_VAR_BODY = re.compile(r"\s*([^\s,']+)\s*(?:,\s*'((?:[^']|'')*)'\s*)?\Z")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}

Token = tuple[int, str, str | None]


@dataclass(frozen=True, slots=True)
class Template:
    """A policy string split into tokens; ``static`` is the text when it has no variables."""

    tokens: tuple[Token, ...]
    static: str | None

    def render_tokens(self, ctx: EvalContext) -> tuple[tuple[int, str], ...]:
        """The tokens with variables replaced by (literal) values; may raise ``Unresolved``."""
        out: list[tuple[int, str]] = []
        for kind, text, default in self.tokens:
            if kind == VARIABLE:
                out.append((LITERAL, ctx.variable(text, default)))
            else:
                out.append((kind, text))
        return tuple(out)

    def render(self, ctx: EvalContext) -> str:
        """The plain string (wildcards not interpreted); may raise ``Unresolved``."""
        if self.static is not None:
            return self.static
        return "".join(text for _, text in self.render_tokens(ctx))


def parse_template(text: str, *, variables: bool) -> Template:
    """Split ``text`` into tokens; with ``variables=False`` the whole text is wildcard text."""
    if not variables or "${" not in text:
        return Template(((WILD, text, None),), text)
    tokens: list[Token] = []
    pos = 0
    # ``${`` up to the next ``}``, found with str.find: linear (a regex scan for every ``${`` of a
    # text without ``}`` is quadratic)
    while (start := text.find("${", pos)) >= 0 and (close := text.find("}", start + 2)) >= 0:
        if start > pos:
            tokens.append((WILD, text[pos:start], None))
        body = text[start + 2 : close]
        special = _SPECIAL.get(body.strip())
        parsed = _VAR_BODY.match(body)
        if special is not None:
            tokens.append((LITERAL, special, None))
        elif parsed is not None:
            default = parsed.group(2)
            tokens.append(
                (VARIABLE, parsed.group(1).lower(), None if default is None else default.replace("''", "'"))
            )
        else:  # not a well-formed variable: AWS leaves it as text
            tokens.append((WILD, text[start : close + 1], None))
        pos = close + 1
    if pos < len(text):
        tokens.append((WILD, text[pos:], None))
    if all(kind != VARIABLE for kind, _, _ in tokens):
        return Template(tuple(tokens), "".join(t for _, t, _ in tokens))
    return Template(tuple(tokens), None)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A wildcard pattern (StringLike, ArnLike, Resource), compiled once when it has no variables."""

    template: Template
    arn: bool
    glob: Glob | ArnGlob | None

    def matches(self, value: str, ctx: EvalContext) -> bool:
        """Whether ``value`` matches; may raise ``Unresolved``."""
        glob = self.glob
        if glob is None:
            glob = cached_glob(self.template.render_tokens(ctx), self.arn)
        return glob.match(value, ctx.budget)


def make_pattern(template: Template, *, arn: bool) -> Pattern:
    glob = None
    if template.static is not None:
        glob = cached_glob(tuple((k, t) for k, t, _ in template.tokens), arn)
    return Pattern(template, arn, glob)
