"""Transaction methods for web console sessions and the console's event history view."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from openkms.storage import schema as t
from openkms.storage.rows import ConsoleSessionRow, like_escape
from openkms.storage.tx_base import TxBase, storable


class ConsoleTx(TxBase):
    # -- web console (migration 5): sessions and the event history view -------------------------------
    # Used only by openkms.console. Sessions are keyed by the SHA-256 of their random id.
    def insert_console_session(self, row: ConsoleSessionRow) -> None:
        self.conn.execute(
            t.console_sessions.insert().values(
                session_hash=row.session_hash,
                access_key_id=row.access_key_id,
                account_id=row.account_id,
                region=row.region,
                created_at=row.created_at,
                last_seen=row.last_seen,
                expires=row.expires,
                prefs=json.dumps(row.prefs),
            )
        )

    def get_console_session(self, session_hash: str) -> ConsoleSessionRow | None:
        c = t.console_sessions.c
        r = self.conn.execute(sa.select(t.console_sessions).where(c.session_hash == session_hash)).first()
        if r is None:
            return None
        return ConsoleSessionRow(
            r.session_hash,
            r.access_key_id,
            r.account_id,
            r.region,
            r.created_at,
            r.last_seen,
            r.expires,
            json.loads(r.prefs),
        )

    def touch_console_session(self, session_hash: str, now: float) -> None:
        c = t.console_sessions.c
        self.conn.execute(
            t.console_sessions.update().where(c.session_hash == session_hash).values(last_seen=now)
        )

    def set_console_session_prefs(self, session_hash: str, prefs: dict[str, Any]) -> None:
        c = t.console_sessions.c
        self.conn.execute(
            t.console_sessions.update().where(c.session_hash == session_hash).values(prefs=json.dumps(prefs))
        )

    def set_console_session_region(self, session_hash: str, region: str) -> None:
        c = t.console_sessions.c
        self.conn.execute(
            t.console_sessions.update().where(c.session_hash == session_hash).values(region=region)
        )

    def console_key_regions(self, account_id: str) -> list[str]:
        """The Regions where the account has keys (the console's Region selector lists them)."""
        c = t.keys.c
        q = sa.select(c.region).where(c.account_id == account_id).distinct()
        return sorted(str(r.region) for r in self.conn.execute(q))

    def delete_console_session(self, session_hash: str) -> None:
        c = t.console_sessions.c
        self.conn.execute(t.console_sessions.delete().where(c.session_hash == session_hash))

    def purge_console_sessions(self, idle_before: float, now: float) -> int:
        c = t.console_sessions.c
        q = t.console_sessions.delete().where(sa.or_(c.last_seen < idle_before, c.expires <= now))
        return int(self.conn.execute(q).rowcount)

    def console_audit_events(
        self,
        *,
        account_id: str,
        key_id: str | None = None,
        event_name: str | None = None,
        principal: str | None = None,
        start: float | None = None,
        end: float | None = None,
        read_only: bool | None = None,
        region: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[tuple[int, str]]:
        """One page of an account's audit records, newest first. ``principal`` is an ARN or the last
        segment of one (a user or role name); ``read_only`` filters on the record's readOnly field;
        ``region`` is the Region the records were made in (as CloudTrail's event history is kept)."""
        if not storable(key_id, event_name, principal):
            return []
        c = t.audit_events.c
        q = sa.select(c.id, c.record).where(c.account_id == account_id)
        if region is not None:
            q = q.where(c.region == region)
        if key_id is not None:
            q = q.where(c.key_id == key_id)
        if event_name is not None:
            q = q.where(c.event_name == event_name)
        if principal is not None:
            if principal.startswith("arn:"):
                q = q.where(c.principal_arn == principal)
            else:
                q = q.where(c.principal_arn.like("%/" + like_escape(principal), escape="\\"))
        if start is not None:
            q = q.where(c.event_time >= start)
        if end is not None:
            q = q.where(c.event_time <= end)
        if read_only is not None:
            q = q.where(c.record.like('%"readOnly":' + ("true" if read_only else "false") + "%"))
        if before_id is not None:
            q = q.where(c.id < before_id)
        return [(r.id, r.record) for r in self.conn.execute(q.order_by(c.id.desc()).limit(limit))]
