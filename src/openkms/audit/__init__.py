"""The audit trail: CloudTrail-shaped records of every call and of the events the service initiates."""
