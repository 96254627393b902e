"""The KMS service model: botocore's ``kms`` service description, loaded once and cached.

This module (and the rest of :mod:`openkms.wire`) is the only place in the package that imports
botocore. Everything else works from operation names and plain Python values.

Requests are decoded and answered from the model file read directly (:mod:`openkms.wire.shapes`, which
spares a start botocore's imports); :func:`kms_model` is botocore's own ``ServiceModel`` of the same
file, for what needs more of botocore's API than the shapes.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from openkms.errors import UnknownOperationException
from openkms.wire import shapes

if TYPE_CHECKING:
    import botocore.model

SERVICE_NAME = "kms"


@functools.cache  # pure memos (these three): the model shipped with botocore
def kms_model() -> botocore.model.ServiceModel:
    """botocore's KMS service model (``kms/2014-11-01/service-2.json``), loaded on first use."""
    # Late: botocore.model imports botocore.auth and urllib3 (~0.1 s); a server's start does not need it.
    import botocore.loaders
    import botocore.model

    loader = botocore.loaders.create_loader()
    data = loader.load_service_model(SERVICE_NAME, "service-2")
    return botocore.model.ServiceModel(data, service_name=SERVICE_NAME)


@functools.cache
def kms_shapes() -> shapes.ServiceShapes:
    """The shapes of the same model, read without botocore (see :mod:`openkms.wire.shapes`)."""
    return shapes.load(SERVICE_NAME)


@functools.cache
def operation_names() -> frozenset[str]:
    """The names of every operation in the model (54 for botocore 1.43.11)."""
    return frozenset(kms_shapes().operation_names)


def operation_model(operation: str) -> Any:
    """The shapes of ``operation`` (its ``input_shape`` and ``output_shape``); unknown names raise
    UnknownOperationException."""
    if operation not in operation_names():
        raise UnknownOperationException("")
    return kms_shapes().operation(operation)


def input_shape(operation: str) -> Any:
    """The ``StructureShape`` of the operation's request, or None if it takes no input."""
    return operation_model(operation).input_shape


def output_shape(operation: str) -> Any:
    """The ``StructureShape`` of the operation's response, or None if it answers an empty body."""
    return operation_model(operation).output_shape
