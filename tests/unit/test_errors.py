"""The error classes against botocore's kms, iam and sts models, and the hierarchy drawn in errors.py.

A class whose code is an error shape of a model must answer the model's code and HTTP status (and, in the
Query protocol, its sender fault); a class the models do not declare is one of AWS's common errors and
is checked against the tables below (what AWS answers; the e2e tests pin the same on the wire).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import botocore.loaders
import pytest

from openkms import errors
from openkms.errors import QueryError, ServiceError, all_error_classes, query_error_classes

# Common AWS errors KMS answers that its model does not declare: code -> HTTP status.
KMS_COMMON = {
    "AccessDeniedException": 400,  # 400 in practice for KMS (CommonErrors lists 403)
    "ExpiredTokenException": 400,
    "IncompleteSignatureException": 400,
    "InvalidSignatureException": 400,
    "MissingAuthenticationTokenException": 400,
    "NotAuthorizedException": 400,
    "RequestEntityTooLargeException": 413,
    "SerializationException": 400,
    "ThrottlingException": 400,
    "UnknownOperationException": 404,
    "UnrecognizedClientException": 400,
    "ValidationException": 400,
}
# Common Query API errors the IAM and STS models do not declare: code -> (HTTP status, sender fault).
QUERY_COMMON = {
    "AccessDenied": (403, True),
    "ExpiredToken": (403, True),
    "IncompleteSignature": (400, True),
    "InternalFailure": (500, False),
    "InvalidAction": (400, True),
    "InvalidClientTokenId": (403, True),
    "MissingAction": (400, True),
    "MissingAuthenticationToken": (403, True),
    "RequestEntityTooLarge": (413, True),
    "SignatureDoesNotMatch": (403, True),
    "ValidationError": (400, True),
}


@functools.cache
def error_shapes(service: str) -> dict[str, dict[str, Any]]:
    """The model's error shapes by name (the raw model: botocore's Shape drops ``fault``)."""
    model = botocore.loaders.create_loader().load_service_model(service, "service-2")
    return {name: shape for name, shape in model["shapes"].items() if shape.get("exception")}


def wire_code(name: str, shape: dict[str, Any]) -> str:
    return str(shape.get("error", {}).get("code", name))


def json_status(shape: dict[str, Any]) -> int:
    """The JSON protocol's status: the model's ``httpStatusCode``, else 500 for a fault, 400 otherwise."""
    default = 500 if shape.get("fault") else 400
    return int(shape.get("error", {}).get("httpStatusCode", default))


def module_classes() -> dict[str, type[ServiceError]]:
    return {
        name: obj
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, ServiceError) and obj not in (ServiceError, QueryError)
    }


def test_every_class_is_in_one_family_under_its_code() -> None:
    kms, query = all_error_classes(), query_error_classes()
    assert not set(kms.values()) & set(query.values())
    assert sorted(c.__name__ for c in [*kms.values(), *query.values()]) == sorted(module_classes())
    for code, cls in [*kms.items(), *query.items()]:
        assert cls.__name__ == code, cls
        assert cls.__module__ == errors.__name__
    assert all(issubclass(cls, QueryError) for cls in query.values())
    assert not any(issubclass(cls, QueryError) for cls in kms.values())


def test_every_kms_error_shape_has_a_class() -> None:
    classes = all_error_classes()
    missing = {wire_code(n, s) for n, s in error_shapes("kms").items()} - set(classes)
    assert not missing


@pytest.mark.parametrize("code", sorted(all_error_classes()))
def test_kms_family_against_the_kms_model(code: str) -> None:
    cls = all_error_classes()[code]
    # The KMS model's shapes, then CloudTrail's (LookupEvents, on the same endpoint and protocol).
    # (KMS's answer of a common error stays KMS's, whatever CloudTrail's model declares for it).
    shapes = {
        wire_code(n, s): s for n, s in error_shapes("cloudtrail").items() if wire_code(n, s) not in KMS_COMMON
    }
    shapes.update({wire_code(n, s): s for n, s in error_shapes("kms").items()})
    if cls.code in shapes:
        assert cls.status == json_status(shapes[cls.code])
        assert cls.code not in KMS_COMMON
    else:
        assert cls.status == KMS_COMMON[cls.code]


@pytest.mark.parametrize("code", sorted(query_error_classes()))
def test_query_family_against_the_iam_and_sts_models(code: str) -> None:
    cls = query_error_classes()[code]
    shapes = [
        (service, name, shape)
        for service in ("iam", "sts")
        for name, shape in error_shapes(service).items()
        if wire_code(name, shape) == cls.code
    ]
    if shapes:
        assert cls.code not in QUERY_COMMON
        for service, name, shape in shapes:
            error = shape["error"]
            assert (cls.status, cls.sender) == (
                int(error.get("httpStatusCode", 400)),
                bool(error.get("senderFault", False)),
            ), (service, name)
    else:
        assert (cls.status, cls.sender) == QUERY_COMMON[cls.code]


def test_common_tables_name_only_classes() -> None:
    assert set(KMS_COMMON) <= set(all_error_classes())
    assert set(QUERY_COMMON) <= set(query_error_classes())


_TREE_LINE = re.compile(
    r"^(?P<indent> *)\+-- (?P<name>\w+)(?: +(?P<status>\d{3}))?(?: (?P<receiver>Receiver))?$"
)


def test_the_docstring_draws_the_hierarchy() -> None:
    """Every class appears once in the module docstring's tree, under its base class, with its status
    (400 unless drawn) and, in the Query family, ``Receiver`` for a receiver fault."""
    doc = errors.__doc__ or ""
    lines = doc[doc.index("    ServiceError\n") :].splitlines()
    parents: dict[int, str] = {4: "ServiceError"}  # column of a name -> the last name drawn there
    drawn: dict[str, str] = {}
    for line in lines[1:]:
        if not line.strip():
            break
        match = _TREE_LINE.match(line)
        if match is None:
            assert line.strip().startswith("|"), line
            continue
        column = len(match["indent"])
        name = match["name"]
        assert name not in drawn, name
        drawn[name] = parents[column]
        parents[column + 4] = name
        cls = getattr(errors, name)
        assert cls.status == int(match["status"] or 400), name
        assert getattr(cls, "sender", True) == (match["receiver"] is None), name
    expected = {name: cls.__bases__[0].__name__ for name, cls in module_classes().items()}
    expected["QueryError"] = "ServiceError"
    assert drawn == expected
