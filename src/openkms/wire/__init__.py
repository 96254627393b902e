"""The wire layer: the AWS JSON 1.1 protocol of KMS, driven by botocore's service model.

The only part of openkms that imports botocore. :mod:`openkms.wire.model` loads the model;
:mod:`openkms.wire.codec` decodes and validates requests, encodes responses and gives their CloudTrail
views (implemented in :mod:`~openkms.wire.validate`, :mod:`~openkms.wire.messages` and
:mod:`~openkms.wire.audit`).
"""

from openkms.wire.codec import (
    DecodedRequest,
    audit_request_parameters,
    audit_response_elements,
    decode_request,
    encode_response,
    to_snake,
)
from openkms.wire.model import kms_model, operation_names

__all__ = [
    "DecodedRequest",
    "audit_request_parameters",
    "audit_response_elements",
    "decode_request",
    "encode_response",
    "kms_model",
    "operation_names",
    "to_snake",
]
