"""Tags on keys: TagResource, UntagResource, ListResourceTags."""

from __future__ import annotations

from typing import Any

from openkms.domain.keystate import check_key_state
from openkms.domain.tags import check_new_tags
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore


def tag_resource(core: KmsCore, ctx: RequestContext, *, key_id: str, tags: list[dict[str, str]]) -> None:
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action="TagResource")
        check_key_state("TagResource", record)
        current = tx.get_tags(record.region, record.key_id)
        new = check_new_tags([(t["tag_key"], t["tag_value"]) for t in tags], current)
        tx.set_tags(record.region, record.key_id, new)


def untag_resource(core: KmsCore, ctx: RequestContext, *, key_id: str, tag_keys: list[str]) -> None:
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action="UntagResource")
        check_key_state("UntagResource", record)
        current = tx.get_tags(record.region, record.key_id)
        remaining = {k: v for k, v in current.items() if k not in set(tag_keys)}
        if remaining != current:
            tx.set_tags(record.region, record.key_id, remaining)


def list_resource_tags(
    core: KmsCore, ctx: RequestContext, *, key_id: str, limit: int | None = None, marker: str | None = None
) -> dict[str, Any]:
    loaded = core.resolve(ctx, key_id, action="ListResourceTags")
    with core.store.read() as tx:
        tags = tx.get_tags(loaded.record.region, loaded.record.key_id)
    n = limit or 50
    after = core.pager.read_marker("tags", marker)
    names = [k for k in sorted(tags) if after is None or k > after]
    names_page, next_marker = core.pager.page(names, n, "tags")
    result: dict[str, Any] = {
        "tags": [{"tag_key": k, "tag_value": tags[k]} for k in names_page],
        "truncated": next_marker is not None,
    }
    if next_marker:
        result["next_marker"] = next_marker
    return result
