"""The policy engine's one wildcard matcher: ``*`` (any sequence, also empty) and ``?`` (one character).

Every element that takes wildcards uses it: Action/NotAction, Resource/NotResource, the StringLike /
StringNotLike / ArnLike / ArnNotLike condition operators, with policy variables substituted first.
No regular expression is built from policy text, so nothing a tenant writes can make matching
backtrack.

Algorithm: a pattern is split on ``*`` into fixed-length segments. Without a ``*`` the value must
have the segment's length and match it in place. Otherwise the first segment is anchored at the
start, the last at the end, and the segments between are found left to right, each at its leftmost
occurrence after the previous one (taking the leftmost occurrence is always safe: a later one only
leaves less room for the rest). A segment without ``?`` is found with ``str.find`` (C, linear for
long needles); a segment with ``?`` is found by searching its longest literal run with ``str.find``
and comparing the other literal positions of each candidate with one C-level ``itemgetter`` call.
The cost is linear in the value for ``*``-only patterns, whatever their number of stars; with
``?`` inside a segment the worst case is (candidates of the anchor) x (literal characters of the
segment), evaluated in C.

Bounded time: every evaluation carries a :class:`Budget` of work units (one per Python-level step -
a segment search, a candidate comparison - plus the characters it covers, weighted by what they cost
in C). A match that would exceed it raises :class:`TooComplex`, and the evaluator decides the
statement the safe way (an Allow does not apply, a Deny does). Realistic policies use a few units per
request; the limit is reached only by patterns and values built to be slow, after about a
millisecond, so one authorization never holds the event loop for long, whatever the tenant wrote.

ARN matching (:func:`compile_arn`) compares the six colon-separated components separately, as AWS
does: a wildcard in the first five components never matches a colon; the sixth (the resource part)
may contain colons. A pattern with fewer than five colons is matched as a plain string.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any, Final

WILD = 0  # text in which * and ? are wildcards
LITERAL = 1  # text matched literally (substituted variables, ${*}, ${?}, ${$})

Tokens = tuple[tuple[int, str], ...]

#: Work units one authorization may spend on wildcard matching (about a millisecond of CPU).
WORK_LIMIT: Final = 4_000


class TooComplex(Exception):
    """A wildcard match needed more work than the evaluation's :class:`Budget` allows."""


class Budget:
    """The work units left for one authorization's wildcard matches."""

    __slots__ = ("left",)

    def __init__(self, units: int = WORK_LIMIT) -> None:
        self.left = units

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise TooComplex()


# The budget of a match without a limit: shared, and never exhausted (2**62 units); it holds no data.
_NO_BUDGET = Budget(1 << 62)


