"""What a service function knows about the request it serves: who calls, in which region, and what
the audit record should say about it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openkms.domain.conditions import request_conditions
from openkms.domain.grants import NewGrant
from openkms.domain.model import KeyRecord, Principal


@dataclass(slots=True)
class RequestContext:
    principal: Principal
    region: str
    request_id: str
    source_ip: str = "127.0.0.1"
    user_agent: str = ""
    # False while a hot-path operation runs on the event loop: any database read raises NeedsIO and
    # the dispatcher re-runs the operation on a worker thread.
    allow_io: bool = True
    # Filled in by service functions for the audit record.
    resources: list[str] = field(default_factory=list)
    additional_event_data: dict[str, Any] = field(default_factory=dict)
    audit_key_arn: str | None = None
    # The alias a KeyId parameter used (condition key kms:RequestAlias).
    request_alias: str | None = None
    # Condition keys set by the request's parameters, and its encryption context (grant constraints
    # are checked against it; ReEncrypt's destination side has its own).
    conditions: dict[str, Any] = field(default_factory=dict)
    encryption_context: dict[str, str] | None = None
    destination_encryption_context: dict[str, str] | None = None
    destination_encryption_algorithm: str = "SYMMETRIC_DEFAULT"
    secure_transport: bool = False
    # Charges the request quota of a key's type (cryptographic operations; None when quotas are off).
    charge_key: Callable[[KeyRecord], None] | None = None
    # The KMS operation being served (set with the request's parameters by the dispatcher); the key
    # lookup reads it to apply the cross-account rule. Empty: no operation, so no key of another account.
    operation: str = ""
    # The request's GrantTokens (each already checked), and for CreateGrant the grant it asks for
    # (a grant's CreateGrant permission allows only grants derivable from it).
    grant_tokens: list[str] | None = None
    new_grant: NewGrant | None = None
    # The call's audit record written in its change's own transaction (set by the dispatcher for a
    # change; a service function that writes it there commits the change and its record at once).
    change_record: ChangeRecord | None = None

    @property
    def account_id(self) -> str:
        return self.principal.account_id

    def set_request(self, operation: str, params: dict[str, Any]) -> None:
        """Record what authorization needs to know of the request's parameters."""
        self.operation = operation
        self.conditions = request_conditions(operation, params)
        self.encryption_context = params.get("encryption_context") or params.get("source_encryption_context")
        self.destination_encryption_context = params.get("destination_encryption_context")
        self.destination_encryption_algorithm = (
            params.get("destination_encryption_algorithm") or "SYMMETRIC_DEFAULT"
        )
        self.grant_tokens = params.get("grant_tokens")

    def touch(self, key_arn: str) -> None:
        """Record that the request acted on this key (CloudTrail ``resources``)."""
        if key_arn not in self.resources:
            self.resources.append(key_arn)
        if self.audit_key_arn is None:
            self.audit_key_arn = key_arn


class ChangeRecord:
    """A change's audit record, stored in the transaction that makes the change, so that both are
    committed at once (one commit, and never a change without its record). ``build`` makes the
    record's rows from the operation's result and the key it acted on. The service function calls
    :meth:`prepare` before its transaction (the record is made outside the write lock), :meth:`write`
    in the transaction's body and :meth:`committed` once it has committed; until then :attr:`rows` is
    None and the dispatcher records the call itself (a failed commit took the rows with it)."""

    __slots__ = ("_build", "_prepared", "rows")

    def __init__(self, build: Callable[[dict[str, Any], str], list[dict[str, Any]]]) -> None:
        self._build = build
        self._prepared: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] | None = None

    def prepare(self, result: dict[str, Any], key_arn: str) -> None:
        """Make the record of the call whose result will be ``result`` (it acts on ``key_arn``)."""
        self._prepared = self._build(result, key_arn)

    def write(self, tx: Any) -> None:
        """Store the prepared record with ``tx``."""
        tx.record(self._prepared)

    def committed(self) -> None:
        """The transaction :meth:`write` stored the record in has committed."""
        self.rows = self._prepared


class NeedsIO(Exception):
    """Raised on the event loop when an operation needs the database; the dispatcher retries it on a
    worker thread (nothing has been changed when this is raised)."""
