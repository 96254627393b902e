"""How the console reaches the service: as the signed-in principal, through the API's own path.

Every KMS operation goes through :meth:`KmsApp.execute` with the AWS JSON body the API takes, so
validation (with AWS's messages), authorization (key policy, IAM policies, grants), key state and the
audit record are exactly the API's; the console's calls are told apart in the audit trail by their user
agent ``openkms-console/<version>``. IAM listings (users and roles for the create-key wizard) call the
IAM service layer with the principal as caller, so IAM policies decide, and are audited like the IAM
Query API's calls.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import orjson

from openkms.audit.events import ApiCall, fast_uuid
from openkms.domain.model import Principal
from openkms.errors import ServiceError
from openkms.server.app import Call
from openkms.service import iam
from openkms.service.iam import IamContext

if TYPE_CHECKING:
    from openkms.server.app import KmsApp


def _version() -> str:
    try:
        return version("openkms")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "0"


VERSION = _version()
USER_AGENT = f"openkms-console/{VERSION}"
IAM_REGION = "us-east-1"

#: The headline the console shows above the service's own message, per error code.
PLAIN_WORDS = {
    "AccessDeniedException": "Access denied",
    "AccessDenied": "Access denied",
    "AlreadyExistsException": "It already exists",
    "DisabledException": "The key is disabled",
    "ExpiredImportTokenException": "The import token has expired",
    "IncorrectKeyMaterialException": "This is not the key material of this key",
    "InvalidAliasNameException": "The alias name is not valid",
    "InvalidArnException": "The ARN is not valid",
    "InvalidCiphertextException": "The wrapped key material could not be decrypted",
    "InvalidImportTokenException": "The import token is not valid for this key",
    "InvalidMarkerException": "The page marker is not valid",
    "KMSInvalidStateException": "The key's state does not allow this",
    "LimitExceededException": "A limit was reached",
    "MalformedPolicyDocumentException": "The key policy is not valid",
    "NotFoundException": "Not found",
    "SerializationException": "The request could not be read",
    "TagException": "The tags are not valid",
    "UnsupportedOperationException": "This is not supported for this key",
    "ValidationException": "A value is not valid",
    "ValidationError": "A value is not valid",
    "KMSInternalException": "Something went wrong on the server",
    "CustomKeyStoreHasCMKsException": "The key store still has KMS keys",
    "CustomKeyStoreInvalidStateException": "The key store's connection state does not allow this",
    "CustomKeyStoreNameInUseException": "A key store with this name already exists",
    "CustomKeyStoreNotFoundException": "The key store was not found",
    "XksKeyAlreadyInUseException": "Another KMS key already uses this external key",
    "XksKeyInvalidConfigurationException": "The external key cannot be used for a KMS key",
    "XksKeyNotFoundException": "The proxy does not know this external key",
    "XksProxyIncorrectAuthenticationCredentialException": "The proxy refused the credential",
    "XksProxyInvalidConfigurationException": "The proxy's configuration is not valid",
    "XksProxyInvalidResponseException": "The proxy's answer could not be understood",
    "XksProxyUriEndpointInUseException": "Another key store uses this proxy URI endpoint",
    "XksProxyUriInUseException": "Another key store uses this proxy URI",
    "XksProxyUriUnreachableException": "The proxy could not be reached",
    "XksProxyVpcEndpointServiceNotFoundException": "The VPC endpoint service was not found",
    "ConsoleInputError": "",  # the console's own message says it all
}


class ApiError(Exception):
    """An error answered by the service, to be shown next to the control that caused it."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    @property
    def title(self) -> str:
        return PLAIN_WORDS.get(self.code, self.code.removesuffix("Exception"))


def input_error(message: str) -> ApiError:
    """A mistake the console notices before asking the service (e.g. a required field left empty)."""
    return ApiError("ConsoleInputError", message, 400)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


