"""The service's error vocabulary: one exception class per AWS error code, in two families.

Every error that can reach a client is a :class:`ServiceError` subclass carrying the AWS error code, its
HTTP status and a message in AWS's wording. Messages never contain plaintext, ciphertext, key material,
signatures, secret access keys or session tokens. The class name is the wire code. This module is a leaf:
it imports nothing of the project.

* The KMS family answers the JSON protocol, ``{"__type": code, "message": message}``: every error shape
  of botocore's ``kms`` model (HTTP 500 for the shapes the model marks ``fault``, 400 for the others),
  then the common AWS errors KMS answers that the model does not declare.
* The IAM/STS family (:class:`QueryError`) answers the Query protocol,
  ``<ErrorResponse><Error><Type>Sender|Receiver</Type><Code>…``: the errors of botocore's ``iam`` and
  ``sts`` models that the service raises (codes, statuses and sender fault as the models give them), then
  the common Query API errors. The Query API answers the KMS family's authentication errors under their
  Query names (``server/query_app.py``).

The hierarchy (HTTP status 400 unless given)::

    ServiceError
    |
    |   KMS family: error shapes of botocore's kms model
    +-- AlreadyExistsException
    +-- CloudHsmClusterInUseException
    +-- CloudHsmClusterInvalidConfigurationException
    +-- CloudHsmClusterNotActiveException
    +-- CloudHsmClusterNotFoundException
    +-- CloudHsmClusterNotRelatedException
    +-- ConflictException
    +-- CustomKeyStoreHasCMKsException
    +-- CustomKeyStoreInvalidStateException
    +-- CustomKeyStoreNameInUseException
    +-- CustomKeyStoreNotFoundException
    +-- DependencyTimeoutException                                  500
    +-- DisabledException
    +-- DryRunOperationException
    +-- ExpiredImportTokenException
    +-- IncorrectKeyException
    +-- IncorrectKeyMaterialException
    +-- IncorrectTrustAnchorException
    +-- InvalidAliasNameException
    +-- InvalidArnException
    +-- InvalidCiphertextException
    +-- InvalidGrantIdException
    +-- InvalidGrantTokenException
    +-- InvalidImportTokenException
    +-- InvalidKeyUsageException
    +-- InvalidMarkerException
    +-- KMSInternalException                                        500
    +-- KMSInvalidMacException
    +-- KMSInvalidSignatureException
    +-- KMSInvalidStateException
    +-- KeyUnavailableException                                     500
    +-- LimitExceededException
    +-- MalformedPolicyDocumentException
    +-- NotFoundException
    +-- TagException
    +-- UnsupportedOperationException
    +-- XksKeyAlreadyInUseException
    +-- XksKeyInvalidConfigurationException
    +-- XksKeyNotFoundException
    +-- XksProxyIncorrectAuthenticationCredentialException
    +-- XksProxyInvalidConfigurationException
    +-- XksProxyInvalidResponseException
    +-- XksProxyUriEndpointInUseException
    +-- XksProxyUriInUseException
    +-- XksProxyUriUnreachableException
    +-- XksProxyVpcEndpointServiceInUseException
    +-- XksProxyVpcEndpointServiceInvalidConfigurationException
    +-- XksProxyVpcEndpointServiceNotFoundException
    |
    |   KMS family: common AWS errors (not in the model)
    +-- AccessDeniedException
    +-- ExpiredTokenException
    +-- IncompleteSignatureException
    +-- InvalidSignatureException
    +-- MissingAuthenticationTokenException
    +-- NotAuthorizedException
    +-- RequestEntityTooLargeException                              413
    +-- SerializationException
    +-- ThrottlingException
    +-- UnknownOperationException                                   404
    +-- UnrecognizedClientException
    +-- ValidationException
    |
    |   CloudTrail (the JSON protocol too): LookupEvents's error shapes of botocore's cloudtrail model
    |   (UnsupportedOperationException is KMS's class: the same code and status)
    +-- InvalidEventCategoryException
    +-- InvalidLookupAttributesException
    +-- InvalidMaxResultsException
    +-- InvalidNextTokenException
    +-- InvalidTimeRangeException
    |
    +-- QueryError
        |
        |   IAM/STS family: error shapes of botocore's iam and sts models
        +-- DeleteConflict                                          409
        +-- EntityAlreadyExists                                     409
        +-- InvalidInput
        +-- LimitExceeded                                           409
        +-- MalformedPolicyDocument
        +-- NoSuchEntity                                            404
        +-- ServiceFailure                                          500 Receiver
        |
        |   IAM/STS family: common Query API errors (not in the models)
        +-- AccessDenied                                            403
        +-- ExpiredToken                                            403
        +-- IncompleteSignature
        +-- InternalFailure                                         500 Receiver
        +-- InvalidAction
        +-- InvalidClientTokenId                                    403
        +-- MissingAction
        +-- MissingAuthenticationToken                              403
        +-- RequestEntityTooLarge                                   413
        +-- SignatureDoesNotMatch                                   403
        +-- ValidationError

``tests/unit/test_errors.py`` checks this tree, and every class's code, status and sender fault against
botocore's models (kms, cloudtrail, iam, sts).

Outside the tree, :class:`InternalError` is a broken invariant of the service itself (a bug, never the
client's doing): it is raised where ``assert`` would otherwise stand, and answered like any unexpected
exception (logged with its traceback, then ``KMSInternalException`` or ``InternalFailure``).
"""

