"""Policy variables (``${aws:username}``) and wildcard patterns (``*`` and ``?``).

A policy string is parsed once into a :class:`Template`: a tuple of tokens that are wildcard text
(``*``/``?`` keep their meaning), literal text (``${*}``, ``${?}``, ``${$}`` and substituted variable
values, which never act as wildcards) and variables (``${key}`` or ``${key, 'default'}``). Variables
are recognised only in documents whose Version is ``2012-10-17``; in older documents the text is
literal, as AWS does.

Patterns without variables are compiled to a regular expression when the policy is parsed; patterns
with variables are rendered per request and compiled through a bounded cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from openkms.auth.policy.context import EvalContext

WILD = 0  # text in which * and ? are wildcards (in patterns)
LITERAL = 1  # text matched literally
VARIABLE = 2  # ${key} or ${key, 'default'}

_VAR = re.compile(r"\$\{([^}]*)\}")
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
    for match in _VAR.finditer(text):
        if match.start() > pos:
            tokens.append((WILD, text[pos : match.start()], None))
        body = match.group(1)
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
            tokens.append((WILD, match.group(0), None))
        pos = match.end()
    if pos < len(text):
        tokens.append((WILD, text[pos:], None))
    if all(kind != VARIABLE for kind, _, _ in tokens):
        return Template(tuple(tokens), "".join(t for _, t, _ in tokens))
    return Template(tuple(tokens), None)


def glob_regex(tokens: tuple[tuple[int, str], ...], *, arn: bool) -> str:
    """The regular expression for a wildcard pattern.

    With ``arn=True`` the pattern is matched the way ARN operators and the Resource element match:
    the six colon-separated components separately, so a wildcard in the first five components never
    crosses a colon (the sixth, the resource part, may contain colons). A pattern with fewer than six
    components is matched as a plain string.
    """
    if arn:
        colons = sum(text.count(":") for _, text in tokens)
        arn = colons >= 5
    parts: list[str] = []
    colons = 0
    for kind, text in tokens:
        if kind == LITERAL:
            parts.append(re.escape(text))
            colons += text.count(":")
            continue
        for ch in text:
            if ch == "*":
                parts.append("[^:]*" if arn and colons < 5 else ".*")
            elif ch == "?":
                parts.append("[^:]" if arn and colons < 5 else ".")
            else:
                if ch == ":":
                    colons += 1
                parts.append(re.escape(ch))
    return "".join(parts)


@lru_cache(maxsize=4096)
def compile_regex(source: str, ignore_case: bool = False) -> re.Pattern[str]:
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(source, flags)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A wildcard pattern (StringLike, ArnLike, Action, Resource), precompiled when static."""

    template: Template
    arn: bool
    regex: re.Pattern[str] | None

    def matches(self, value: str, ctx: EvalContext) -> bool:
        regex = self.regex
        if regex is None:
            regex = compile_regex(glob_regex(self.template.render_tokens(ctx), arn=self.arn))
        return regex.fullmatch(value) is not None


def make_pattern(template: Template, *, arn: bool) -> Pattern:
    regex = None
    if template.static is not None:
        regex = compile_regex(glob_regex(tuple((k, t) for k, t, _ in template.tokens), arn=arn))
    return Pattern(template, arn, regex)
