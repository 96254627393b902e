"""``openkms admin`` commands for the XKS proxy: key stores, their SigV4 credentials, external keys.

They work on the same data as running servers, which see every change at their next call (the proxy
caches nothing). ``--json`` prints one JSON object (a list for the ``list-…`` commands).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from openkms.cli.admin import _open, admin
from openkms.cli.options import data_options
from openkms.clock import clock_from_env
from openkms.crypto.envelope import RootKey
from openkms.domain import xks
from openkms.service.xks import admin as xks_admin
from openkms.service.xks.admin import NewCredential, XksAdminError

_USAGE = click.Choice(list(xks.USAGES))


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_credential(new: NewCredential, as_json: bool, rotated: bool) -> None:
    shown: dict[str, Any] = {
        "XksProxyUriPath": new.uri_path,
        "AccessKeyId": new.access_key_id,
        "RawSecretAccessKey": new.secret_access_key,
    }
    if rotated:
        shown["PreviousAccessKeyId"] = new.previous_access_key_id
        shown["PreviousValidUntil"] = _iso(new.previous_valid_until)
    if as_json:
        click.echo(json.dumps(shown))
        return
    for name, value in shown.items():
        click.echo(f"{name + ':':<21}{value if value is not None else '-'}")


def _print_key(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**view, "CreationDate": _iso(view["CreationDate"])}))
    else:
        usage = ",".join(view["KeyUsage"]) or "none"
        click.echo(f"{view['KeyStore']}/{view['XksKeyId']}  {view['KeySpec']}  {usage}  {view['KeyStatus']}")


def _run(data: tuple[Path, str | None, Path | None], action: Any) -> Any:
    store, root = _open(*data)
    try:
        return action(store, root)
    except XksAdminError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()


@admin.command("create-xks-keystore")
@click.option(
    "--name", required=True, help="1 to 64 letters, digits, - and _; the path is /xks/<name>/kms/xks/v1."
)
@click.option(
    "--max-tps", type=float, help="Requests per second on the key store's path (ThrottlingException)."
)
@click.option(
    "--tls-client-cn", help="Accept only TLS client certificates with this subject CN (--tls-client-ca)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@data_options
def create_xks_keystore(
    name: str,
    max_tps: float | None,
    tls_client_cn: str | None,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Create an XKS proxy key store and its SigV4 credential (the secret is shown only now)."""

    def action(store: Any, root: RootKey) -> NewCredential:
        return xks_admin.create_keystore(
            store, root, clock_from_env().now(), name, max_tps=max_tps, client_cn=tls_client_cn
        )

    _print_credential(_run((data_dir, database_url, root_key_file), action), as_json, rotated=False)


