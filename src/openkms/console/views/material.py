"""Import key material into a key with origin External, as AWS's console does it: download the wrapping
public key and import token (a zip ``Import_Parameters_<key_id>_<timestamp>`` with
``WrappingPublicKey.bin``, ``ImportToken.bin`` and ``README.txt``), then upload the wrapped key material
with the import token and an expiration option."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import zipfile
from typing import Any

from starlette.responses import RedirectResponse, Response

from openkms.console.api import ApiError, input_error
from openkms.console.http import PREFIX
from openkms.console.page import Page, api_error
from openkms.domain.import_bundle import PUBLIC_KEY_FILE, README_FILE, TOKEN_FILE, readme_text

WRAPPING_KEY_SPECS = ["RSA_4096", "RSA_3072", "RSA_2048"]
ALL_ALGORITHMS = [
    "RSAES_OAEP_SHA_256",
    "RSAES_OAEP_SHA_1",
    "RSA_AES_KEY_WRAP_SHA_256",
    "RSA_AES_KEY_WRAP_SHA_1",
]
KEY_WRAP_ONLY = ["RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1"]


def algorithms_for(key_spec: str) -> list[str]:
    """The wrapping algorithms AWS's console offers for key material of this key spec (first: default)."""
    return KEY_WRAP_ONLY if key_spec.startswith("RSA_") else ALL_ALGORITHMS


async def _render(
    page: Page,
    key_id: str,
    *,
    status: int = 200,
    errors: dict[str, Any] | None = None,
    values: dict[str, str],
) -> Response:
    api = page.api
    try:
        md = (await api.kms("DescribeKey", KeyId=key_id))["KeyMetadata"]
    except ApiError as exc:
        return page.render("key_error.html", status=exc.status, key_id=key_id, error=api_error(exc))
    symmetric = md.get("KeySpec") == "SYMMETRIC_DEFAULT"
    materials: list[dict[str, Any]] = []
    if symmetric and md.get("Origin") == "EXTERNAL":
        try:
            materials = await api.kms_pages(
                "ListKeyRotations", "Rotations", KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL"
            )
        except ApiError:
            materials = []
    aliases: list[str] = []
    with contextlib.suppress(ApiError):
        aliases = [a["AliasName"] for a in await api.kms_pages("ListAliases", "Aliases", KeyId=key_id)]
    algorithms = algorithms_for(str(md.get("KeySpec", "")))
    return page.render(
        "import.html",
        status=status,
        md=md,
        aliases=aliases,
        symmetric=symmetric,
        materials=materials,
        wrapping_key_specs=WRAPPING_KEY_SPECS,
        algorithms=algorithms,
        values={
            "wrapping_key_spec": "RSA_4096",
            "wrapping_algorithm": algorithms[0],
            "expiration": "none",
            **values,
        },
        errors=errors or {},
        max_valid_to=(_now(page) + dt.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M"),
    )


async def import_page(page: Page, key_id: str) -> Response:
    return await _render(page, key_id, values={})


async def download_parameters(page: Page, key_id: str) -> Response:
    request = page.request
    spec = request.field("wrapping_key_spec")
    algorithm = request.field("wrapping_algorithm")
    values = {"wrapping_key_spec": spec, "wrapping_algorithm": algorithm}
    try:
        params = await page.api.kms(
            "GetParametersForImport", KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec
        )
    except ApiError as exc:
        return await _render(
            page, key_id, status=exc.status, errors={"parameters": api_error(exc)}, values=values
        )
    key_arn = str(params["KeyId"])
    valid_to = dt.datetime.fromtimestamp(float(params["ParametersValidTo"]), dt.UTC)
    stamp = _now(page).strftime("%Y-%m-%dT%H-%M-%SZ")
    name = f"Import_Parameters_{key_arn.rsplit('/', 1)[-1]}_{stamp}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(PUBLIC_KEY_FILE, base64.b64decode(params["PublicKey"]))
        archive.writestr(TOKEN_FILE, base64.b64decode(params["ImportToken"]))
        archive.writestr(README_FILE, readme_text(key_arn, algorithm, spec, valid_to))
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="{name}.zip"'},
    )


def _now(page: Page) -> dt.datetime:
    """The service clock's time (the one ValidTo and the parameters' expiry are judged by)."""
    return dt.datetime.fromtimestamp(page.console.runtime.clock.now(), dt.UTC)


def _valid_to(text: str) -> float:
    """A ``datetime-local`` value (UTC) as epoch seconds."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise input_error("Enter the expiration date and time, such as 2030-01-31T12:00 (UTC).") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


async def upload_material(page: Page, key_id: str) -> Response:
    request = page.request
    wrapped = request.files.get("encrypted_key_material")
    token = request.files.get("import_token")
    expiration = request.field("expiration") or "none"
    values = {
        "expiration": expiration,
        "valid_to": request.field("valid_to"),
        "description": request.field("key_material_description"),
        "import_type": request.field("import_type"),
    }
    errors: dict[str, Any] = {}
    if wrapped is None or not wrapped.data:
        errors["encrypted_key_material"] = api_error(
            input_error("Choose the file with your wrapped key material.")
        )
    if token is None or not token.data:
        errors["import_token"] = api_error(input_error("Choose the import token file."))
    params: dict[str, Any] = {"KeyId": key_id}
    if expiration == "expires":
        try:
            params.update(ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=_valid_to(values["valid_to"]))
        except ApiError as exc:
            errors["valid_to"] = api_error(exc)
    else:
        params["ExpirationModel"] = "KEY_MATERIAL_DOES_NOT_EXPIRE"
    if errors or wrapped is None or token is None:  # both files are there when nothing is in error
        return await _render(page, key_id, status=400, errors=errors, values=values)
    params.update(EncryptedKeyMaterial=wrapped.data, ImportToken=token.data)
    if values["description"]:
        params["KeyMaterialDescription"] = values["description"]
    if values["import_type"] in ("NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"):
        params["ImportType"] = values["import_type"]
    try:
        await page.api.kms("ImportKeyMaterial", **params)
    except ApiError as exc:
        return await _render(
            page, key_id, status=exc.status, errors={"import": api_error(exc)}, values=values
        )
    return RedirectResponse(f"{PREFIX}/keys/{key_id}?tab=material&flash=material_imported", 303)
