"""The service's error vocabulary: one exception class per AWS error code.

Every error that can reach a client is a :class:`ServiceError` subclass carrying the AWS error code
(the ``__type`` on the wire), its HTTP status and a message in AWS's wording. Messages never contain
plaintext, ciphertext, key material, signatures or secret keys.
"""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    """An error answered to the client as ``{"__type": code, "message": message}``."""

    code: ClassVar[str] = "KMSInternalException"
    status: ClassVar[int] = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


def _client(code: str, status: int = 400) -> type[ServiceError]:
    return type(code, (ServiceError,), {"code": code, "status": status, "__module__": __name__})


# --- Modeled KMS exceptions (botocore's kms service model). -------------------------------------------
class AlreadyExistsException(ServiceError):
    code = "AlreadyExistsException"


class ConflictException(ServiceError):
    code = "ConflictException"


class DependencyTimeoutException(ServiceError):
    code = "DependencyTimeoutException"
    status = 500


class DisabledException(ServiceError):
    code = "DisabledException"


class DryRunOperationException(ServiceError):
    code = "DryRunOperationException"

    def __init__(
        self, message: str = "The request would have succeeded, but the DryRun option is set."
    ) -> None:
        super().__init__(message)


class ExpiredImportTokenException(ServiceError):
    code = "ExpiredImportTokenException"


class IncorrectKeyException(ServiceError):
    code = "IncorrectKeyException"


class IncorrectKeyMaterialException(ServiceError):
    code = "IncorrectKeyMaterialException"


class InvalidAliasNameException(ServiceError):
    code = "InvalidAliasNameException"


class InvalidArnException(ServiceError):
    code = "InvalidArnException"


class InvalidCiphertextException(ServiceError):
    code = "InvalidCiphertextException"


class InvalidGrantIdException(ServiceError):
    code = "InvalidGrantIdException"


class InvalidGrantTokenException(ServiceError):
    code = "InvalidGrantTokenException"


class InvalidImportTokenException(ServiceError):
    code = "InvalidImportTokenException"


class InvalidKeyUsageException(ServiceError):
    code = "InvalidKeyUsageException"


class InvalidMarkerException(ServiceError):
    code = "InvalidMarkerException"


class KMSInternalException(ServiceError):
    code = "KMSInternalException"
    status = 500


class KMSInvalidMacException(ServiceError):
    code = "KMSInvalidMacException"


class KMSInvalidSignatureException(ServiceError):
    code = "KMSInvalidSignatureException"


class KMSInvalidStateException(ServiceError):
    code = "KMSInvalidStateException"


class KeyUnavailableException(ServiceError):
    code = "KeyUnavailableException"
    status = 500


class LimitExceededException(ServiceError):
    code = "LimitExceededException"


class MalformedPolicyDocumentException(ServiceError):
    code = "MalformedPolicyDocumentException"


class NotFoundException(ServiceError):
    code = "NotFoundException"


class TagException(ServiceError):
    code = "TagException"


class UnsupportedOperationException(ServiceError):
    code = "UnsupportedOperationException"


class CustomKeyStoreNotFoundException(ServiceError):
    code = "CustomKeyStoreNotFoundException"


# --- Common (unmodeled) errors every AWS JSON service answers. ---------------------------------------
class ValidationException(ServiceError):
    code = "ValidationException"


class SerializationException(ServiceError):
    code = "SerializationException"


class AccessDeniedException(ServiceError):
    code = "AccessDeniedException"


class NotAuthorizedException(ServiceError):
    code = "NotAuthorizedException"


class UnrecognizedClientException(ServiceError):
    code = "UnrecognizedClientException"

    def __init__(self, message: str = "The security token included in the request is invalid.") -> None:
        super().__init__(message)


class InvalidSignatureException(ServiceError):
    code = "InvalidSignatureException"


class IncompleteSignatureException(ServiceError):
    code = "IncompleteSignatureException"


class MissingAuthenticationTokenException(ServiceError):
    code = "MissingAuthenticationTokenException"

    def __init__(self, message: str = "Missing Authentication Token") -> None:
        super().__init__(message)


class ExpiredTokenException(ServiceError):
    code = "ExpiredTokenException"

    def __init__(self, message: str = "The security token included in the request is expired") -> None:
        super().__init__(message)


class UnknownOperationException(ServiceError):
    code = "UnknownOperationException"
    status = 404


class RequestEntityTooLargeException(ServiceError):
    code = "RequestEntityTooLargeException"
    status = 413


class ThrottlingException(ServiceError):
    code = "ThrottlingException"


class InternalFailure(ServiceError):
    code = "InternalFailure"
    status = 500


def all_error_classes() -> dict[str, type[ServiceError]]:
    """Every error class by its wire code (used by the contract test against the model)."""
    found: dict[str, type[ServiceError]] = {}
    stack: list[type[ServiceError]] = [ServiceError]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            found[sub.code] = sub
            stack.append(sub)
    return found


# Custom key store and XKS errors are modeled but this service has no custom key stores; they are
# defined so that every modeled code has a class (the contract test checks this).
for _name in (
    "CloudHsmClusterInUseException",
    "CloudHsmClusterInvalidConfigurationException",
    "CloudHsmClusterNotActiveException",
    "CloudHsmClusterNotFoundException",
    "CloudHsmClusterNotRelatedException",
    "CustomKeyStoreHasCMKsException",
    "CustomKeyStoreInvalidStateException",
    "CustomKeyStoreNameInUseException",
    "IncorrectTrustAnchorException",
    "XksKeyAlreadyInUseException",
    "XksKeyInvalidConfigurationException",
    "XksKeyNotFoundException",
    "XksProxyIncorrectAuthenticationCredentialException",
    "XksProxyInvalidConfigurationException",
    "XksProxyInvalidResponseException",
    "XksProxyUriEndpointInUseException",
    "XksProxyUriInUseException",
    "XksProxyUriUnreachableException",
    "XksProxyVpcEndpointServiceInUseException",
    "XksProxyVpcEndpointServiceInvalidConfigurationException",
    "XksProxyVpcEndpointServiceNotFoundException",
):
    globals()[_name] = _client(_name)
