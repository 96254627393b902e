"""Key policy documents: the default policy, size and syntax checks.

Enforcement (evaluating statements against a request) lives in the authorization layer; this module
only knows what a well-formed document is.
"""

from __future__ import annotations

import json
from typing import Any

from openkms.arns import account_root_arn
from openkms.errors import LimitExceededException, MalformedPolicyDocumentException

MAX_POLICY_BYTES = 32768


def default_key_policy(account_id: str) -> str:
    """The policy AWS gives a key created through the API without one (Id ``key-default-1``)."""
    doc = {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": account_root_arn(account_id)},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    return json.dumps(doc, indent=2)


def check_policy_document(policy: str) -> dict[str, Any]:
    """Parse and syntax-check a key policy; raise AWS's errors for oversized or malformed documents."""
    if len(policy.encode("utf-8")) > MAX_POLICY_BYTES:
        raise LimitExceededException("Policy document exceeds the maximum size of 32768 bytes.")
    try:
        doc = json.loads(policy)
    except ValueError:
        raise MalformedPolicyDocumentException("The policy is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise MalformedPolicyDocumentException("The policy is not a JSON object.")
    statements = doc.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise MalformedPolicyDocumentException("Policy is missing required element - Statement")
    version = doc.get("Version")
    if version is not None and version not in ("2012-10-17", "2008-10-17"):
        raise MalformedPolicyDocumentException(f"The policy contains an invalid version: {version}")
    for statement in statements:
        if not isinstance(statement, dict):
            raise MalformedPolicyDocumentException("Policy contains a statement that is not a JSON object.")
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise MalformedPolicyDocumentException("Policy contains a statement with an invalid Effect.")
        if "Principal" not in statement and "NotPrincipal" not in statement:
            raise MalformedPolicyDocumentException("Policy contains a statement with no principal.")
    return doc
