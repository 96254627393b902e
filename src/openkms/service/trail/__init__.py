"""The tamper-evident audit trail: the chain of records, signed digests, verification, retention."""
