"""The custom key store operations for external key stores: CreateCustomKeyStore,
ConnectCustomKeyStore, DisconnectCustomKeyStore, UpdateCustomKeyStore, DeleteCustomKeyStore and
DescribeCustomKeyStores. CloudHSM key stores are refused (there is no AWS CloudHSM here).

As on AWS, CreateCustomKeyStore and UpdateCustomKeyStore check the proxy (GetHealthStatus) before
anything is stored, and refuse what it answers with AWS's errors; ConnectCustomKeyStore shows
CONNECTING while it checks the proxy, then CONNECTED, or FAILED with AWS's ConnectionErrorCode. The
proxy is never called with a database transaction open. The credential's secret is sealed under the
root key (purpose ``xks-proxy-credential``, bound to the key store's id) and never returned or logged.
"""

from __future__ import annotations

from typing import Any

from openkms.crypto.randomness import random_bytes
from openkms.crypto.secret import Secret
from openkms.domain import custom_key_stores as cks
from openkms.domain.custom_key_stores import ConnectionState, Failure
from openkms.errors import (
    CustomKeyStoreHasCMKsException,
    CustomKeyStoreInvalidStateException,
    CustomKeyStoreNameInUseException,
    CustomKeyStoreNotFoundException,
    KMSInternalException,
    LimitExceededException,
    ServiceError,
    UnsupportedOperationException,
    ValidationException,
    XksProxyIncorrectAuthenticationCredentialException,
    XksProxyInvalidConfigurationException,
    XksProxyInvalidResponseException,
    XksProxyUriInUseException,
    XksProxyUriUnreachableException,
    XksProxyVpcEndpointServiceNotFoundException,
)
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore
from openkms.service.kms.xks_client import ProxyError, ProxyTarget
from openkms.storage.rows import Conflict, CustomKeyStoreRow
from openkms.storage.store import Tx

SECRET_PURPOSE = "xks-proxy-credential"  # noqa: S105 - a sealing label, not a secret
MARKER_KIND = "custom-key-stores"
DEFAULT_LIMIT = 1000

_CLOUDHSM = (
    "CloudHSM key stores (CustomKeyStoreType AWS_CLOUDHSM) are not supported by this service: it has no "
    "AWS CloudHSM cluster. Use CustomKeyStoreType EXTERNAL_KEY_STORE."
)
_NO_VPC = (
    "XksProxyConnectivity VPC_ENDPOINT_SERVICE needs an Amazon VPC endpoint service; this service has "
    "no VPC: use PUBLIC_ENDPOINT."
)


def _not_found(store_id: str | None = None) -> CustomKeyStoreNotFoundException:
    return CustomKeyStoreNotFoundException(
        f"Custom key store {store_id} does not exist."
        if store_id
        else "The specified custom key store does not exist."
    )


def find(
    core: KmsCore, tx: Tx, ctx: RequestContext, store_id: str, for_update: bool = False
) -> CustomKeyStoreRow:
    row = tx.get_custom_key_store(ctx.region, ctx.account_id, store_id, for_update)
    if row is None:
        raise _not_found(store_id)
    return row


def target(core: KmsCore, row: CustomKeyStoreRow) -> ProxyTarget:
    secret = core.root.unseal(SECRET_PURPOSE, row.custom_key_store_id, row.secret_sealed).decode("ascii")
    return ProxyTarget(row.uri_endpoint, row.uri_path, row.access_key_id, Secret(secret), row.region)


def client(core: KmsCore) -> Any:
    if core.xks is None:
        raise KMSInternalException("This server has no XKS client.")
    return core.xks


