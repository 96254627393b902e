"""The pure grant rules of domain/grants.py: a request's encryption context against a grant's
constraints (key names without regard to case, values exactly, colliding keys never), and which child
grants a parent grant's CreateGrant permission allows."""

from __future__ import annotations

import itertools

import pytest

from openkms.domain.grants import (
    EQUALS,
    SUBSET,
    NewGrant,
    at_least_as_strict,
    context_satisfies,
    derivable,
    fold_context,
)

HR = {"dept": "hr"}

SATISFIES = [
    (None, {}, True),
    ({}, {"x": "1"}, True),
    ({EQUALS: HR}, HR, True),
    ({EQUALS: HR}, {"DEPT": "hr"}, True),
    ({EQUALS: HR}, {"dept": "HR"}, False),
    ({EQUALS: HR}, {}, False),
    ({EQUALS: HR}, {**HR, "x": "1"}, False),
    ({EQUALS: {}}, {}, True),
    ({EQUALS: {}}, HR, False),
    ({SUBSET: HR}, HR, True),
    ({SUBSET: HR}, {**HR, "x": "1"}, True),
    ({SUBSET: HR}, {"x": "1"}, False),
    ({SUBSET: HR}, None, False),
    ({SUBSET: {}}, {"x": "1"}, True),
    ({EQUALS: HR, SUBSET: HR}, HR, True),
    ({EQUALS: HR, SUBSET: {"x": "1"}}, HR, False),
    # Keys equal under case-folding: ambiguous, never satisfies (whatever the order or the values).
    ({EQUALS: {"a": "2"}}, {"A": "1", "a": "2"}, False),
    ({EQUALS: {"a": "2"}}, {"a": "2", "A": "9"}, False),
    ({EQUALS: {"a": "2"}}, {"a": "2", "A": "2"}, False),
    ({SUBSET: {"a": "2"}}, {"A": "1", "a": "2"}, False),
    ({SUBSET: {"a": "2"}}, {"a": "2", "A": "9"}, False),
    ({SUBSET: {"a": "2", "A": "2"}}, {"a": "2"}, False),
    (None, {"a": "2", "A": "9"}, True),  # no constraint: nothing to compare
]


@pytest.mark.parametrize(("constraints", "context", "expected"), SATISFIES)
def test_context_satisfies(constraints: dict | None, context: dict | None, expected: bool) -> None:
    assert context_satisfies(constraints, context) is expected


@pytest.mark.parametrize("pairs", [[("A", "1"), ("a", "2"), ("b", "3")], [("x", "1"), ("X", "1")]])
def test_collisions_are_order_independent(pairs: list[tuple[str, str]]) -> None:
    for order in itertools.permutations(pairs):
        assert fold_context(dict(order)) is None
        for kind in (EQUALS, SUBSET):
            assert context_satisfies({kind: {"a": "2"}}, dict(order)) is False


def test_fold_context() -> None:
    assert fold_context({"Dept": "HR", "x": "1"}) == {"dept": "HR", "x": "1"}
    assert fold_context(None) == {}


STRICTER = [
    # (child, parent, child at least as strict)
    (None, None, True),
    ({SUBSET: HR}, None, True),
    ({EQUALS: HR}, None, True),
    (None, {SUBSET: HR}, False),
    (None, {EQUALS: HR}, False),
    ({EQUALS: HR}, {EQUALS: HR}, True),
    ({EQUALS: {"DEPT": "hr"}}, {EQUALS: HR}, True),
    ({EQUALS: {"dept": "HR"}}, {EQUALS: HR}, False),
    ({EQUALS: {**HR, "x": "1"}}, {EQUALS: HR}, False),
    ({EQUALS: {}}, {EQUALS: HR}, False),
    ({SUBSET: HR}, {EQUALS: HR}, False),
    ({SUBSET: HR}, {SUBSET: HR}, True),
    ({SUBSET: {**HR, "x": "1"}}, {SUBSET: HR}, True),
    ({SUBSET: HR}, {SUBSET: {**HR, "x": "1"}}, False),
    ({EQUALS: {**HR, "x": "1"}}, {SUBSET: HR}, True),
    ({EQUALS: {"x": "1"}}, {SUBSET: HR}, False),
    ({SUBSET: {"x": "1"}}, {SUBSET: HR}, False),
    ({SUBSET: {**HR, "DEPT": "hr"}}, {SUBSET: HR}, False),
    ({EQUALS: {**HR, "DEPT": "hr"}}, {SUBSET: HR}, False),
    ({SUBSET: HR}, {SUBSET: {**HR, "DEPT": "hr"}}, False),
    ({EQUALS: HR, SUBSET: HR}, {EQUALS: HR}, True),
    ({SUBSET: HR}, {EQUALS: HR, SUBSET: HR}, False),
    ({EQUALS: HR}, {EQUALS: HR, SUBSET: HR}, True),
]


@pytest.mark.parametrize(("child", "parent", "expected"), STRICTER)
def test_at_least_as_strict(child: dict | None, parent: dict | None, expected: bool) -> None:
    assert at_least_as_strict(child, parent) is expected


def test_strictness_is_sound() -> None:
    """Whenever a child is accepted, every context it allows (from a small universe) the parent allows."""
    universe = [{}, HR, {"DEPT": "hr"}, {"dept": "HR"}, {**HR, "x": "1"}, {"x": "1"}, {**HR, "x": "2"}]
    for child, parent, expected in STRICTER:
        if expected:
            for context in universe:
                if context_satisfies(child, context):
                    assert context_satisfies(parent, context), (child, parent, context)


DERIVE = [
    (("CreateGrant",), ("Encrypt", "Decrypt"), False),
    (("Decrypt", "CreateGrant"), ("Decrypt",), True),
    (("Decrypt", "CreateGrant"), ("Decrypt", "CreateGrant"), True),
    (("Decrypt", "CreateGrant"), ("Decrypt", "Encrypt"), False),
    (("Decrypt", "CreateGrant"), ("RetireGrant",), False),
]


@pytest.mark.parametrize(("parent_ops", "child_ops", "expected"), DERIVE)
def test_derivable_operations(
    parent_ops: tuple[str, ...], child_ops: tuple[str, ...], expected: bool
) -> None:
    assert derivable(parent_ops, None, NewGrant(frozenset(child_ops), None)) is expected
    # The constraints are judged too: a looser child is refused whatever its operations.
    assert derivable(parent_ops, {EQUALS: HR}, NewGrant(frozenset(child_ops), None)) is False
