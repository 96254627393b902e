"""Multi-Region keys: a key's *Regionality* tab, *Create new replica keys* and *Change primary Region*.

The tab lists the primary key and its replicas from DescribeKey's ``MultiRegionConfiguration``, each
described again in its own Region for its state. Replicas are made as AWS's replica wizard does:
ReplicateKey in the primary's Region (with the replica's description, key policy and tags), then
CreateAlias in the replica's Region. Calls in another Region than the session's go through
:meth:`Api.in_region`: the same principal, authorized and audited in that Region.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import RedirectResponse, Response

from openkms.console.api import Api, ApiError
from openkms.console.http import PREFIX, whole_number
from openkms.console.page import Page, api_error
from openkms.console.views.labels import alias_problem, alias_taken, check_tags

#: The Regions offered for replicas when the service answers for every Region (``--region`` not given):
#: AWS's commercial Regions.
AWS_REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "af-south-1", "ap-east-1", "ap-south-1",
    "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ca-central-1", "ca-west-1", "eu-central-1",
    "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-south-1", "eu-south-2", "eu-north-1",
    "il-central-1", "me-south-1", "me-central-1", "sa-east-1",
)  # fmt: skip
MAX_REPLICAS_AT_ONCE = 10


@dataclass
class RelatedKey:
    """One key of a multi-Region set, as the Regionality tab shows it."""

    role: str  # "Primary" or "Replica"
    region: str
    arn: str
    state: str = ""
    error: dict[str, str] | None = None


def related_keys(md: dict[str, Any]) -> list[RelatedKey]:
    config = md.get("MultiRegionConfiguration") or {}
    primary = config.get("PrimaryKey") or {}
    rows = [RelatedKey("Primary", str(primary.get("Region", "")), str(primary.get("Arn", "")))]
    rows += [
        RelatedKey("Replica", str(r.get("Region", "")), str(r.get("Arn", "")))
        for r in config.get("ReplicaKeys", [])
    ]
    return [r for r in rows if r.region]


async def _state_of(api: Api, row: RelatedKey, key_id: str) -> None:
    try:
        other = api if row.region == api.region else api.in_region(row.region)
        row.state = (await other.kms("DescribeKey", KeyId=key_id))["KeyMetadata"]["KeyState"]
    except ApiError as exc:
        row.error = api_error(exc)


def region_choices(api: Api, taken: set[str]) -> list[str]:
    """The Regions a new replica may go to: those the service answers for, without the set's own."""
    settings = api.app.runtime.settings
    offered = list(settings.regions) if settings.regions else list(AWS_REGIONS)
    return [r for r in offered if r not in taken and settings.region_ok(r)]


async def tab_data(api: Api, md: dict[str, Any]) -> dict[str, Any]:
    """The Regionality tab: every key of the set with its state (DescribeKey in its own Region)."""
    rows = related_keys(md)
    await asyncio.gather(*(_state_of(api, row, str(md["KeyId"])) for row in rows))
    primary = next((r for r in rows if r.role == "Primary"), None)
    return {
        "related": rows,
        "is_primary": primary is not None and primary.region == api.region,
        "primary_region": primary.region if primary else "",
        "replica_regions": [r.region for r in rows if r.role == "Replica"],
        "can_replicate": bool(region_choices(api, {r.region for r in rows})),
    }


# --- create new replica keys ---------------------------------------------------------------------------


@dataclass
class ReplicaForm:
    regions: list[str] = field(default_factory=list)
    alias: str = ""
    description: str = ""
    policy: str = ""
    tags: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_page(cls, page: Page) -> ReplicaForm:
        request = page.request
        keys, values = request.fields("tag_key"), request.fields("tag_value")
        return cls(
            regions=list(dict.fromkeys(r for r in request.fields("replica_region") if r)),
            alias=request.field("alias").strip().removeprefix("alias/"),
            description=request.field("description"),
            policy=request.field("policy").replace("\r\n", "\n"),
            tags=[[k, values[i] if i < len(values) else ""] for i, k in enumerate(keys)],
        )


async def _primary(page: Page, key_id: str) -> dict[str, Any]:
    md: dict[str, Any] = (await page.api.kms("DescribeKey", KeyId=key_id))["KeyMetadata"]
    return md


