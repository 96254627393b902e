"""The KMS operations: one module per group of operations (``keys``, ``crypto_ops``, ``aliases``,
``tagging``, ``policies``, ``rotation``, ``importing``, ``grants``, ``asymmetric_ops``, ``mac_ops``,
``data_key_pairs``, ``usage``), snake_case functions named after the AWS operation taking
``(core, ctx, **params)``; ``core.py`` holds what they share (key resolution, loading,
authorization), ``authz.py`` the authorizer (the only module here that reads ``service/identity/``),
``registry.py`` maps operation names to functions."""
