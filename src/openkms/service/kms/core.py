"""The service core: its dependencies (store, root key, clock, caches, audit) and the lookups every
operation shares: resolving a KeyId parameter to a key, loading a key's material, authorization.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from openkms.arns import alias_arn, is_key_id, is_region, key_arn, parse_arn
from openkms.clock import Clock
from openkms.crypto.envelope import RootKey, SealError
from openkms.crypto.keypair_pool import KeyPairPool
from openkms.crypto.secret import Secret
from openkms.domain.model import KeyRecord
from openkms.domain.operations import accepts_other_accounts_key
from openkms.errors import KMSInternalException, NotFoundException
from openkms.service.kms.authz import KmsAuthorizer, caller_identities
from openkms.service.kms.context import NeedsIO, RequestContext
from openkms.service.kms.keycache import KeyCache, LoadedKey
from openkms.service.kms.paging import Pager
from openkms.service.kms.xks_client import XksClient
from openkms.storage.store import Store, Tx

MATERIAL_PURPOSE = "key-material"
PRELOAD_BATCH = 500  # keys per query of a preload (bound on the size of an IN list)
MAX_KEY_ALIASES = 100  # aliases of a key kept with it (the condition key kms:ResourceAliases)


def material_ident(region: str, key_id: str, material_id: str) -> str:
    return f"{region}/{key_id}/{material_id}"


def _not_in_callers_account(
    region: str, account: str, value: str, resource: str, allow_alias: bool
) -> NotFoundException:
    """The answer to an ARN naming another account's key or alias, for an operation that does not
    accept one: what the caller's own ``account`` answers for that key id (or alias name), without
    looking at the other account — so the answer is the same whether or not its key exists."""
    if resource.startswith("key/"):
        key_id = resource[4:]
        if not is_key_id(key_id):
            return NotFoundException(f"Invalid keyId '{key_id}'")
        return NotFoundException(f"Key '{key_arn(region, account, key_id)}' does not exist")
    if resource.startswith("alias/") and allow_alias:
        return NotFoundException(f"Alias {alias_arn(region, account, resource)} is not found.")
    return NotFoundException(f"Invalid arn {value}")


@dataclass
class KmsCore:
    store: Store
    root: RootKey
    clock: Clock
    cache: KeyCache
    keypairs: KeyPairPool  # pre-generated RSA key pairs (the runtime starts and stops its refill)
    authorizer: KmsAuthorizer  # built by the runtime with the policy caches it owns
    # The Regions this service answers for (``--region``): where ReplicateKey may put a replica.
    region_ok: Callable[[str], bool] = is_region
    # The client of external key stores' XKS proxies (None: built without one, as some tools are).
    xks: XksClient | None = None
    pager: Pager = field(init=False)  # the listings' markers, authenticated under the root key

    def __post_init__(self) -> None:
        self.pager = Pager(self.root.token_key)

    # -- sealing -------------------------------------------------------------------------------------
    def seal_material(self, region: str, key_id: str, material_id: str, material: bytes) -> bytes:
        return self.root.seal(MATERIAL_PURPOSE, material_ident(region, key_id, material_id), material)

    def unseal_material(self, region: str, key_id: str, material_id: str, sealed: bytes) -> bytes:
        try:
            return self.root.unseal(MATERIAL_PURPOSE, material_ident(region, key_id, material_id), sealed)
        except SealError:
            raise KMSInternalException(
                "Key material could not be opened with this service's root key."
            ) from None

    # -- loading -------------------------------------------------------------------------------------
    def load_key(self, ctx: RequestContext, region: str, key_id: str) -> LoadedKey | None:
        """The key with its unsealed material, from the cache or the database."""
        cached = self.cache.get_key(region, key_id)
        if cached is not None:
            return cached
        return self.reload_key(ctx, region, key_id)

    def reload_key(self, ctx: RequestContext, region: str, key_id: str) -> LoadedKey | None:
        """The key read from the database, replacing its cache entry: for a cache miss, and for a
        request showing that the entry is older than the database (a ciphertext naming key material
        made on another process, whose change this process has not heard of yet)."""
        if not ctx.allow_io:
            raise NeedsIO()
        epoch = self.cache.epoch
        with self.store.read() as tx:
            loaded = self._load(tx, region, key_id)
        if loaded is not None:
            self.cache.put_key(loaded, epoch)
        return loaded

    def preload(self, region: str, key_ids: Sequence[str]) -> None:
        """Load the keys of ``key_ids`` that are not cached into the cache, a few queries for all of them
        (for a client about to call DescribeKey on a page of keys, as the console does). It returns
        nothing and checks no permission: the calls that follow are authorized as usual."""
        missing = [k for k in dict.fromkeys(key_ids) if not self.cache.has_key(region, k)]
        for start in range(0, len(missing), PRELOAD_BATCH):
            epoch = self.cache.epoch
            with self.store.read() as tx:
                loaded = self._load_many(tx, region, missing[start : start + PRELOAD_BATCH])
            for one in loaded.values():
                self.cache.put_key(one, epoch)

    def _load(self, tx: Tx, region: str, key_id: str) -> LoadedKey | None:
        return self._load_many(tx, region, [key_id]).get(key_id)

    def _load_many(self, tx: Tx, region: str, key_ids: Sequence[str]) -> dict[str, LoadedKey]:
        """Key id -> the key with its material, tags, aliases (first 100 by name) and grants: one query
        per table for all of ``key_ids``."""
        records = tx.get_keys(region, key_ids)
        if not records:
            return {}
        ids = [r.key_id for r in records]
        materials = tx.materials_of_keys(region, ids)
        aliases = tx.aliases_of_keys(region, ids)
        tags = tx.tags_of_keys(region, ids)
        grants = tx.grants_of_keys(region, ids)
        found: dict[str, LoadedKey] = {}
        for record in records:
            key_id = record.key_id
            own = {m.material_id: m for m in materials.get(key_id, [])}
            secrets = {
                mid: Secret(self.unseal_material(region, key_id, mid, m.sealed))
                for mid, m in own.items()
                if m.sealed is not None
            }
            names = tuple(a.alias_name for a in aliases.get(key_id, []) if a.account_id == record.account_id)[
                :MAX_KEY_ALIASES
            ]
            found[key_id] = LoadedKey(
                record, own, secrets, tags.get(key_id, {}), names, tuple(grants.get(key_id, []))
            )
        return found

    def resolve_alias(self, ctx: RequestContext, region: str, account: str, name: str) -> str | None:
        key_id = self.cache.get_alias(region, account, name)
        if key_id is not None:
            return key_id
        if not ctx.allow_io:
            raise NeedsIO()
        epoch = self.cache.epoch
        with self.store.read() as tx:
            alias = tx.get_alias(region, account, name)
        if alias is None:
            return None
        self.cache.put_alias(region, account, name, alias.target_key_id, epoch)
        return alias.target_key_id

    # -- KeyId parameters ----------------------------------------------------------------------------
    def locate(self, ctx: RequestContext, key_id_param: str, allow_alias: bool) -> tuple[str, str, str]:
        """(region, account, key id) named by a KeyId parameter, with AWS's NotFound messages.

        The cross-account rule is applied here, the one lookup every KeyId parameter goes through,
        before anything is read or any policy evaluated: an ARN naming another account is accepted
        only by the operations whose cross-account use is Yes (``domain/operations.py``); for every
        other operation the answer is the one the caller's own account gives (the key not found).
        A bare key id or alias name always names the caller's own account."""
        region, account = ctx.region, ctx.account_id
        value = key_id_param
        if value.startswith("arn:"):
            arn = parse_arn(value)
            if arn is None or arn.service != "kms":
                raise (
                    NotFoundException(f"Invalid arn {value}")
                    if arn is None
                    else NotFoundException(f"Invalid arn {arn.region}")
                )
            if arn.region != region:
                raise NotFoundException(f"Invalid arn {arn.region}")
            if arn.account != account and not accepts_other_accounts_key(ctx.operation):
                raise _not_in_callers_account(region, account, value, arn.resource, allow_alias)
            account = arn.account
            if arn.resource.startswith("key/"):
                value = arn.resource[4:]
            elif arn.resource.startswith("alias/") and allow_alias:
                target = self.resolve_alias(ctx, region, account, arn.resource)
                if target is None:
                    raise NotFoundException(f"Alias {value} is not found.")
                return region, account, target
            else:
                raise NotFoundException(f"Invalid arn {value}")
        elif value.startswith("alias/"):
            if not allow_alias:
                raise NotFoundException(f"Invalid keyId '{value}'")
            target = self.resolve_alias(ctx, region, account, value)
            if target is None:
                raise NotFoundException(f"Alias {alias_arn(region, account, value)} is not found.")
            return region, account, target
        if not is_key_id(value):
            raise NotFoundException(f"Invalid keyId '{value}'")
        return region, account, value

    def resolve(
        self,
        ctx: RequestContext,
        key_id_param: str,
        *,
        action: str,
        allow_alias: bool = False,
        conditions: dict[str, Any] | None = None,
    ) -> LoadedKey:
        """Find the key a KeyId parameter names and authorize ``action`` on it."""
        region, account, key_id = self.locate(ctx, key_id_param, allow_alias)
        loaded = self.load_key(ctx, region, key_id)
        if loaded is None or loaded.record.account_id != account:
            raise NotFoundException(f"Key '{key_arn(region, account, key_id)}' does not exist")
        if key_id_param.startswith("alias/") or ":alias/" in key_id_param:
            ctx.request_alias = (
                key_id_param.rsplit(":", 1)[-1] if key_id_param.startswith("arn:") else key_id_param
            )
        self.authorize(ctx, action, loaded.record, conditions, loaded)
        ctx.touch(loaded.record.arn)
        return loaded

    def resolve_for_update(
        self,
        ctx: RequestContext,
        tx: Tx,
        key_id_param: str,
        *,
        action: str,
        conditions: dict[str, Any] | None = None,
    ) -> KeyRecord:
        """Like :meth:`resolve` inside a write transaction, returning the row locked for update."""
        region, account, key_id = self.locate(ctx, key_id_param, allow_alias=False)
        record = tx.get_key(region, key_id, for_update=True)
        if record is None or record.account_id != account:
            raise NotFoundException(f"Key '{key_arn(region, account, key_id)}' does not exist")
        loaded = LoadedKey(
            record,
            {},
            {},
            tx.get_tags(region, key_id),
            tuple(
                a.alias_name
                for a in tx.list_aliases(region, record.account_id, key_id, None, MAX_KEY_ALIASES)
            ),
        )
        self.authorize(ctx, action, record, conditions, loaded)
        ctx.touch(record.arn)
        return record

    # -- authorization -------------------------------------------------------------------------------
    def caller_identities(self, ctx: RequestContext) -> set[str]:
        """The ARNs a grant may name for the caller (its own, and its role's for sessions)."""
        return caller_identities(ctx.principal)

    def authorize(
        self,
        ctx: RequestContext,
        action: str,
        key: KeyRecord | None,
        conditions: dict[str, Any] | None = None,
        loaded: LoadedKey | None = None,
    ) -> None:
        """Raise AccessDeniedException unless the caller may perform ``kms:<action>`` on ``key``
        (``None`` for actions without a key: identity policies alone decide). A cryptographic call is
        charged to its key type's request quota first."""
        if key is not None and ctx.charge_key is not None:
            ctx.charge_key(key)
        self.authorizer.check(ctx, action, key, conditions, loaded, self.clock.now())
