"""What a service function knows about the request it serves: who calls, in which region, and what
the audit record should say about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openkms.domain.model import Principal


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

    @property
    def account_id(self) -> str:
        return self.principal.account_id

    def touch(self, key_arn: str) -> None:
        """Record that the request acted on this key (CloudTrail ``resources``)."""
        if key_arn not in self.resources:
            self.resources.append(key_arn)
        if self.audit_key_arn is None:
            self.audit_key_arn = key_arn


class NeedsIO(Exception):
    """Raised on the event loop when an operation needs the database; the dispatcher retries it on a
    worker thread (nothing has been changed when this is raised)."""