# -- the proxy's health ------------------------------------------------------------------------------------
def check_health(core: KmsCore, ctx: RequestContext, proxy: ProxyTarget) -> None:
    """GetHealthStatus; raises :class:`ProxyError` unless the proxy answers one with an active
    external key manager."""
    answer = client(core).call(
        proxy,
        "health",
        {"requestMetadata": {"kmsOperation": ctx.operation, "kmsRequestId": ctx.request_id}},
    )
    fleet = answer.get("ekmFleetDetails")
    if not isinstance(answer.get("xksProxyFleetSize"), int) or not isinstance(fleet, list) or not fleet:
        raise ProxyError(Failure.INVALID_RESPONSE, "The XKS proxy's GetHealthStatus answer is not valid.")
    if not any(isinstance(e, dict) and e.get("healthStatus") in ("ACTIVE", "DEGRADED") for e in fleet):
        raise ProxyError(Failure.NOT_REACHABLE, "Every external key manager of the XKS proxy is unavailable.")


def _management_error(error: ProxyError) -> ServiceError:
    """What CreateCustomKeyStore and UpdateCustomKeyStore answer for a proxy that fails its check."""
    failure = error.failure
    if failure is Failure.INVALID_CREDENTIALS:
        return XksProxyIncorrectAuthenticationCredentialException(
            "The XKS proxy rejected the proxy authentication credential. " + error.message
        )
    if failure in (Failure.NOT_REACHABLE, Failure.TIMED_OUT):
        return XksProxyUriUnreachableException(error.message)
    if failure in (Failure.INVALID_CONFIGURATION, Failure.INVALID_TLS, Failure.ACCESS_DENIED):
        return XksProxyInvalidConfigurationException(error.message)
    return XksProxyInvalidResponseException(error.message)


def _checked(core: KmsCore, ctx: RequestContext, proxy: ProxyTarget) -> None:
    try:
        check_health(core, ctx, proxy)
    except ProxyError as exc:
        raise _management_error(exc) from None


# -- parameters --------------------------------------------------------------------------------------------
def _credential(value: dict[str, Any] | None) -> tuple[str, str] | None:
    if value is None:
        return None
    return value["access_key_id"], value["raw_secret_access_key"]


def _refuse_cloudhsm_parameters(**given: Any) -> None:
    for name, value in given.items():
        if value is not None:
            raise ValidationException(f"{name} is valid only for a CloudHSM key store ({_CLOUDHSM})")


def _check_connectivity(connectivity: str | None, vpc_service: str | None, vpc_owner: str | None) -> None:
    if connectivity == cks.VPC_ENDPOINT_SERVICE:
        if vpc_service is None:
            raise ValidationException(
                "XksProxyVpcEndpointServiceName is required when XksProxyConnectivity is "
                "VPC_ENDPOINT_SERVICE."
            )
        raise XksProxyVpcEndpointServiceNotFoundException(_NO_VPC)
    if vpc_service is not None or vpc_owner is not None:
        raise ValidationException(
            "XksProxyVpcEndpointServiceName and XksProxyVpcEndpointServiceOwner are valid only when "
            "XksProxyConnectivity is VPC_ENDPOINT_SERVICE."
        )


def _check_uri_unused(tx: Tx, ctx: RequestContext, endpoint: str, path: str, own_id: str | None) -> None:
    for other in tx.list_custom_key_stores(ctx.region, ctx.account_id):
        if other.custom_key_store_id != own_id and (other.uri_endpoint, other.uri_path) == (endpoint, path):
            raise XksProxyUriInUseException(
                f"The XKS proxy URI {endpoint}{path} is already used by custom key store "
                f"{other.custom_key_store_id}."
            )


def view(row: CustomKeyStoreRow) -> dict[str, Any]:
    """A CustomKeyStoresListEntry (snake_case members, as the wire layer encodes them)."""
    entry: dict[str, Any] = {
        "custom_key_store_id": row.custom_key_store_id,
        "custom_key_store_name": row.name,
        "connection_state": row.connection_state,
    }
    if row.connection_state == ConnectionState.FAILED and row.connection_error_code:
        entry["connection_error_code"] = row.connection_error_code
    entry["creation_date"] = row.created_at
    entry["custom_key_store_type"] = row.store_type
    entry["xks_proxy_configuration"] = {
        "connectivity": row.connectivity,
        "access_key_id": row.access_key_id,
        "uri_endpoint": row.uri_endpoint,
        "uri_path": row.uri_path,
    }
    return entry