class Api:
    def __init__(
        self,
        app: KmsApp,
        principal: Principal,
        region: str,
        source_ip: str,
        secure: bool,
        access_key_id: str | None = None,
    ) -> None:
        self.app = app
        self.principal = principal
        self.region = region
        self.source_ip = source_ip
        self.secure = secure
        self.access_key_id = access_key_id or principal.access_key_id

    def in_region(self, region: str) -> Api:
        """The same principal's API in another Region this service answers for (a multi-Region key's
        replicas live in their own Regions); ``ApiError`` for a Region the service does not answer."""
        if not self.app.runtime.settings.region_ok(region):
            raise input_error(f"This service does not answer for the Region {region[:32]!r}.")
        return Api(self.app, self.principal, region, self.source_ip, self.secure, self.access_key_id)

    async def kms(self, operation: str, **params: Any) -> dict[str, Any]:
        """Run one KMS operation (PascalCase parameters as the API takes them); the parsed answer."""
        body = orjson.dumps({k: v for k, v in params.items() if v is not None}, default=_json_default)
        call = Call(
            operation=operation,
            body=body,
            principal=self.principal,
            region=self.region,
            source_ip=self.source_ip,
            user_agent=USER_AGENT,
            started=self.app.runtime.clock.now(),
            secure=self.secure,
            access_key_id=self.access_key_id,
            api="console",
        )
        status, out = await self.app.execute(call)
        data: dict[str, Any] = orjson.loads(out) if out else {}
        if status != 200:
            raise ApiError(
                str(data.get("__type", "KMSInternalException")), str(data.get("message", "")), status
            )
        return data

    async def preload_keys(self, key_ids: list[str]) -> None:
        """Warm the service's key cache for a page of keys about to be described, in a few queries
        instead of several per key (no data comes back; the DescribeKey calls that follow are
        authorized and audited as usual)."""
        await asyncio.get_running_loop().run_in_executor(
            self.app.pool, functools.partial(self.app.core.preload, self.region, key_ids)
        )

    async def kms_pages(self, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paginated listing (for short listings: a key's aliases, grants, rotations)."""
        items: list[dict[str, Any]] = []
        marker: str | None = None
        for _ in range(100):
            page = await self.kms(operation, Marker=marker, **params)
            items += page.get(key, [])
            marker = page.get("NextMarker")
            if not page.get("Truncated") or not marker:
                break
        return items

    # -- IAM (service layer, the principal's IAM authorization, audited as the IAM API) ---------------
    async def iam(self, operation: str, fn: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
        runtime = self.app.runtime
        started = runtime.clock.now()
        ctx = IamContext(
            runtime.store,
            runtime.root,
            started,
            self.principal.account_id,
            self.principal,
            policies=runtime.policies,
            documents=runtime.documents,
        )
        error: ServiceError | None = None
        result: dict[str, Any] = {}
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self.app.pool, functools.partial(fn, ctx, **params)
            )
        except ServiceError as exc:
            error = exc
        await self.record(
            event_source="iam.amazonaws.com",
            event_name=operation,
            region=IAM_REGION,
            started=started,
            error_code=error.code if error else None,
            error_message=error.message if error else None,
        )
        if error is not None:
            raise ApiError(error.code, error.message, error.status)
        return result

    async def iam_principals(self) -> tuple[list[dict[str, str]], ApiError | None]:
        """The account's IAM users and roles ({name, arn, kind}) for choosing key administrators and
        users, and the error when the principal may not list them."""
        found: list[dict[str, str]] = []
        problem: ApiError | None = None
        try:
            users = await self.iam("ListUsers", iam.list_users, max_items=1000)
            found += [{"name": u["user_name"], "arn": u["arn"], "kind": "User"} for u in users["users"]]
            roles = await self.iam("ListRoles", iam.list_roles, max_items=1000)
            found += [{"name": r["role_name"], "arn": r["arn"], "kind": "Role"} for r in roles["roles"]]
        except ApiError as exc:
            problem = exc
        return found, problem

    async def record(
        self,
        *,
        event_source: str,
        event_name: str,
        region: str,
        started: float,
        error_code: str | None = None,
        error_message: str | None = None,
        request_parameters: dict[str, Any] | None = None,
    ) -> None:
        """The audit record of a console call that is not a KMS operation and changes nothing (IAM
        listings, event history), made by the signed-in principal."""
        await self.app.runtime.audit.submit_call(
            ApiCall(
                event_source=event_source,
                event_name=event_name,
                read_only=True,
                principal=self.principal,
                access_key_id=self.access_key_id,
                region=region,
                source_ip=self.source_ip,
                user_agent=USER_AGENT,
                request_id=fast_uuid(),
                started=started,
                request_parameters=request_parameters,
                error_code=error_code,
                error_message=error_message,
            )
        )