@admin.command("rotate-xks-credential")
@click.option("--name", required=True, help="The key store.")
@click.option(
    "--grace-period",
    type=click.FloatRange(0, 365 * 86400),
    default=xks_admin.DEFAULT_GRACE,
    show_default=True,
    help="Seconds the replaced credential stays valid (0: it ends now). Older ones end now.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@data_options
def rotate_xks_credential(
    name: str,
    grace_period: float,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Issue a new SigV4 credential for a key store (valid at once)."""

    def action(store: Any, root: RootKey) -> NewCredential:
        return xks_admin.rotate_credential(store, root, clock_from_env().now(), name, grace_period)

    _print_credential(_run((data_dir, database_url, root_key_file), action), as_json, rotated=True)


@admin.command("update-xks-keystore")
@click.option("--name", required=True, help="The key store.")
@click.option("--max-tps", type=float, help="Requests per second on the key store's path.")
@click.option("--no-max-tps", is_flag=True, help="Remove the request quota.")
@click.option("--tls-client-cn", help="Accept only TLS client certificates with this subject CN.")
@click.option("--no-tls-client-cn", is_flag=True, help="Accept any TLS client certificate.")
@click.option("--json", "as_json", is_flag=True, help="Print the key store as JSON.")
@data_options
def update_xks_keystore(
    name: str,
    max_tps: float | None,
    no_max_tps: bool,
    tls_client_cn: str | None,
    no_tls_client_cn: bool,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Change a key store's request quota or required TLS client certificate CN."""
    if (max_tps is not None and no_max_tps) or (tls_client_cn is not None and no_tls_client_cn):
        raise click.UsageError("give a value or remove it, not both")
    changes: dict[str, Any] = {}
    if max_tps is not None or no_max_tps:
        changes["max_tps"] = max_tps
    if tls_client_cn is not None or no_tls_client_cn:
        changes["client_cn"] = tls_client_cn

    def action(store: Any, _root: RootKey) -> dict[str, Any]:
        xks_admin.update_keystore(store, name, **changes)
        return xks_admin.describe_keystore(store, name, clock_from_env().now())

    view = _run((data_dir, database_url, root_key_file), action)
    click.echo(json.dumps(view) if as_json else view["XksProxyUriPath"])


@admin.command("list-xks-keystores")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@data_options
def list_xks_keystores(
    as_json: bool, data_dir: Path, database_url: str | None, root_key_file: Path | None
) -> None:
    """List the key stores, their valid access key ids (never secrets) and how many keys they hold."""
    views = _run(
        (data_dir, database_url, root_key_file),
        lambda s, _r: xks_admin.list_keystores(s, clock_from_env().now()),
    )
    if as_json:
        click.echo(json.dumps(views))
        return
    for view in views:
        ids = ",".join(c["AccessKeyId"] for c in view["AccessKeys"])
        click.echo(f"{view['Name']}  {view['XksProxyUriPath']}  keys={view['KeyCount']}  {ids}")


@admin.command("create-xks-key")
@click.option("--keystore", required=True, help="The key store.")
@click.option("--key-id", required=True, help="The external key id: 1 to 128 letters, digits, ., - and _.")
@click.option("--usage", type=_USAGE, default="encrypt,decrypt", show_default=True)
@click.option(
    "--allow-principal",
    "allowed",
    multiple=True,
    help="Only this awsPrincipalArn, or any principal of this account id, may use the key (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@data_options
def create_xks_key(
    keystore: str,
    key_id: str,
    usage: str,
    allowed: tuple[str, ...],
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Create an external AES-256 key in a key store (new random material, sealed under the root key)."""

    def action(store: Any, root: RootKey) -> dict[str, Any]:
        row = xks_admin.create_key(
            store,
            root,
            clock_from_env().now(),
            keystore,
            key_id,
            usage=xks.USAGES[usage],
            allowed_principals=allowed,
        )
        return xks_admin.key_view(row)

    _print_key(_run((data_dir, database_url, root_key_file), action), as_json)


@admin.command("update-xks-key")
@click.option("--keystore", required=True, help="The key store.")
@click.option("--key-id", required=True, help="The external key id.")
@click.option("--status", type=click.Choice([xks.ENABLED, xks.DISABLED]), help="Enable or disable the key.")
@click.option("--usage", type=_USAGE, help="The operations the key allows.")
@click.option(
    "--allow-principal", "allowed", multiple=True, help="Replace the allowed principals (repeatable)."
)
@click.option("--allow-any-principal", is_flag=True, help="Let any principal use the key.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@data_options
def update_xks_key(
    keystore: str,
    key_id: str,
    status: str | None,
    usage: str | None,
    allowed: tuple[str, ...],
    allow_any_principal: bool,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Change an external key's status, usage or allowed principals."""
    if allowed and allow_any_principal:
        raise click.UsageError("give --allow-principal or --allow-any-principal, not both")
    changes: dict[str, Any] = {}
    if status is not None:
        changes["status"] = status
    if usage is not None:
        changes["key_usage"] = xks.USAGES[usage]
    if allowed or allow_any_principal:
        changes["allowed_principals"] = allowed

    def action(store: Any, _root: RootKey) -> dict[str, Any]:
        return xks_admin.key_view(xks_admin.update_key(store, keystore, key_id, **changes))

    _print_key(_run((data_dir, database_url, root_key_file), action), as_json)


@admin.command("list-xks-keys")
@click.option("--keystore", required=True, help="The key store.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@data_options
def list_xks_keys(
    keystore: str, as_json: bool, data_dir: Path, database_url: str | None, root_key_file: Path | None
) -> None:
    """List a key store's external keys."""
    views = _run((data_dir, database_url, root_key_file), lambda s, _r: xks_admin.list_keys(s, keystore))
    if as_json:
        click.echo(json.dumps([{**v, "CreationDate": _iso(v["CreationDate"])} for v in views]))
        return
    for view in views:
        _print_key(view, False)


@admin.command("delete-xks-key")
@click.option("--keystore", required=True, help="The key store.")
@click.option("--key-id", required=True, help="The external key id.")
@click.option("--json", "as_json", is_flag=True, help="Print {} once done.")
@data_options
def delete_xks_key(
    keystore: str,
    key_id: str,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Delete an external key and its material (what it encrypted can never be decrypted again)."""
    _run((data_dir, database_url, root_key_file), lambda s, _r: xks_admin.delete_key(s, keystore, key_id))
    if as_json:
        click.echo("{}")
