"""``openkms audit list``: read the CloudTrail-format audit trail."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from openkms.cli.options import data_options, settings_from
from openkms.storage.store import Store


def _time(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


@click.group()
def audit() -> None:
    """Read the audit trail."""


@audit.command("list")
@click.option("--key-id", help="Key id or key ARN.")
@click.option("--event-name")
@click.option("--account-id")
@click.option("--start-time", help="ISO-8601 or epoch seconds.")
@click.option("--end-time", help="ISO-8601 or epoch seconds.")
@click.option("--limit", default=1000, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the records.")
@data_options
def list_events(
    key_id: str | None,
    event_name: str | None,
    account_id: str | None,
    start_time: str | None,
    end_time: str | None,
    limit: int,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """List audit records, newest first."""
    settings = settings_from(data_dir, database_url, root_key_file)
    if database_url is None and not (data_dir / "openkms.db").exists():
        raise click.ClickException(f"No openkms data in {data_dir}")
    store = Store(settings.db_url)
    try:
        with store.read() as tx:
            rows = tx.query_audit(
                account_id=account_id,
                key_id=key_id.rsplit("/", 1)[-1] if key_id else None,
                event_name=event_name,
                start=_time(start_time),
                end=_time(end_time),
                limit=limit,
            )
    finally:
        store.close()
    records = [json.loads(record) for _, record in rows]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    for r in records:
        who = (r.get("userIdentity") or {}).get("arn") or (r.get("userIdentity") or {}).get("invokedBy", "")
        err = f"  {r['errorCode']}" if r.get("errorCode") else ""
        click.echo(f"{r['eventTime']}  {r['eventName']:<32} {who}{err}")


@audit.command("export")
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory laid out as CloudTrail's S3 bucket (AWSLogs/...).",
)
@click.option("--start-time", help="ISO-8601 or epoch seconds (default: the oldest record).")
@click.option("--end-time", help="ISO-8601 or epoch seconds (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@data_options
def export_files(
    out_dir: Path,
    start_time: str | None,
    end_time: str | None,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Write the records of a time range as CloudTrail log files (one per five minutes of events per
    account and Region) with one signed digest file per account and Region."""
    # Late: the runtime's imports (the service layers) are for the commands that open the keyring.
    from openkms.audit.cloudtrail_files import DigestSigner
    from openkms.audit.export import export_range
    from openkms.clock import SystemClock
    from openkms.server.runtime import digest_signer, open_trusted_store
    from openkms.service.trust.keyring import RootOfTrustError

    settings = settings_from(data_dir, database_url, root_key_file)
    if database_url is None and not (data_dir / "openkms.db").exists():
        raise click.ClickException(f"No openkms data in {data_dir}")
    try:
        store, trust = open_trusted_store(settings)
    except RootOfTrustError as exc:
        raise click.ClickException(f"cannot open the keyring: {exc}") from None
    now = SystemClock().now()

    def signer(region: str) -> DigestSigner:
        made = digest_signer(store, trust, region, now)
        if made is None:
            raise click.ClickException(
                "the digest signing key cannot be used (a sealed installation: give --unseal-share)"
            )
        return made

    try:
        counts = export_range(store, out_dir, signer, _time(start_time), _time(end_time), now)
    finally:
        store.close()
    if as_json:
        click.echo(
            json.dumps({"logFiles": counts.log_files, "records": counts.records, "digests": counts.digests})
        )
        return
    click.echo(
        f"{counts.records} records in {counts.log_files} log files, {counts.digests} digests in {out_dir}"
    )
