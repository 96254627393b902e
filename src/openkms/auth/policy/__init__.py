"""Policy evaluation engine: key policies, IAM identity policies and role trust policies.

A pure package (no I/O). Parse a document once with :func:`parse_policy` (or through a
:class:`PolicyCache`, which keeps parsed documents), then evaluate it on every request with
:func:`evaluate` (one document) or :func:`authorize` (AWS KMS's combination of key policy, identity
policies and grants). :func:`build_console_key_policy` and
:func:`describe_console_key_policy` write and read the console-style key policy.
"""

from openkms.auth.policy.conditions import parse_date
from openkms.auth.policy.console import (
    CONSOLE_POLICY_ID,
    ConsolePolicyView,
    build_console_key_policy,
    describe_console_key_policy,
    pretty_json,
)
from openkms.auth.policy.context import (
    AMBIGUOUS,
    ASSUMED_ROLE,
    AWS_SERVICE,
    IAM_USER,
    ROOT,
    Caller,
    ConditionValue,
    Request,
)
from openkms.auth.policy.document import (
    MAX_KEY_POLICY_BYTES,
    MSG_INVALID_PRINCIPALS,
    PolicyCache,
    PolicyDocument,
    PolicyKind,
    Statement,
    check_principals,
    parse_policy,
)
from openkms.auth.policy.evaluate import (
    REASON_DENY_IDENTITY,
    REASON_DENY_RESOURCE,
    REASON_NO_IDENTITY,
    REASON_NO_RESOURCE,
    Decision,
    Effect,
    access_denied_message,
    authorize,
    evaluate,
)

__all__ = [
    "AMBIGUOUS",
    "ASSUMED_ROLE",
    "AWS_SERVICE",
    "CONSOLE_POLICY_ID",
    "IAM_USER",
    "MAX_KEY_POLICY_BYTES",
    "MSG_INVALID_PRINCIPALS",
    "REASON_DENY_IDENTITY",
    "REASON_DENY_RESOURCE",
    "REASON_NO_IDENTITY",
    "REASON_NO_RESOURCE",
    "ROOT",
    "Caller",
    "ConditionValue",
    "ConsolePolicyView",
    "Decision",
    "Effect",
    "PolicyCache",
    "PolicyDocument",
    "PolicyKind",
    "Request",
    "Statement",
    "access_denied_message",
    "authorize",
    "build_console_key_policy",
    "check_principals",
    "describe_console_key_policy",
    "evaluate",
    "parse_date",
    "parse_policy",
    "pretty_json",
]