# -- the operations ----------------------------------------------------------------------------------------
def create_custom_key_store(
    core: KmsCore,
    ctx: RequestContext,
    *,
    custom_key_store_name: str,
    cloud_hsm_cluster_id: str | None = None,
    trust_anchor_certificate: str | None = None,
    key_store_password: str | None = None,
    custom_key_store_type: str | None = None,
    xks_proxy_uri_endpoint: str | None = None,
    xks_proxy_uri_path: str | None = None,
    xks_proxy_vpc_endpoint_service_name: str | None = None,
    xks_proxy_vpc_endpoint_service_owner: str | None = None,
    xks_proxy_authentication_credential: dict[str, Any] | None = None,
    xks_proxy_connectivity: str | None = None,
) -> dict[str, Any]:
    if (custom_key_store_type or cks.AWS_CLOUDHSM) == cks.AWS_CLOUDHSM:
        raise UnsupportedOperationException(_CLOUDHSM)
    _refuse_cloudhsm_parameters(
        CloudHsmClusterId=cloud_hsm_cluster_id,
        TrustAnchorCertificate=trust_anchor_certificate,
        KeyStorePassword=key_store_password,
    )
    required = {
        "XksProxyUriEndpoint": xks_proxy_uri_endpoint,
        "XksProxyUriPath": xks_proxy_uri_path,
        "XksProxyAuthenticationCredential": xks_proxy_authentication_credential,
        "XksProxyConnectivity": xks_proxy_connectivity,
    }
    missing = [name for name, value in required.items() if value is None]
    if missing:
        raise ValidationException(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required for a custom key store "
            "of type EXTERNAL_KEY_STORE."
        )
    _check_connectivity(
        xks_proxy_connectivity, xks_proxy_vpc_endpoint_service_name, xks_proxy_vpc_endpoint_service_owner
    )
    endpoint, path = xks_proxy_uri_endpoint or "", xks_proxy_uri_path or ""
    cks.parse_endpoint(endpoint)  # the model's pattern (with this service's port) checked it
    credential = _credential(xks_proxy_authentication_credential)
    if credential is None:  # required above
        raise ValidationException("XksProxyAuthenticationCredential is required.")
    core.authorize(ctx, "CreateCustomKeyStore", None)
    with core.store.read() as tx:
        existing = tx.list_custom_key_stores(ctx.region, ctx.account_id)
        if any(row.name == custom_key_store_name for row in existing):
            raise CustomKeyStoreNameInUseException(
                f"Custom key store name {custom_key_store_name} is already in use."
            )
        if len(existing) >= cks.MAX_KEY_STORES:
            raise LimitExceededException(
                f"An account can have at most {cks.MAX_KEY_STORES} custom key stores in a Region."
            )
        _check_uri_unused(tx, ctx, endpoint, path, None)
    store_id = cks.new_store_id(random_bytes(9).hex())
    access_key_id, secret = credential
    _checked(core, ctx, ProxyTarget(endpoint, path, access_key_id, Secret(secret), ctx.region))
    row = CustomKeyStoreRow(
        custom_key_store_id=store_id,
        region=ctx.region,
        account_id=ctx.account_id,
        name=custom_key_store_name,
        store_type=cks.EXTERNAL_KEY_STORE,
        connection_state=ConnectionState.DISCONNECTED,
        connection_error_code=None,
        created_at=core.clock.now(),
        uri_endpoint=endpoint,
        uri_path=path,
        connectivity=xks_proxy_connectivity or cks.PUBLIC_ENDPOINT,
        access_key_id=access_key_id,
        secret_sealed=core.root.seal(SECRET_PURPOSE, store_id, secret.encode("ascii")),
    )
    with core.store.write() as tx:
        if len(tx.list_custom_key_stores(ctx.region, ctx.account_id)) >= cks.MAX_KEY_STORES:
            raise LimitExceededException(
                f"An account can have at most {cks.MAX_KEY_STORES} custom key stores in a Region."
            )
        _check_uri_unused(tx, ctx, endpoint, path, None)
        try:
            tx.insert_custom_key_store(row)
        except Conflict:
            raise CustomKeyStoreNameInUseException(
                f"Custom key store name {custom_key_store_name} is already in use."
            ) from None
    return {"custom_key_store_id": store_id}


