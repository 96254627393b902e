"""The KMS service model: botocore's ``kms`` service description, loaded once and cached.

This module (and the rest of :mod:`openkms.wire`) is the only place in the package that imports
botocore. Everything else works from operation names and plain Python values.
"""

from __future__ import annotations

import functools
from typing import Any

import botocore.loaders
import botocore.model

from openkms.errors import UnknownOperationException

SERVICE_NAME = "kms"


@functools.cache  # pure memos (this and operation_names): the model shipped with botocore
def kms_model() -> botocore.model.ServiceModel:
    """botocore's KMS service model (``kms/2014-11-01/service-2.json``), loaded on first use."""
    loader = botocore.loaders.create_loader()
    data = loader.load_service_model(SERVICE_NAME, "service-2")
    return botocore.model.ServiceModel(data, service_name=SERVICE_NAME)


@functools.cache
def operation_names() -> frozenset[str]:
    """The names of every operation in the model (54 for botocore 1.43.11)."""
    return frozenset(kms_model().operation_names)


def operation_model(operation: str) -> Any:
    """The botocore ``OperationModel`` of ``operation``; unknown names raise UnknownOperationException."""
    if operation not in operation_names():
        raise UnknownOperationException("")
    return kms_model().operation_model(operation)


def input_shape(operation: str) -> Any:
    """The ``StructureShape`` of the operation's request, or None if it takes no input."""
    return operation_model(operation).input_shape


def output_shape(operation: str) -> Any:
    """The ``StructureShape`` of the operation's response, or None if it answers an empty body."""
    return operation_model(operation).output_shape
