"""A service model of botocore's data read without botocore: the model file botocore's loader would load,
and the part of ``botocore.model``'s shape API the wire layer reads (``name``, ``type_name``,
``metadata``, ``required_members``, ``members``, ``member``, ``key``, ``value``, ``enum``, an
operation's ``input_shape`` and ``output_shape``), with the same semantics: a member's traits are
merged over its shape, shapes are resolved on first use.

``import botocore.model`` costs a start about 0.1 s (it imports ``botocore.auth`` and with it botocore's
HTTP stack and urllib3), and botocore's loader lists every service's data directory first: the KMS
API's requests, the CloudTrail target and LookupEvents use this instead. botocore's own
``ServiceModel`` stays for what needs more of it (the IAM/STS Query API, the tests), and is loaded
only then. ``tests/unit/test_wire.py`` checks that both give the same shapes.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
from pathlib import Path
from typing import Any

import orjson

TYPE_NAME = "service-2"
#: botocore.model.Shape.METADATA_ATTRS: what a shape's ``metadata`` holds.
METADATA_ATTRS = (
    "required",
    "min",
    "max",
    "pattern",
    "sensitive",
    "enum",
    "idempotencyToken",
    "error",
    "exception",
    "endpointdiscoveryid",
    "retryable",
    "document",
    "union",
    "contextParam",
    "clientContextParams",
    "requiresLength",
)


class Shape:
    """A shape of the model (botocore.model.Shape's attributes the wire layer reads)."""

    def __init__(self, name: str, model: dict[str, Any], resolver: ServiceShapes) -> None:
        self.name = name
        self.type_name: str = model["type"]
        self.documentation: str = model.get("documentation", "")
        self._model = model
        self._resolver = resolver

    @functools.cached_property
    def metadata(self) -> dict[str, Any]:
        model = self._model
        return {attr: model[attr] for attr in METADATA_ATTRS if attr in model}

    @functools.cached_property
    def required_members(self) -> list[str]:
        required: list[str] = self.metadata.get("required", [])
        return required

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}({self.name})>"


class StructureShape(Shape):
    @functools.cached_property
    def members(self) -> dict[str, Shape]:
        resolve = self._resolver.resolve
        return {name: resolve(ref) for name, ref in self._model.get("members", {}).items()}


class ListShape(Shape):
    @functools.cached_property
    def member(self) -> Shape:
        return self._resolver.resolve(self._model["member"])


class MapShape(Shape):
    @functools.cached_property
    def key(self) -> Shape:
        return self._resolver.resolve(self._model["key"])

    @functools.cached_property
    def value(self) -> Shape:
        return self._resolver.resolve(self._model["value"])


class StringShape(Shape):
    @functools.cached_property
    def enum(self) -> list[str]:
        values: list[str] = self.metadata.get("enum", [])
        return values


_SHAPE_CLASSES: dict[str, type[Shape]] = {
    "structure": StructureShape,
    "list": ListShape,
    "map": MapShape,
    "string": StringShape,
}


class OperationShapes:
    """An operation's request and response shapes (None when it has none)."""

    def __init__(self, name: str, model: dict[str, Any], resolver: ServiceShapes) -> None:
        self.name = name
        self._model = model
        self._resolver = resolver

    @functools.cached_property
    def input_shape(self) -> Any:  # a StructureShape or None, read by the wire layer as botocore's
        ref = self._model.get("input")
        return None if ref is None else self._resolver.resolve(ref)

    @functools.cached_property
    def output_shape(self) -> Any:
        ref = self._model.get("output")
        return None if ref is None else self._resolver.resolve(ref)


class ServiceShapes:
    """A service description (the parsed ``service-2`` file) and its shapes, resolved on first use."""

    def __init__(self, description: dict[str, Any]) -> None:
        self.metadata: dict[str, Any] = description.get("metadata", {})
        self.operation_names: list[str] = list(description.get("operations", {}))
        self._operations: dict[str, Any] = description.get("operations", {})
        self._shapes: dict[str, Any] = description.get("shapes", {})
        self._operation_cache: dict[str, OperationShapes] = {}

    def operation(self, name: str) -> OperationShapes:
        """The operation's shapes (KeyError for a name the model does not have)."""
        found = self._operation_cache.get(name)
        if found is None:
            found = self._operation_cache.setdefault(
                name, OperationShapes(name, self._operations[name], self)
            )
        return found

    def resolve(self, ref: dict[str, Any]) -> Shape:
        """The shape a member refers to, its traits merged over the shape's own (as botocore does)."""
        name = ref["shape"]
        model = self._shapes[name]
        if len(ref) > 1:
            model = {**model, **{k: v for k, v in ref.items() if k != "shape"}}
        return _SHAPE_CLASSES.get(model["type"], Shape)(name, model, self)


def load(service: str) -> ServiceShapes:
    """The latest ``service-2`` model of ``service`` that botocore's loader finds."""
    return ServiceShapes(_builtin_description(service) or _botocore_description(service))


def _builtin_description(service: str) -> dict[str, Any] | None:
    """The model file in botocore's own data directory, read directly, when botocore's loader (with its
    default search paths) would read that same file: there is no ``~/.aws/models`` directory (searched
    first) and no extras file beside it; else None."""
    if os.path.isdir(os.path.join(os.path.expanduser("~"), ".aws", "models")):
        return None
    spec = importlib.util.find_spec("botocore")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)), "data", service)
    try:
        versions = sorted(
            version
            for version in os.listdir(root)
            if (root / version / f"{TYPE_NAME}.json").is_file()
            or (root / version / f"{TYPE_NAME}.json.gz").is_file()
        )
    except OSError:
        return None
    if not versions:
        return None
    directory = root / versions[-1]
    if any(name.startswith(f"{TYPE_NAME}.") and "-extras." in name for name in os.listdir(directory)):
        return None
    plain = directory / f"{TYPE_NAME}.json"  # botocore's loader tries .json before .json.gz
    payload = (
        plain.read_bytes()
        if plain.is_file()
        else gzip.decompress((directory / f"{plain.name}.gz").read_bytes())
    )
    description: dict[str, Any] = orjson.loads(payload)
    return description


def _botocore_description(service: str) -> dict[str, Any]:
    # Late: botocore's loader (and urllib3, which it imports) only when the model is not botocore's own
    # file alone (a ~/.aws/models directory, an extras file).
    import botocore.loaders

    description: dict[str, Any] = botocore.loaders.create_loader().load_service_model(service, TYPE_NAME)
    return description
