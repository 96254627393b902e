"""Background jobs: key deletion, automatic rotation, change-log pruning (and, later, material expiry).
Each job is idempotent, so every node may run it: row locks make each action happen once."""