def _render(
    page: Page,
    md: dict[str, Any],
    form: ReplicaForm,
    errors: dict[str, Any],
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    taken = {r.region for r in related_keys(md)}
    return page.render(
        "replicate.html",
        status=status,
        md=md,
        form=form,
        choices=region_choices(page.api, taken),
        errors=errors,
        **extra,
    )


def _not_primary(page: Page, md: dict[str, Any]) -> Response | None:
    if md.get("MultiRegionConfiguration", {}).get("MultiRegionKeyType") == "PRIMARY":
        return None
    return page.error_page(
        400,
        "This is not a multi-Region primary key",
        "Replica keys are created from the multi-Region primary key, in its Region.",
    )


async def replicate_form(page: Page, key_id: str) -> Response:
    try:
        md = await _primary(page, key_id)
    except ApiError as exc:
        return page.render("key_error.html", status=exc.status, key_id=key_id, error=api_error(exc))
    refusal = _not_primary(page, md)
    if refusal is not None:
        return refusal
    form = ReplicaForm(description=str(md.get("Description", "")))
    try:
        form.policy = (await page.api.kms("GetKeyPolicy", KeyId=md["KeyId"], PolicyName="default"))["Policy"]
    except ApiError:
        form.policy = ""  # the replica gets the default key policy when none is given
    return _render(page, md, form, {})


async def _check(page: Page, md: dict[str, Any], form: ReplicaForm) -> dict[str, str]:
    errors: dict[str, str] = {}
    choices = set(region_choices(page.api, {r.region for r in related_keys(md)}))
    if not form.regions:
        errors["replica_region"] = "Choose at least one Region for the replica key."
    elif len(form.regions) > MAX_REPLICAS_AT_ONCE:
        errors["replica_region"] = f"Choose up to {MAX_REPLICAS_AT_ONCE} Regions at a time."
    elif any(r not in choices for r in form.regions):
        errors["replica_region"] = "Choose Regions from the list: a key of this set is not in them yet."
    problem = alias_problem(form.alias)
    if problem is not None:
        errors["alias"] = problem
    elif "replica_region" not in errors:
        for region in form.regions:
            if await alias_taken(page.api.in_region(region), form.alias):
                errors["alias"] = (
                    f"An alias with this name already exists in {region}. Enter a different alias."
                )
                break
    if len(form.description) > 8192:
        errors["description"] = "The description can have up to 8192 characters."
    if len(form.policy) > 32768:
        errors["policy"] = "The key policy can have up to 32768 characters."
    form.tags = check_tags(form.tags, errors)
    return errors


async def replicate_submit(page: Page, key_id: str) -> Response:
    try:
        md = await _primary(page, key_id)
    except ApiError as exc:
        return page.render("key_error.html", status=exc.status, key_id=key_id, error=api_error(exc))
    refusal = _not_primary(page, md)
    if refusal is not None:
        return refusal
    form = ReplicaForm.from_page(page)
    action = page.request.field("action")
    if action == "add_tag":
        form.tags.append(["", ""])
        return _render(page, md, form, {}, focus=f"tag_key_{len(form.tags) - 1}")
    if action.startswith("remove_tag:"):
        index = whole_number(action.partition(":")[2])
        if index is not None and index < len(form.tags):
            form.tags.pop(index)
        return _render(page, md, form, {})
    errors = await _check(page, md, form)
    if errors:
        return _render(page, md, form, errors, status=400)
    done: list[str] = []
    for region in form.regions:
        try:
            await page.api.kms(
                "ReplicateKey",
                KeyId=md["KeyId"],
                ReplicaRegion=region,
                Description=form.description,
                Policy=form.policy if form.policy.strip() else None,
                Tags=[{"TagKey": k, "TagValue": v} for k, v in form.tags] or None,
            )
            done.append(region)
            await page.api.in_region(region).kms(
                "CreateAlias", AliasName="alias/" + form.alias, TargetKeyId=md["KeyId"]
            )
        except ApiError as exc:
            made = f" Replica keys were created in {', '.join(done)}." if done else ""
            problem = api_error(exc)
            problem["message"] = f"In {region}: {problem['message']}{made}"
            form.regions = [r for r in form.regions if r not in done]
            md = await _primary(page, key_id)
            return _render(page, md, form, {"replicate": problem}, status=exc.status)
    query = urllib.parse.urlencode({"tab": "regionality", "flash": "replicated"})
    return RedirectResponse(f"{PREFIX}/keys/{md['KeyId']}?{query}", 303)
