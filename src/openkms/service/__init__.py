"""The service layer, one subpackage per product: ``kms/`` (the KMS operations), ``iam/`` (the IAM
and STS operations: users, access keys, roles, managed policies, sessions) and ``identity/`` (what
both need: accounts, credentials and their cache, identity policies). It knows nothing of HTTP or
JSON; the server, the CLI and the console call it. ``kms/`` and ``iam/`` never import each other,
and ``kms/`` reaches ``identity/`` only through its authorizer (contracts in pyproject.toml)."""
