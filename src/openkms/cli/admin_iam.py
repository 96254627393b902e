"""``openkms admin`` commands for IAM users, roles, trust and identity policies, tags.

They call the same service functions as the IAM Query API, with the parameters validated as the API
validates them, as the local administrator (no policy check; :class:`openkms.cli.admin.LocalIam`), on
the same data as running servers (which see the changes at once). ``--json`` prints the
result as ``aws iam`` prints it (``{}`` for commands without output).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from openkms.cli.admin import admin, local_iam
from openkms.cli.options import data_options
from openkms.wire.query import result_json


def _document(value: str) -> str:
    """A policy document given inline (JSON), as ``file://path`` or as a path to a file."""
    if value.startswith("file://"):
        return Path(value[7:]).read_text()
    if not value.lstrip().startswith("{") and Path(value).is_file():
        return Path(value).read_text()
    return value


def _tags(values: tuple[str, ...]) -> list[dict[str, str]]:
    tags = []
    for item in values:
        key, eq, value = item.partition("=")
        if not eq:
            raise click.BadParameter(f"expected Key=Value, got {item!r}", param_hint="--tag")
        tags.append({"key": key, "value": value})
    return tags


def _run(
    operation: str,
    account_id: str,
    data: dict[str, Any],
    as_json: bool,
    text: Callable[[dict[str, Any]], str] | None = None,
    extras: dict[str, Any] | None = None,
    **params: Any,
) -> None:
    with local_iam(data["data_dir"], data["database_url"], data["root_key_file"]) as local:
        result = local.call(operation, account_id, extras, **params)
    shown = result_json("iam", operation, result)
    if as_json:
        click.echo(json.dumps(shown))
    elif text is not None:
        click.echo(text(shown))


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(fn)
    fn = click.option("--account-id", required=True)(fn)
    return data_options(fn)


def _data(data_dir: Path, database_url: str | None, root_key_file: Path | None) -> dict[str, Any]:
    return {"data_dir": data_dir, "database_url": database_url, "root_key_file": root_key_file}