from __future__ import annotations

from typing import ClassVar, TypeVar


class InternalError(Exception):
    """Something the code relies on does not hold (a bug); never answered to a client as such."""


class ServiceError(Exception):
    """An error answered to the client as ``{"__type": code, "message": message}``."""

    code: ClassVar[str] = "KMSInternalException"
    status: ClassVar[int] = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


# --- KMS family: the error shapes of botocore's kms model. --------------------------------------------
# Custom key store and XKS errors are modeled but this service has no custom key stores; they are
# defined so that every modeled code has a class.
class AlreadyExistsException(ServiceError):
    code = "AlreadyExistsException"


class CloudHsmClusterInUseException(ServiceError):
    code = "CloudHsmClusterInUseException"


class CloudHsmClusterInvalidConfigurationException(ServiceError):
    code = "CloudHsmClusterInvalidConfigurationException"


class CloudHsmClusterNotActiveException(ServiceError):
    code = "CloudHsmClusterNotActiveException"


class CloudHsmClusterNotFoundException(ServiceError):
    code = "CloudHsmClusterNotFoundException"


class CloudHsmClusterNotRelatedException(ServiceError):
    code = "CloudHsmClusterNotRelatedException"


class ConflictException(ServiceError):
    code = "ConflictException"


class CustomKeyStoreHasCMKsException(ServiceError):
    code = "CustomKeyStoreHasCMKsException"


class CustomKeyStoreInvalidStateException(ServiceError):
    code = "CustomKeyStoreInvalidStateException"


class CustomKeyStoreNameInUseException(ServiceError):
    code = "CustomKeyStoreNameInUseException"


class CustomKeyStoreNotFoundException(ServiceError):
    code = "CustomKeyStoreNotFoundException"


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


class IncorrectTrustAnchorException(ServiceError):
    code = "IncorrectTrustAnchorException"


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


class XksKeyAlreadyInUseException(ServiceError):
    code = "XksKeyAlreadyInUseException"


class XksKeyInvalidConfigurationException(ServiceError):
    code = "XksKeyInvalidConfigurationException"


class XksKeyNotFoundException(ServiceError):
    code = "XksKeyNotFoundException"


class XksProxyIncorrectAuthenticationCredentialException(ServiceError):
    code = "XksProxyIncorrectAuthenticationCredentialException"


class XksProxyInvalidConfigurationException(ServiceError):
    code = "XksProxyInvalidConfigurationException"


class XksProxyInvalidResponseException(ServiceError):
    code = "XksProxyInvalidResponseException"


class XksProxyUriEndpointInUseException(ServiceError):
    code = "XksProxyUriEndpointInUseException"


class XksProxyUriInUseException(ServiceError):
    code = "XksProxyUriInUseException"


class XksProxyUriUnreachableException(ServiceError):
    code = "XksProxyUriUnreachableException"


class XksProxyVpcEndpointServiceInUseException(ServiceError):
    code = "XksProxyVpcEndpointServiceInUseException"


class XksProxyVpcEndpointServiceInvalidConfigurationException(ServiceError):
    code = "XksProxyVpcEndpointServiceInvalidConfigurationException"


class XksProxyVpcEndpointServiceNotFoundException(ServiceError):
    code = "XksProxyVpcEndpointServiceNotFoundException"


# --- KMS family: common (unmodeled) errors every AWS JSON service answers. ----------------------------
class AccessDeniedException(ServiceError):
    code = "AccessDeniedException"


