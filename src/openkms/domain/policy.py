"""Key policy documents: the default policy.

Parsing and validating documents (syntax, AWS's errors, the strict JSON rules) lives in the policy
engine, :func:`openkms.auth.policy.parse_policy`.
"""

from __future__ import annotations

import json

from openkms.arns import account_root_arn


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
