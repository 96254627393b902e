"""``openkms audit list``: read the CloudTrail-format audit trail."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

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


def _store_only(data_dir: Path, database_url: str | None, root_key_file: Path | None) -> Store:
    settings = settings_from(data_dir, database_url, root_key_file)
    if database_url is None and not (data_dir / "openkms.db").exists():
        raise click.ClickException(f"No openkms data in {data_dir}")
    return Store(settings.db_url)


@audit.command("verify")
@click.option("--account-id", help="Only this account's chains.")
@click.option("--region", help="Only this Region's chains.")
@click.option("--start-time", help="ISO-8601 or epoch seconds: check records from this time.")
@click.option("--end-time", help="ISO-8601 or epoch seconds: check records up to this time.")
@click.option(
    "--public-keys",
    "public_keys_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verify with the keys of this file (`openkms audit public-keys --json`) instead of the stored ones.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@data_options
def verify_trail(
    account_id: str | None,
    region: str | None,
    start_time: str | None,
    end_time: str | None,
    public_keys_file: Path | None,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Check the audit chains and their signed digests (public keys only). Exit 1 when anything is
    wrong: modified, deleted, inserted or reordered records, deleted or forged digests."""
    from openkms.service.trail import signing
    from openkms.service.trail.verify import verify

    store = _store_only(data_dir, database_url, root_key_file)
    try:
        keys = _keys_from_file(public_keys_file) if public_keys_file else signing.public_keys(store)
        report = verify(
            store, keys, account_id=account_id, region=region, start=_time(start_time), end=_time(end_time)
        )
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for chain in report.chains:
            click.echo(
                f"{chain.account_id or '-'}/{chain.region or '-'}: {chain.records} records checked "
                f"(seq {chain.first_seq}..{chain.last_seq}), {chain.digests} digests, "
                f"pruned through seq {chain.pruned_through}, {chain.undigested} not yet digested"
            )
        for problem in report.problems:
            click.echo(f"{problem.kind.upper()}: {problem.account_id}/{problem.region}: {problem.detail}")
        click.echo("valid" if report.valid else f"INVALID: {len(report.problems)} problems")
    if not report.valid:
        raise SystemExit(1)


def _keys_from_file(path: Path) -> list[Any]:
    from openkms.crypto.trail_signing import public_der_from_pem
    from openkms.service.trail.signing import PublicKeyInfo

    doc = json.loads(path.read_text())
    keys = []
    for entry in doc["PublicKeys"]:
        der = public_der_from_pem(entry["PublicKey"])
        keys.append(
            PublicKeyInfo(
                region=entry["Region"],
                fingerprint=entry["Fingerprint"],
                pem=entry["PublicKey"],
                der=der,
                valid_from=entry["ValidityStartTime"],
                valid_to=entry["ValidityEndTime"],
            )
        )
    return keys


@audit.command("public-keys")
@click.option("--region", help="Only this Region's keys.")
@click.option("--json", "as_json", is_flag=True, help='Print {"PublicKeys": [...]}.')
@data_options
def public_keys_cmd(
    region: str | None, as_json: bool, data_dir: Path, database_url: str | None, root_key_file: Path | None
) -> None:
    """Print the digest verification keys (PEM, SHA-256 fingerprint of the DER key, validity)."""
    from openkms.service.trail.signing import public_keys

    store = _store_only(data_dir, database_url, root_key_file)
    try:
        keys = public_keys(store, region)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"PublicKeys": [k.to_json() for k in keys]}, indent=2))
        return
    for k in keys:
        until = dt.datetime.fromtimestamp(k.valid_to, dt.UTC).isoformat() if k.valid_to else "now"
        since = dt.datetime.fromtimestamp(k.valid_from, dt.UTC).isoformat()
        click.echo(f"# {k.region} SHA-256 {k.fingerprint} valid {since} .. {until}")
        click.echo(k.pem, nl=False)


@audit.command("digest")
@data_options
def digest_cmd(data_dir: Path, database_url: str | None, root_key_file: Path | None) -> None:
    """Sign a digest now of every chain with records no digest covers yet."""
    from openkms.clock import clock_from_env
    from openkms.server.runtime import open_store
    from openkms.service.trail.digests import make_digests

    if database_url is None and not (data_dir / "openkms.db").exists():
        raise click.ClickException(f"No openkms data in {data_dir}")
    store, root = open_store(settings_from(data_dir, database_url, root_key_file))
    try:
        made = make_digests(store, root, clock_from_env().now())
    finally:
        store.close()
    for m in made:
        click.echo(f"digest {m.number} of {m.account_id}/{m.region}: records {m.first_seq}..{m.last_seq}")
    if not made:
        click.echo("nothing new to digest")


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