@dataclass(slots=True)  # not frozen: built by the thousand for long patterns, never changed
class _Segment:
    """A run of the pattern between two ``*``: literal characters and ``?``."""

    length: int
    text: str  # the segment, '?' positions holding any character
    plain: bool  # no '?': ``text`` is compared as is
    anchor: str  # longest literal run ('' when the segment is only '?')
    anchor_at: int  # its offset in the segment
    pick: Any  # itemgetter of the literal positions (None when there are none)
    expected: object  # pick(text)

    def at(self, value: str, pos: int) -> bool:
        """Whether the segment matches ``value`` at ``pos`` (the caller checked the length fits)."""
        if self.plain:
            return value.startswith(self.text, pos)
        pick = self.pick
        return pick is None or pick(value[pos : pos + self.length]) == self.expected

    def find(self, value: str, start: int, end: int, budget: Budget) -> int:
        """The leftmost position ``p >= start`` with ``p + length <= end`` where the segment matches."""
        if self.plain:
            found = value.find(self.text, start, end)
            budget.spend(1 + ((found if found >= 0 else end) - start) // 4096)
            return found
        if self.pick is None:
            return start if start + self.length <= end else -1
        anchor, offset, pick, expected = self.anchor, self.anchor_at, self.pick, self.expected
        limit = end - (self.length - offset - len(anchor))
        cost = 1 + self.length // 8
        hit = value.find(anchor, start + offset, limit)
        while hit >= 0:
            budget.spend(cost)
            pos = hit - offset
            if pick(value[pos : pos + self.length]) == expected:
                return pos
            hit = value.find(anchor, hit + 1, limit)
        return -1


class _Builder:
    """One segment being assembled: its text and the offsets of its ``?`` wildcards."""

    __slots__ = ("length", "parts", "wild")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.wild: list[int] = []

    def add(self, text: str, *, wildcards: bool) -> None:
        if wildcards:
            at = text.find("?")
            while at >= 0:
                self.wild.append(self.length + at)
                at = text.find("?", at + 1)
        self.parts.append(text)
        self.length += len(text)

    def build(self) -> _Segment:
        text = "".join(self.parts)
        wild = self.wild
        if not wild:
            return _Segment(len(text), text, True, text, 0, None, None)
        best_at, best_len, run_at = 0, 0, 0
        for at in (*wild, len(text)):
            if at - run_at > best_len:
                best_at, best_len = run_at, at - run_at
            run_at = at + 1
        wild_set = set(wild)
        literal = [i for i in range(len(text)) if i not in wild_set]
        pick = itemgetter(*literal) if literal else None
        expected = pick(text) if pick is not None else None
        return _Segment(len(text), text, False, text[best_at : best_at + best_len], best_at, pick, expected)


# Shapes with a shortcut (most policy patterns): the general loop is for the rest.
_GENERAL, _EXACT, _AFFIX, _ANYTHING = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled wildcard pattern; :meth:`match` tests a whole value."""

    source: str  # the pattern as written (for repr and tests)
    shape: int  # _EXACT (no wildcard), _AFFIX (prefix*suffix), _ANYTHING ("*"), _GENERAL
    starred: bool  # at least one '*'
    head: _Segment  # before the first '*' (the whole pattern when there is none)
    middle: tuple[_Segment, ...]
    tail: _Segment  # after the last '*'
    min_length: int
    ignore_case: bool

    def match(self, value: str, budget: Budget = _NO_BUDGET) -> bool:
        """Whether the whole ``value`` matches; raises :class:`TooComplex` when ``budget`` runs out."""
        if self.ignore_case:
            value = value.lower()
        shape = self.shape
        if shape == _EXACT:
            return value == self.head.text
        if shape == _AFFIX:
            return (
                len(value) >= self.min_length
                and value.startswith(self.head.text)
                and value.endswith(self.tail.text)
            )
        if shape == _ANYTHING:
            return True
        n = len(value)
        head = self.head
        if not self.starred:
            return n == head.length and head.at(value, 0)
        if n < self.min_length or not head.at(value, 0):
            return False
        tail = self.tail
        end = n - tail.length
        if not tail.at(value, end):
            return False
        budget.spend(1)
        pos = head.length
        for segment in self.middle:
            found = segment.find(value, pos, end, budget)
            if found < 0:
                return False
            pos = found + segment.length
        return True


def compile_glob(tokens: Iterable[tuple[int, str]], *, ignore_case: bool = False) -> Glob:
    """Compile ``(kind, text)`` tokens (``WILD`` text interprets ``*`` and ``?``)."""
    segments = [_Builder()]
    source: list[str] = []
    for kind, text in tokens:
        if ignore_case:
            text = text.lower()
        source.append(text)
        if kind == LITERAL:
            segments[-1].add(text, wildcards=False)
            continue
        first, *rest = text.split("*")
        segments[-1].add(first, wildcards=True)
        for piece in rest:
            # consecutive stars collapse: an empty middle segment adds nothing
            if segments[-1].length or len(segments) == 1:
                segments.append(_Builder())
            segments[-1].add(piece, wildcards=True)
    compiled = [b.build() for b in segments]
    starred = len(compiled) > 1
    head, tail = compiled[0], compiled[-1]
    middle = tuple(s for s in compiled[1:-1] if s.length)
    shape = _GENERAL
    if not starred and head.plain:
        shape = _EXACT
    elif starred and not middle and head.plain and tail.plain:
        shape = _ANYTHING if not head.length and not tail.length else _AFFIX
    return Glob(
        "".join(source),
        shape,
        starred,
        head,
        middle,
        tail if starred else _Builder().build(),
        sum(s.length for s in compiled),
        ignore_case,
    )


def compile_text(pattern: str, *, ignore_case: bool = False) -> Glob:
    """A pattern string in which every ``*`` and ``?`` is a wildcard."""
    return compile_glob(((WILD, pattern),), ignore_case=ignore_case)


@dataclass(frozen=True, slots=True)
class ArnGlob:
    """An ARN pattern: its six components (literal ones compared at once, ``*`` ones skipped, the
    others matched by a :class:`Glob` each), or one :class:`Glob` when it is not ARN-shaped."""

    whole: Glob | None
    pick: Any  # itemgetter of the literal components (None when there are none)
    expected: object  # their text
    globs: tuple[tuple[int, Glob], ...]  # (component index, glob) of the wildcard components

    def match(self, value: str, budget: Budget = _NO_BUDGET) -> bool:
        whole = self.whole
        if whole is not None:
            return whole.match(value, budget)
        parts = value.split(":", 5)
        if len(parts) != 6:
            return False
        pick = self.pick
        if pick is not None and pick(parts) != self.expected:
            return False
        return all(glob.match(parts[index], budget) for index, glob in self.globs)


def compile_arn(tokens: Tokens) -> ArnGlob:
    """Compile an ARN pattern (the first five colons, literal or not, separate the components)."""
    if sum(text.count(":") for _, text in tokens) < 5:
        return ArnGlob(compile_glob(tokens), None, None, ())
    components: list[list[tuple[int, str]]] = [[]]
    for kind, text in tokens:
        while len(components) < 6 and ":" in text:
            before, text = text.split(":", 1)
            components[-1].append((kind, before))
            components.append([])
        components[-1].append((kind, text))
    globs = [compile_glob(c) for c in components]
    literal = [i for i, g in enumerate(globs) if g.shape == _EXACT]
    pick = itemgetter(*literal) if literal else None
    expected = pick([g.head.text for g in globs]) if pick is not None else None
    wild = tuple((i, g) for i, g in enumerate(globs) if g.shape not in (_EXACT, _ANYTHING))
    return ArnGlob(None, pick, expected, wild)


@lru_cache(maxsize=4096)  # pure memo of a pure function
def cached_glob(tokens: Tokens, arn: bool) -> Glob | ArnGlob:
    """Compiled patterns of rendered policy variables (bounded: one entry per distinct rendering)."""
    return compile_arn(tokens) if arn else compile_glob(tokens)
