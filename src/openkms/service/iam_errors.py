"""Errors of the IAM and STS Query APIs (``<ErrorResponse><Error><Code>…``), with AWS's codes and
HTTP statuses. Messages never contain secret access keys or session tokens."""

from __future__ import annotations

from typing import ClassVar

from openkms.errors import ServiceError


class QueryError(ServiceError):
    """An error answered in the Query protocol's XML; ``sender`` gives ``<Type>Sender|Receiver</Type>``."""

    sender: ClassVar[bool] = True


class NoSuchEntity(QueryError):
    code = "NoSuchEntity"
    status = 404


class EntityAlreadyExists(QueryError):
    code = "EntityAlreadyExists"
    status = 409


class MalformedPolicyDocument(QueryError):
    code = "MalformedPolicyDocument"
    status = 400


class AccessDenied(QueryError):
    code = "AccessDenied"
    status = 403


class ValidationError(QueryError):
    code = "ValidationError"
    status = 400


class LimitExceeded(QueryError):
    code = "LimitExceeded"
    status = 409


class DeleteConflict(QueryError):
    code = "DeleteConflict"
    status = 409


class InvalidInput(QueryError):
    code = "InvalidInput"
    status = 400


class InvalidAction(QueryError):
    code = "InvalidAction"
    status = 400


class MissingAction(QueryError):
    code = "MissingAction"
    status = 400


class InvalidClientTokenId(QueryError):
    code = "InvalidClientTokenId"
    status = 403

    def __init__(self, message: str = "The security token included in the request is invalid.") -> None:
        super().__init__(message)


class ExpiredToken(QueryError):
    code = "ExpiredToken"
    status = 403

    def __init__(self, message: str = "The security token included in the request is expired") -> None:
        super().__init__(message)


class SignatureDoesNotMatch(QueryError):
    code = "SignatureDoesNotMatch"
    status = 403


class IncompleteSignature(QueryError):
    code = "IncompleteSignature"
    status = 400


class MissingAuthenticationToken(QueryError):
    code = "MissingAuthenticationToken"
    status = 403


class RequestEntityTooLarge(QueryError):
    code = "RequestEntityTooLarge"
    status = 413


class InternalFailure(QueryError):
    code = "InternalFailure"
    status = 500
    sender = False


class ServiceFailure(QueryError):
    code = "ServiceFailure"
    status = 500
    sender = False
