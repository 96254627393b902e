"""Client-side import helpers (a convenience AWS does not have). They talk to any KMS endpoint through
the public API with the usual AWS configuration (``--endpoint-url``, ``AWS_ENDPOINT_URL_KMS``,
profiles), so they work against AWS too:

* ``openkms import-key-material``: GetParametersForImport, wrap locally, ImportKeyMaterial — in one go,
  or from a directory prepared by the two commands below;
* ``openkms get-parameters-for-import``: download the wrapping public key and import token in the
  layout of AWS's console download (``WrappingPublicKey.bin``, ``ImportToken.bin``, ``README.txt``);
* ``openkms wrap-key-material``: wrap material with such a download, offline (air-gapped machines),
  writing ``EncryptedKeyMaterial.bin`` beside it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from openkms.crypto import wrapping
from openkms.domain.import_bundle import (
    ALGORITHM_LINE,
    PUBLIC_KEY_FILE,
    README_FILE,
    TOKEN_FILE,
    WRAPPED_FILE,
    readme_text,
)


def _client(endpoint_url: str | None, region: str | None, profile: str | None) -> Any:
    # Late: boto3 (~65 ms) only for the commands that call an endpoint, not for `openkms` at large.
    import boto3

    session = boto3.Session(profile_name=profile, region_name=region)
    return session.client("kms", endpoint_url=endpoint_url)


def _strongest(key_spec: str) -> tuple[str, str]:
    """The strongest wrapping choice AWS allows for this key spec: (algorithm, wrapping key spec)."""
    if key_spec.startswith(("RSA_", "ECC_")):
        return "RSA_AES_KEY_WRAP_SHA_256", "RSA_4096"
    return "RSAES_OAEP_SHA_256", "RSA_4096"


def _read_material(path: Path) -> bytes:
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        # Late: crypto.asymmetric (~30 ms) only when a PEM key is given, not for `openkms` at large.
        from openkms.crypto.asymmetric import pem_to_pkcs8

        return pem_to_pkcs8(data)
    return data


def _valid_to(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _write_parameters(out_dir: Path, key_id: str, params: dict[str, Any], algorithm: str, spec: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PUBLIC_KEY_FILE).write_bytes(params["PublicKey"])
    (out_dir / TOKEN_FILE).write_bytes(params["ImportToken"])
    (out_dir / README_FILE).write_text(
        readme_text(params["KeyId"], algorithm, spec, params["ParametersValidTo"])
    )


def _algorithm_of(params_dir: Path) -> str:
    for line in (params_dir / README_FILE).read_text().splitlines():
        if line.startswith(ALGORITHM_LINE):
            return line[len(ALGORITHM_LINE) :].strip()
    raise click.ClickException(f"{params_dir / README_FILE} does not name a wrapping algorithm")


def _endpoint_options(fn: Any) -> Any:
    fn = click.option("--profile", help="AWS configuration profile.")(fn)
    fn = click.option("--region", help="Region (default: the AWS configuration's).")(fn)
    fn = click.option("--endpoint-url", help="KMS endpoint (default: AWS_ENDPOINT_URL_KMS or AWS's).")(fn)
    return fn


@click.command("get-parameters-for-import")
@click.option("--key-id", required=True)
@click.option("--out-dir", required=True, type=click.Path(path_type=Path))
@click.option("--wrapping-algorithm", help="Default: the strongest allowed for the key.")
@click.option("--wrapping-key-spec", help="Default: RSA_4096.")
@_endpoint_options
def get_parameters_for_import(
    key_id: str,
    out_dir: Path,
    wrapping_algorithm: str | None,
    wrapping_key_spec: str | None,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
) -> None:
    """Download a wrapping public key and import token (console download layout)."""
    kms = _client(endpoint_url, region, profile)
    key_spec = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeySpec"]
    algorithm, spec = _strongest(key_spec)
    algorithm = wrapping_algorithm or algorithm
    spec = wrapping_key_spec or spec
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec)
    _write_parameters(out_dir, key_id, params, algorithm, spec)
    click.echo(f"Wrote {PUBLIC_KEY_FILE}, {TOKEN_FILE} and {README_FILE} to {out_dir}")


@click.command("wrap-key-material")
@click.option(
    "--parameters-dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("--material-file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def wrap_key_material(parameters_dir: Path, material_file: Path) -> None:
    """Wrap key material offline with a downloaded wrapping public key."""
    algorithm = _algorithm_of(parameters_dir)
    wrapped = wrapping.wrap(
        algorithm, (parameters_dir / PUBLIC_KEY_FILE).read_bytes(), _read_material(material_file)
    )
    (parameters_dir / WRAPPED_FILE).write_bytes(wrapped)
    click.echo(f"Wrote {parameters_dir / WRAPPED_FILE} ({algorithm})")


_ONE_SOURCE = "give exactly one of --material-file and --parameters-dir"


@click.command("import-key-material")
@click.option("--key-id", required=True)
@click.option("--material-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--parameters-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Import EncryptedKeyMaterial.bin with ImportToken.bin from this directory instead of wrapping here.",
)
@click.option("--valid-to", help="ISO-8601 expiry of the material (default: it does not expire).")
@click.option("--key-material-description")
@click.option("--import-type", type=click.Choice(["NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"]))
@_endpoint_options
def import_key_material(
    key_id: str,
    material_file: Path | None,
    parameters_dir: Path | None,
    valid_to: str | None,
    key_material_description: str | None,
    import_type: str | None,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
) -> None:
    """Wrap and import key material into a key with origin EXTERNAL."""
    if (material_file is None) == (parameters_dir is None):
        raise click.UsageError(_ONE_SOURCE)
    kms = _client(endpoint_url, region, profile)
    if parameters_dir is not None:
        token = (parameters_dir / TOKEN_FILE).read_bytes()
        wrapped = (parameters_dir / WRAPPED_FILE).read_bytes()
    elif material_file is not None:
        key_spec = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeySpec"]
        algorithm, spec = _strongest(key_spec)
        params = kms.get_parameters_for_import(
            KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec
        )
        token = params["ImportToken"]
        wrapped = wrapping.wrap(algorithm, params["PublicKey"], _read_material(material_file))
    else:  # neither (refused above)
        raise click.UsageError(_ONE_SOURCE)
    request: dict[str, Any] = {"KeyId": key_id, "ImportToken": token, "EncryptedKeyMaterial": wrapped}
    expiry = _valid_to(valid_to)
    if expiry is None:
        request["ExpirationModel"] = "KEY_MATERIAL_DOES_NOT_EXPIRE"
    else:
        request["ExpirationModel"] = "KEY_MATERIAL_EXPIRES"
        request["ValidTo"] = expiry
    if key_material_description is not None:
        request["KeyMaterialDescription"] = key_material_description
    if import_type is not None:
        request["ImportType"] = import_type
    response = kms.import_key_material(**request)
    click.echo(f"Imported key material into {response['KeyId']}")
    if response.get("KeyMaterialId"):
        click.echo(f"KeyMaterialId: {response['KeyMaterialId']}")