def connect_custom_key_store(
    core: KmsCore, ctx: RequestContext, *, custom_key_store_id: str
) -> dict[str, Any]:
    core.authorize(ctx, "ConnectCustomKeyStore", None)
    with core.store.write() as tx:
        row = find(core, tx, ctx, custom_key_store_id, for_update=True)
        if not cks.connect_allowed(row.connection_state):
            raise CustomKeyStoreInvalidStateException(
                f"Custom key store {custom_key_store_id} is {row.connection_state}: disconnect it "
                "(DisconnectCustomKeyStore) before connecting it again."
            )
        if row.connection_state == ConnectionState.CONNECTED:
            return {}
        row.connection_state, row.connection_error_code = ConnectionState.CONNECTING, None
        tx.update_custom_key_store(row)
    proxy = target(core, row)
    code: str | None = None
    try:
        check_health(core, ctx, proxy)
    except ProxyError as exc:
        code = str(exc.failure or Failure.INVALID_RESPONSE)
    with core.store.write() as tx:
        now = find(core, tx, ctx, custom_key_store_id, for_update=True)
        if now.connection_state == ConnectionState.CONNECTING:  # not disconnected meanwhile
            now.connection_state = ConnectionState.FAILED if code else ConnectionState.CONNECTED
            now.connection_error_code = code
            tx.update_custom_key_store(now)
    return {}


def disconnect_custom_key_store(
    core: KmsCore, ctx: RequestContext, *, custom_key_store_id: str
) -> dict[str, Any]:
    core.authorize(ctx, "DisconnectCustomKeyStore", None)
    with core.store.write() as tx:
        row = find(core, tx, ctx, custom_key_store_id, for_update=True)
        row.connection_state, row.connection_error_code = ConnectionState.DISCONNECTED, None
        tx.update_custom_key_store(row)
    return {}


def update_custom_key_store(
    core: KmsCore,
    ctx: RequestContext,
    *,
    custom_key_store_id: str,
    new_custom_key_store_name: str | None = None,
    key_store_password: str | None = None,
    cloud_hsm_cluster_id: str | None = None,
    xks_proxy_uri_endpoint: str | None = None,
    xks_proxy_uri_path: str | None = None,
    xks_proxy_vpc_endpoint_service_name: str | None = None,
    xks_proxy_vpc_endpoint_service_owner: str | None = None,
    xks_proxy_authentication_credential: dict[str, Any] | None = None,
    xks_proxy_connectivity: str | None = None,
) -> dict[str, Any]:
    _refuse_cloudhsm_parameters(KeyStorePassword=key_store_password, CloudHsmClusterId=cloud_hsm_cluster_id)
    _check_connectivity(
        xks_proxy_connectivity, xks_proxy_vpc_endpoint_service_name, xks_proxy_vpc_endpoint_service_owner
    )
    core.authorize(ctx, "UpdateCustomKeyStore", None)
    credential = _credential(xks_proxy_authentication_credential)
    with core.store.read() as tx:
        row = find(core, tx, ctx, custom_key_store_id)
    # AWS: the endpoint and the connectivity can change only while the key store is disconnected; the
    # name, the path and the credential also while it is connected.
    if (
        xks_proxy_uri_endpoint is not None or xks_proxy_connectivity is not None
    ) and row.connection_state != ConnectionState.DISCONNECTED:
        raise CustomKeyStoreInvalidStateException(
            f"Custom key store {custom_key_store_id} is {row.connection_state}: disconnect it "
            "(DisconnectCustomKeyStore) before changing its XksProxyUriEndpoint or XksProxyConnectivity."
        )
    endpoint = xks_proxy_uri_endpoint or row.uri_endpoint
    path = xks_proxy_uri_path or row.uri_path
    access_key_id, secret = credential or (row.access_key_id, target(core, row).secret.reveal())
    proxy_changed = (
        xks_proxy_uri_endpoint is not None or xks_proxy_uri_path is not None or credential is not None
    )
    if proxy_changed:
        _checked(core, ctx, ProxyTarget(endpoint, path, access_key_id, Secret(secret), row.region))
    with core.store.write() as tx:
        current = find(core, tx, ctx, custom_key_store_id, for_update=True)
        if xks_proxy_uri_endpoint is not None and current.connection_state != ConnectionState.DISCONNECTED:
            raise CustomKeyStoreInvalidStateException(
                f"Custom key store {custom_key_store_id} is {current.connection_state}."
            )
        if proxy_changed:
            _check_uri_unused(tx, ctx, endpoint, path, custom_key_store_id)
        current.uri_endpoint, current.uri_path = endpoint, path
        if xks_proxy_connectivity is not None:
            current.connectivity = xks_proxy_connectivity
        if credential is not None:
            current.access_key_id = access_key_id
            current.secret_sealed = core.root.seal(
                SECRET_PURPOSE, custom_key_store_id, secret.encode("ascii")
            )
        if new_custom_key_store_name is not None:
            current.name = new_custom_key_store_name
        try:
            tx.update_custom_key_store(current)
        except Conflict:
            raise CustomKeyStoreNameInUseException(
                f"Custom key store name {new_custom_key_store_name} is already in use."
            ) from None
    return {}