class ExpiredTokenException(ServiceError):
    code = "ExpiredTokenException"

    def __init__(self, message: str = "The security token included in the request is expired") -> None:
        super().__init__(message)


class IncompleteSignatureException(ServiceError):
    code = "IncompleteSignatureException"


class InvalidSignatureException(ServiceError):
    code = "InvalidSignatureException"


class MissingAuthenticationTokenException(ServiceError):
    code = "MissingAuthenticationTokenException"

    def __init__(self, message: str = "Missing Authentication Token") -> None:
        super().__init__(message)


class NotAuthorizedException(ServiceError):
    code = "NotAuthorizedException"


class RequestEntityTooLargeException(ServiceError):
    code = "RequestEntityTooLargeException"
    status = 413


class SerializationException(ServiceError):
    code = "SerializationException"


class ThrottlingException(ServiceError):
    code = "ThrottlingException"


class UnknownOperationException(ServiceError):
    code = "UnknownOperationException"
    status = 404


class UnrecognizedClientException(ServiceError):
    code = "UnrecognizedClientException"

    def __init__(self, message: str = "The security token included in the request is invalid.") -> None:
        super().__init__(message)


class ValidationException(ServiceError):
    code = "ValidationException"


# --- IAM/STS family: errors of the Query APIs. ----------------------------------------------------------
class InvalidEventCategoryException(ServiceError):
    code = "InvalidEventCategoryException"


class InvalidLookupAttributesException(ServiceError):
    code = "InvalidLookupAttributesException"


class InvalidMaxResultsException(ServiceError):
    code = "InvalidMaxResultsException"


class InvalidNextTokenException(ServiceError):
    code = "InvalidNextTokenException"


class InvalidTimeRangeException(ServiceError):
    code = "InvalidTimeRangeException"


class QueryError(ServiceError):
    """An error answered in the Query protocol's XML; ``sender`` gives ``<Type>Sender|Receiver</Type>``."""

    sender: ClassVar[bool] = True


# The error shapes of botocore's iam and sts models that the service raises.
class DeleteConflict(QueryError):
    code = "DeleteConflict"
    status = 409


class EntityAlreadyExists(QueryError):
    code = "EntityAlreadyExists"
    status = 409


class InvalidInput(QueryError):
    code = "InvalidInput"
    status = 400


class LimitExceeded(QueryError):
    code = "LimitExceeded"
    status = 409


class MalformedPolicyDocument(QueryError):
    code = "MalformedPolicyDocument"
    status = 400


class NoSuchEntity(QueryError):
    code = "NoSuchEntity"
    status = 404


class ServiceFailure(QueryError):
    code = "ServiceFailure"
    status = 500
    sender = False


# Common Query API errors (not in the models).
class AccessDenied(QueryError):
    code = "AccessDenied"
    status = 403


class ExpiredToken(QueryError):
    code = "ExpiredToken"
    status = 403

    def __init__(self, message: str = "The security token included in the request is expired") -> None:
        super().__init__(message)


class IncompleteSignature(QueryError):
    code = "IncompleteSignature"
    status = 400


class InternalFailure(QueryError):
    code = "InternalFailure"
    status = 500
    sender = False


class InvalidAction(QueryError):
    code = "InvalidAction"
    status = 400


class InvalidClientTokenId(QueryError):
    code = "InvalidClientTokenId"
    status = 403

    def __init__(self, message: str = "The security token included in the request is invalid.") -> None:
        super().__init__(message)


class MissingAction(QueryError):
    code = "MissingAction"
    status = 400


class MissingAuthenticationToken(QueryError):
    code = "MissingAuthenticationToken"
    status = 403


class RequestEntityTooLarge(QueryError):
    code = "RequestEntityTooLarge"
    status = 413


class SignatureDoesNotMatch(QueryError):
    code = "SignatureDoesNotMatch"
    status = 403


class ValidationError(QueryError):
    code = "ValidationError"
    status = 400


_E = TypeVar("_E", bound=ServiceError)


def _family(root: type[_E], skip: type[ServiceError] | None = None) -> dict[str, type[_E]]:
    found: dict[str, type[_E]] = {}
    stack = [root]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub is not skip:
                found[sub.code] = sub
                stack.append(sub)
    return found


def all_error_classes() -> dict[str, type[ServiceError]]:
    """Every class of the KMS family by its wire code (``__type``)."""
    return _family(ServiceError, skip=QueryError)


def query_error_classes() -> dict[str, type[QueryError]]:
    """Every class of the IAM/STS family by its wire code (``<Code>``)."""
    return _family(QueryError)
