"""Parsing and validating policy documents (key policies, IAM identity policies, role trust policies).

A document is parsed once into immutable, pre-normalised :class:`Statement` objects (lower-cased
actions in sets, precompiled wildcard regexes, normalised principals, parsed condition values), so
evaluation does no JSON work. :func:`parse_policy` parses (a pure function; its JSON comes from the
one policy loader, :mod:`openkms.auth.policy.jsontext`); a :class:`PolicyCache` keeps the parsed
documents by ``(text, kind, strict)`` — the server runtime holds one, shared by the KMS authorizer
and the IAM operations.

Error messages: key policies (KMS CreateKey / PutKeyPolicy) use the wording of
:mod:`openkms.domain.policy` and KMS's "Policy contains a statement with one or more invalid
principals."; identity and trust policies (IAM APIs) use IAM's wording ("Syntax errors in policy.",
"Policy statement must contain actions.", ...).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal

from openkms.auth.policy.conditions import ALL_VALUES, Condition, make_condition, parse_operator
from openkms.auth.policy.jsontext import PolicyJSONError, load_policy_json
from openkms.auth.policy.matching import (
    ActionMatcher,
    PrincipalSpec,
    ResourceMatcher,
    account_of_principal,
    action_matcher,
    principal_spec,
    resource_matcher,
)
from openkms.errors import LimitExceededException, MalformedPolicyDocumentException

PolicyKind = Literal["key", "identity", "trust"]

MAX_KEY_POLICY_BYTES = 32768
VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"

# --- messages -------------------------------------------------------------------------------------
MSG_INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."
MSG_KEY_TOO_LARGE = "Policy document exceeds the maximum size of 32768 bytes."
# Key policies (same wording as openkms.domain.policy.check_policy_document).
MSG_NOT_JSON = "The policy is not valid JSON."
MSG_NOT_OBJECT = "The policy is not a JSON object."
MSG_NO_STATEMENT = "Policy is missing required element - Statement"
MSG_STATEMENT_NOT_OBJECT = "Policy contains a statement that is not a JSON object."
MSG_BAD_EFFECT = "Policy contains a statement with an invalid Effect."
MSG_NO_PRINCIPAL = "Policy contains a statement with no principal."
MSG_BOTH_ACTIONS = "Policy contains a statement with both Action and NotAction."
MSG_BOTH_RESOURCES = "Policy contains a statement with both Resource and NotResource."
MSG_BOTH_PRINCIPALS = "Policy contains a statement with both Principal and NotPrincipal."
MSG_UNKNOWN_ELEMENT = "Policy contains a statement with an unknown element: {name}"
MSG_UNKNOWN_TOP = "Policy contains an unknown element: {name}"
MSG_BAD_ELEMENT = "Policy contains a statement with an invalid {name} element."
MSG_BAD_CONDITION = "Policy contains a statement with an invalid Condition element."
MSG_UNKNOWN_OPERATOR = "Policy contains a statement with an unknown condition operator: {name}"
MSG_DUPLICATE_SID = "Statement IDs (SID) in a single policy must be unique."
MSG_OVERLY_PERMISSIVE = (
    "OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued condition key "
    "matches requests without the specified {what} or with an unspecified {what}. To fix, remove "
    "ForAllValues."
)
# IAM (identity and trust policies).
MSG_IAM_SYNTAX = "Syntax errors in policy."
MSG_IAM_VERSION = "Policy document must be version 2012-10-17 or greater."
MSG_IAM_NO_ACTIONS = "Policy statement must contain actions."
MSG_IAM_NO_RESOURCES = "Policy statement must contain resources."
MSG_IAM_HAS_PRINCIPAL = "Policy document should not specify a principal."
MSG_IAM_NO_PRINCIPAL = "Missing required field Principal."
MSG_IAM_TRUST_RESOURCE = "Has prohibited field Resource."
MSG_IAM_VENDOR = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
MSG_IAM_ONE_COLON = "Actions/Condition can contain only one colon."
MSG_IAM_BAD_PRINCIPAL = 'Invalid principal in policy: "{type}":"{value}"'

_TOP_ELEMENTS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_ELEMENTS = frozenset(
    {
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
)
_PRINCIPAL_TYPES = frozenset({"AWS", "Service", "Federated"})
# Valid AWS principal ARNs: account root, users, roles, assumed-role sessions, federated users.
_AWS_PRINCIPAL_ARN = re.compile(
    r"arn:aws[a-z-]*:(?:iam::\d{12}:(?:root|user/[\w+=,.@/-]+|role/[\w+=,.@/-]+)"
    r"|sts::\d{12}:(?:assumed-role/[\w+=,.@-]+/[\w+=,.@-]+|federated-user/[\w+=,.@-]+))\Z"
)
_SERVICE_PRINCIPAL = re.compile(r"[a-z0-9][a-z0-9.-]*\Z")
_ACTION = re.compile(r"[a-zA-Z0-9.\-]+:[^:]*\Z")


@dataclass(frozen=True, slots=True)
class Statement:
    """One normalised statement. ``actions``/``resources`` are None when the element is missing
    (AWS accepts such key policy statements but they never apply)."""

    sid: str | None
    deny: bool
    principal: PrincipalSpec | None
    not_principal: bool
    actions: ActionMatcher | None
    not_action: bool
    resources: ResourceMatcher | None
    not_resource: bool
    conditions: tuple[Condition, ...]

    @property
    def effective(self) -> bool:
        return self.actions is not None and self.resources is not None


ActionIndex = tuple[tuple[Statement, ...], tuple[Statement, ...]]
_INDEX_LIMIT = 512


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    kind: PolicyKind
    version: str | None
    id: str | None
    statements: tuple[Statement, ...]
    _index: dict[str, ActionIndex] = field(default_factory=dict, compare=False, repr=False)

    def for_action(self, action: str) -> ActionIndex:
        """(Deny statements, Allow statements) whose Action/NotAction covers ``action`` (lower-cased).

        Memoised per action name, so the per-request work skips every statement about other actions.
        """
        found = self._index.get(action)
        if found is None:
            denies: list[Statement] = []
            allows: list[Statement] = []
            for statement in self.statements:
                actions = statement.actions
                if actions is None or statement.resources is None:
                    continue
                if actions.matches(action) != statement.not_action:
                    (denies if statement.deny else allows).append(statement)
            found = (tuple(denies), tuple(allows))
            if len(self._index) >= _INDEX_LIMIT:
                self._index.clear()
            self._index[action] = found
        return found

    def aws_principals(self) -> Iterator[str]:
        """Every AWS principal value named in Principal/NotPrincipal elements, in document order."""
        for statement in self.statements:
            if statement.principal is not None:
                yield from statement.principal.aws


class _Errors:
    """Structural errors: IAM says "Syntax errors in policy." for all of them, KMS is more specific."""

    def __init__(self, kind: PolicyKind) -> None:
        self.iam = kind != "key"

    def fail(self, key_message: str) -> MalformedPolicyDocumentException:
        return MalformedPolicyDocumentException(MSG_IAM_SYNTAX if self.iam else key_message)


def parse_policy(text: str, *, kind: PolicyKind = "key", strict: bool = False) -> PolicyDocument:
    """Parse and validate a policy document (raises AWS's errors for bad documents); not cached:
    the service parses through its :class:`PolicyCache`.

    ``strict=True`` for a document being submitted (CreateKey, PutKeyPolicy, the IAM APIs): its JSON
    must also pass :mod:`openkms.auth.policy.jsontext`'s strict rules (no NaN/Infinity, finite
    numbers, no duplicate keys). Stored documents are read with ``strict=False``.
    """
    return _Parser(text, kind, strict).parse()


CACHE_SIZE = 2048


class PolicyCache:
    """Parsed documents by ``(text, kind, strict)``: a bounded LRU of ``size`` documents (documents that
    fail to parse are not kept). Safe to share between threads; the event loop only reads it."""

    __slots__ = ("_entries", "_lock", "size")

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._entries: OrderedDict[tuple[str, PolicyKind, bool], PolicyDocument] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def parse(self, text: str, *, kind: PolicyKind = "key", strict: bool = False) -> PolicyDocument:
        """:func:`parse_policy`, parsed once per ``(text, kind, strict)`` while the document is kept."""
        key = (text, kind, strict)
        entries = self._entries
        doc = entries.get(key)
        if doc is not None:
            with suppress(KeyError):  # evicted meanwhile by another thread
                entries.move_to_end(key)
            return doc
        doc = _Parser(text, kind, strict).parse()
        with self._lock:
            entries[key] = doc
            while len(entries) > self.size:
                entries.popitem(last=False)
        return doc

    def cached(self, text: str, kind: PolicyKind = "key") -> PolicyDocument | None:
        """The stored document ``text`` if it is parsed already, else None (a caller on the event loop
        then moves to a worker thread: parsing a large document must not hold the loop)."""
        return self._entries.get((text, kind, False))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"PolicyCache(documents={len(self._entries)}, size={self.size})"


def check_principals(doc: PolicyDocument, exists: Callable[[str], bool]) -> None:
    """Ask ``exists`` about each AWS principal other than ``*`` and account principals; raise
    AWS's invalid-principals error when one does not exist."""
    seen: set[str] = set()
    for value in doc.aws_principals():
        if value == "*" or value in seen or account_of_principal(value) is not None:
            continue
        seen.add(value)
        if not exists(value):
            raise MalformedPolicyDocumentException(MSG_INVALID_PRINCIPALS)