def delete_custom_key_store(
    core: KmsCore, ctx: RequestContext, *, custom_key_store_id: str
) -> dict[str, Any]:
    core.authorize(ctx, "DeleteCustomKeyStore", None)
    with core.store.write() as tx:
        row = find(core, tx, ctx, custom_key_store_id, for_update=True)
        if row.connection_state != ConnectionState.DISCONNECTED:
            raise CustomKeyStoreInvalidStateException(
                f"Custom key store {custom_key_store_id} is {row.connection_state}: disconnect it "
                "(DisconnectCustomKeyStore) before deleting it."
            )
        if tx.custom_key_store_has_keys(custom_key_store_id):
            raise CustomKeyStoreHasCMKsException(
                f"Custom key store {custom_key_store_id} still has KMS keys: schedule their deletion and "
                "wait until they are deleted."
            )
        tx.delete_custom_key_store(custom_key_store_id)
    return {}


def describe_custom_key_stores(
    core: KmsCore,
    ctx: RequestContext,
    *,
    custom_key_store_id: str | None = None,
    custom_key_store_name: str | None = None,
    limit: int | None = None,
    marker: str | None = None,
) -> dict[str, Any]:
    core.authorize(ctx, "DescribeCustomKeyStores", None)
    after = core.pager.read_marker(MARKER_KIND, marker)
    if custom_key_store_id is not None and custom_key_store_name is not None:
        raise ValidationException("Specify CustomKeyStoreId or CustomKeyStoreName, not both.")
    with core.store.read() as tx:
        if custom_key_store_id is not None:
            one = tx.get_custom_key_store(ctx.region, ctx.account_id, custom_key_store_id)
            if one is None:
                raise _not_found(custom_key_store_id)
            rows = [one]
        else:
            rows = tx.list_custom_key_stores(ctx.region, ctx.account_id, name=custom_key_store_name)
            if custom_key_store_name is not None and not rows:
                raise _not_found()
    rows = [r for r in rows if after is None or r.custom_key_store_id > after]
    by_id = {r.custom_key_store_id: r for r in rows}
    page, next_marker = core.pager.page(
        list(by_id)[: (limit or DEFAULT_LIMIT) + 1], limit or DEFAULT_LIMIT, MARKER_KIND
    )
    result: dict[str, Any] = {
        "custom_key_stores": [view(by_id[i]) for i in page],
        "truncated": next_marker is not None,
    }
    if next_marker is not None:
        result["next_marker"] = next_marker
    return result