@admin.command("create-role")
@click.option("--role-name", required=True)
@click.option(
    "--assume-role-policy-document", required=True, help="Trust policy: JSON, file://path or a path."
)
@click.option("--path")
@click.option("--description")
@click.option("--max-session-duration", type=int)
@click.option("--tag", "tags", multiple=True, help="Key=Value (repeatable).")
@_common
def create_role(
    role_name: str,
    assume_role_policy_document: str,
    path: str | None,
    description: str | None,
    max_session_duration: int | None,
    tags: tuple[str, ...],
    account_id: str,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Create a role with a trust policy."""
    _run(
        "CreateRole",
        account_id,
        _data(data_dir, database_url, root_key_file),
        as_json,
        lambda r: str(r["Role"]["Arn"]),
        role_name=role_name,
        assume_role_policy_document=_document(assume_role_policy_document),
        path=path,
        description=description,
        max_session_duration=max_session_duration,
        tags=_tags(tags) or None,
    )


@admin.command("update-assume-role-policy")
@click.option("--role-name", required=True)
@click.option("--policy-document", required=True, help="Trust policy: JSON, file://path or a path.")
@_common
def update_assume_role_policy(
    role_name: str,
    policy_document: str,
    account_id: str,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Replace a role's trust policy."""
    _run(
        "UpdateAssumeRolePolicy",
        account_id,
        _data(data_dir, database_url, root_key_file),
        as_json,
        role_name=role_name,
        policy_document=_document(policy_document),
    )


def _put_policy(kind: str) -> Callable[..., None]:
    def command(
        name: str,
        policy_name: str,
        policy_document: str,
        account_id: str,
        as_json: bool,
        data_dir: Path,
        database_url: str | None,
        root_key_file: Path | None,
    ) -> None:
        params: dict[str, Any] = {
            f"{kind}_name": name,
            "policy_name": policy_name,
            "policy_document": _document(policy_document),
        }
        operation = "PutUserPolicy" if kind == "user" else "PutRolePolicy"
        _run(operation, account_id, _data(data_dir, database_url, root_key_file), as_json, **params)

    return command


for _kind in ("user", "role"):
    _cmd = _put_policy(_kind)
    _cmd.__doc__ = f"Put an inline identity policy on a {_kind}."
    _cmd = _common(_cmd)
    _cmd = click.option("--policy-document", required=True, help="JSON, file://path or a path.")(_cmd)
    _cmd = click.option("--policy-name", required=True)(_cmd)
    _cmd = click.option(f"--{_kind}-name", "name", required=True)(_cmd)
    admin.command(f"put-{_kind}-policy")(_cmd)


@admin.command("create-policy")
@click.option("--policy-name", required=True)
@click.option("--policy-document", required=True, help="JSON, file://path or a path.")
@click.option("--path")
@click.option("--description")
@_common
def create_policy(
    policy_name: str,
    policy_document: str,
    path: str | None,
    description: str | None,
    account_id: str,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Create a customer managed policy."""
    _run(
        "CreatePolicy",
        account_id,
        _data(data_dir, database_url, root_key_file),
        as_json,
        lambda r: str(r["Policy"]["Arn"]),
        policy_name=policy_name,
        policy_document=_document(policy_document),
        path=path,
        description=description,
    )


def _attach(kind: str, operation: str) -> Callable[..., None]:
    def command(
        name: str,
        policy_arn: str,
        account_id: str,
        as_json: bool,
        data_dir: Path,
        database_url: str | None,
        root_key_file: Path | None,
    ) -> None:
        params: dict[str, Any] = {f"{kind}_name": name, "policy_arn": policy_arn}
        _run(operation, account_id, _data(data_dir, database_url, root_key_file), as_json, **params)

    return command


for _kind, _verb, _operation in (
    ("user", "attach", "AttachUserPolicy"),
    ("role", "attach", "AttachRolePolicy"),
    ("user", "detach", "DetachUserPolicy"),
    ("role", "detach", "DetachRolePolicy"),
):
    _cmd = _attach(_kind, _operation)
    _cmd.__doc__ = f"{_verb.capitalize()} a managed policy {'to' if _verb == 'attach' else 'from'} a {_kind}."
    _cmd = _common(_cmd)
    _cmd = click.option("--policy-arn", required=True)(_cmd)
    _cmd = click.option(f"--{_kind}-name", "name", required=True)(_cmd)
    admin.command(f"{_verb}-{_kind}-policy")(_cmd)


def _tag(kind: str) -> Callable[..., None]:
    def command(
        name: str,
        tags: tuple[str, ...],
        account_id: str,
        as_json: bool,
        data_dir: Path,
        database_url: str | None,
        root_key_file: Path | None,
    ) -> None:
        params: dict[str, Any] = {f"{kind}_name": name, "tags": _tags(tags)}
        operation = "TagUser" if kind == "user" else "TagRole"
        _run(operation, account_id, _data(data_dir, database_url, root_key_file), as_json, **params)

    return command


for _kind in ("user", "role"):
    _cmd = _tag(_kind)
    _cmd.__doc__ = f"Add or replace tags of a {_kind} (principal tags for ABAC)."
    _cmd = _common(_cmd)
    _cmd = click.option("--tag", "tags", multiple=True, required=True, help="Key=Value (repeatable).")(_cmd)
    _cmd = click.option(f"--{_kind}-name", "name", required=True)(_cmd)
    admin.command(f"tag-{_kind}")(_cmd)


@admin.command("list-users")
@_common
def list_users(
    account_id: str, as_json: bool, data_dir: Path, database_url: str | None, root_key_file: Path | None
) -> None:
    """List the users of an account."""
    _run(
        "ListUsers",
        account_id,
        _data(data_dir, database_url, root_key_file),
        as_json,
        lambda r: "\n".join(u["Arn"] for u in r.get("Users", [])),
        max_items=1000,
    )


@admin.command("list-roles")
@_common
def list_roles(
    account_id: str, as_json: bool, data_dir: Path, database_url: str | None, root_key_file: Path | None
) -> None:
    """List the roles of an account."""
    _run(
        "ListRoles",
        account_id,
        _data(data_dir, database_url, root_key_file),
        as_json,
        lambda r: "\n".join(u["Arn"] for u in r.get("Roles", [])),
        max_items=1000,
    )


def _delete(kind: str) -> Callable[..., None]:
    def command(
        name: str,
        force: bool,
        account_id: str,
        as_json: bool,
        data_dir: Path,
        database_url: str | None,
        root_key_file: Path | None,
    ) -> None:
        params: dict[str, Any] = {f"{kind}_name": name}
        operation = "DeleteUser" if kind == "user" else "DeleteRole"
        data = _data(data_dir, database_url, root_key_file)
        _run(operation, account_id, data, as_json, extras={"force": force}, **params)

    return command


for _kind in ("user", "role"):
    _cmd = _delete(_kind)
    _cmd.__doc__ = (
        f"Delete a {_kind} (with --force: its {'access keys and ' if _kind == 'user' else ''}policies too)."
    )
    _cmd = _common(_cmd)
    _cmd = click.option(
        "--force", is_flag=True, help="Delete access keys and policies, detach managed ones."
    )(_cmd)
    _cmd = click.option(f"--{_kind}-name", "name", required=True)(_cmd)
    admin.command(f"delete-{_kind}")(_cmd)