class _Parser:
    def __init__(self, text: str, kind: PolicyKind, strict: bool) -> None:
        self.text = text
        self.kind = kind
        self.strict = strict
        self.err = _Errors(kind)
        self.variables = False

    def parse(self) -> PolicyDocument:
        kind, err = self.kind, self.err
        if kind == "key" and len(self.text.encode("utf-8")) > MAX_KEY_POLICY_BYTES:
            raise LimitExceededException(MSG_KEY_TOO_LARGE)
        try:
            raw = load_policy_json(self.text, strict=self.strict)
        except PolicyJSONError:
            raise err.fail(MSG_NOT_JSON) from None
        if not isinstance(raw, dict):
            raise err.fail(MSG_NOT_OBJECT)
        for name in raw:
            if name not in _TOP_ELEMENTS:
                raise err.fail(MSG_UNKNOWN_TOP.format(name=name))
        version = raw.get("Version")
        if version is not None and version not in (VERSION_2012, VERSION_2008):
            raise err.fail(f"The policy contains an invalid version: {version}")
        if kind == "identity" and version != VERSION_2012:
            raise MalformedPolicyDocumentException(MSG_IAM_VERSION)
        self.variables = version == VERSION_2012
        doc_id = raw.get("Id")
        if doc_id is not None and not isinstance(doc_id, str):
            raise err.fail(MSG_BAD_ELEMENT.format(name="Id"))
        statements = raw.get("Statement")
        if isinstance(statements, dict):
            statements = [statements]
        if not isinstance(statements, list) or not statements:
            raise err.fail(MSG_NO_STATEMENT)
        parsed = tuple(self.statement(s) for s in statements)
        sids = [s.sid for s in parsed if s.sid]
        if len(sids) != len(set(sids)):
            raise MalformedPolicyDocumentException(MSG_DUPLICATE_SID)
        return PolicyDocument(kind, version, doc_id, parsed)

    # -- statements ------------------------------------------------------------------------------

    def statement(self, raw: object) -> Statement:
        kind, err = self.kind, self.err
        if not isinstance(raw, dict):
            raise err.fail(MSG_STATEMENT_NOT_OBJECT)
        for name in raw:
            if name not in _STATEMENT_ELEMENTS:
                raise err.fail(MSG_UNKNOWN_ELEMENT.format(name=name))
        sid = raw.get("Sid")
        if sid is not None and not isinstance(sid, str):
            raise err.fail(MSG_BAD_ELEMENT.format(name="Sid"))
        effect = raw.get("Effect")
        if not isinstance(effect, str) or effect.lower() not in ("allow", "deny"):
            raise err.fail(MSG_BAD_EFFECT)
        if "Action" in raw and "NotAction" in raw:
            raise err.fail(MSG_BOTH_ACTIONS)
        if "Resource" in raw and "NotResource" in raw:
            raise err.fail(MSG_BOTH_RESOURCES)
        if "Principal" in raw and "NotPrincipal" in raw:
            raise err.fail(MSG_BOTH_PRINCIPALS)

        principal, not_principal = self.principal_element(raw)
        action_name = "NotAction" if "NotAction" in raw else "Action"
        actions = self.strings(raw, action_name)
        resource_name = "NotResource" if "NotResource" in raw else "Resource"
        resources = self.strings(raw, resource_name)
        conditions = self.conditions(raw.get("Condition"))

        if kind != "key" and not actions:
            raise MalformedPolicyDocumentException(MSG_IAM_NO_ACTIONS)
        if kind != "key":
            for action in actions or ():
                self.check_action(action)
        if kind == "identity" and not resources:
            raise MalformedPolicyDocumentException(MSG_IAM_NO_RESOURCES)
        if kind == "trust":
            if resources is not None:
                raise MalformedPolicyDocumentException(MSG_IAM_TRUST_RESOURCE)
            resources = ["*"]  # a trust policy's resource is the role itself

        return Statement(
            sid=sid,
            deny=effect.lower() == "deny",
            principal=principal,
            not_principal=not_principal,
            actions=action_matcher(actions) if actions else None,
            not_action=action_name == "NotAction",
            resources=resource_matcher(resources, variables=self.variables) if resources else None,
            not_resource=resource_name == "NotResource",
            conditions=conditions,
        )

    def strings(self, raw: dict[str, Any], name: str) -> list[str] | None:
        """A string-or-list-of-strings element; None when absent."""
        if name not in raw:
            return None
        value = raw[name]
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise self.err.fail(MSG_BAD_ELEMENT.format(name=name))

    def check_action(self, action: str) -> None:
        if action == "*":
            return
        if ":" not in action:
            raise MalformedPolicyDocumentException(MSG_IAM_VENDOR)
        if action.count(":") > 1:
            raise MalformedPolicyDocumentException(MSG_IAM_ONE_COLON)
        if not _ACTION.match(action):
            raise MalformedPolicyDocumentException(f"Vendor {action.split(':', 1)[0]} is not valid")

    # -- principals ------------------------------------------------------------------------------

    def principal_element(self, raw: dict[str, Any]) -> tuple[PrincipalSpec | None, bool]:
        kind = self.kind
        name = "NotPrincipal" if "NotPrincipal" in raw else "Principal"
        if name not in raw:
            if kind == "key":
                raise MalformedPolicyDocumentException(MSG_NO_PRINCIPAL)
            if kind == "trust":
                raise MalformedPolicyDocumentException(MSG_IAM_NO_PRINCIPAL)
            return None, False
        if kind == "identity":
            raise MalformedPolicyDocumentException(MSG_IAM_HAS_PRINCIPAL)
        if kind == "trust" and name == "NotPrincipal":
            raise MalformedPolicyDocumentException(MSG_IAM_SYNTAX)
        return self.principal(raw[name]), name == "NotPrincipal"

    def principal(self, value: object) -> PrincipalSpec:
        if value == "*":
            return principal_spec(any_=True, aws=(), services=(), federated=())
        if not isinstance(value, dict) or not value:
            raise self.bad_principal("AWS", value)
        lists: dict[str, list[str]] = {}
        for ptype, pvalue in value.items():
            if ptype not in _PRINCIPAL_TYPES:
                raise self.bad_principal(ptype, pvalue)
            values = [pvalue] if isinstance(pvalue, str) else pvalue
            if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                raise self.bad_principal(ptype, pvalue)
            for v in values:
                if not self.valid_principal(ptype, v):
                    raise self.bad_principal(ptype, v)
            lists[ptype] = values
        return principal_spec(
            any_=False,
            aws=lists.get("AWS", ()),
            services=lists.get("Service", ()),
            federated=lists.get("Federated", ()),
        )

    @staticmethod
    def valid_principal(ptype: str, value: str) -> bool:
        if ptype == "AWS":
            return (
                value == "*"
                or account_of_principal(value) is not None
                or bool(_AWS_PRINCIPAL_ARN.match(value))
            )
        if ptype == "Service":
            return value == "*" or bool(_SERVICE_PRINCIPAL.match(value))
        return bool(value)

    def bad_principal(self, ptype: str, value: object) -> MalformedPolicyDocumentException:
        if self.kind == "trust":
            shown = value if isinstance(value, str) else json.dumps(value)
            return MalformedPolicyDocumentException(MSG_IAM_BAD_PRINCIPAL.format(type=ptype, value=shown))
        return MalformedPolicyDocumentException(MSG_INVALID_PRINCIPALS)

    # -- conditions ------------------------------------------------------------------------------

    def conditions(self, raw: object) -> tuple[Condition, ...]:
        if raw is None:
            return ()
        err = self.err
        if not isinstance(raw, dict):
            raise err.fail(MSG_BAD_CONDITION)
        out: list[Condition] = []
        for op_name, block in raw.items():
            operator = parse_operator(op_name)
            if operator is None:
                raise err.fail(MSG_UNKNOWN_OPERATOR.format(name=op_name))
            if not isinstance(block, dict):
                raise err.fail(MSG_BAD_CONDITION)
            for key, values in block.items():
                if not key:
                    raise err.fail(MSG_BAD_CONDITION)
                values = values if isinstance(values, list) else [values]
                if not all(isinstance(v, str | bool | int | float) for v in values):
                    raise err.fail(MSG_BAD_CONDITION)
                if self.kind == "key" and operator.qualifier == ALL_VALUES:
                    self.check_overly_permissive(key)
                out.append(make_condition(operator, key, values, variables=self.variables))
        return tuple(out)

    @staticmethod
    def check_overly_permissive(key: str) -> None:
        lowered = key.lower()
        if lowered.startswith("kms:encryptioncontext:"):
            raise MalformedPolicyDocumentException(MSG_OVERLY_PERMISSIVE.format(what="encryption context"))
        if lowered.startswith("aws:requesttag/"):
            raise MalformedPolicyDocumentException(MSG_OVERLY_PERMISSIVE.format(what="tag"))
