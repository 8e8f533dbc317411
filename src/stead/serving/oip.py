"""The Open Inference Protocol (v2) REST surface, translated to and from stead's predict (layer: serving).

``{name}`` is a deployment. Model metadata lists each signature column as an input tensor of shape ``[-1]``
with its datatype (``INT64``, ``FP64``, ``BOOL``, ``BYTES``…) and one output tensor, ``predictions``. An
infer request carries one tensor per column (shape ``[n]`` or ``[n, 1]``), as JSON ``data`` or with the
binary tensor extension (the JSON header's length in ``Inference-Header-Content-Length``, then each tensor's
raw bytes, ``binary_data_size`` long: little-endian numbers, ``BOOL`` one byte each, ``BYTES`` a 4-byte
length before each element). A request with no Content-Type is read as JSON. The answer is JSON, which
``tritonclient`` and ``kserve`` read whether or not they asked for binary outputs. ``parameters.routing_key``
makes an A/B choice sticky; the answer's ``parameters`` carry ``request_id``, and its ``model_version`` is the
version that served it.

>>> header = {"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1.5, 2.0]},
...                      {"name": "b", "shape": [2, 1], "datatype": "BYTES", "data": [["x"], ["y"]]}]}
>>> import json
>>> parse_infer(json.dumps(header).encode(), None)[0]
{'a': [1.5, 2.0], 'b': ['x', 'y']}
>>> datatype_of({"dtype": "int64"}), datatype_of({"dtype": "object"})
('INT64', 'BYTES')
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

from stead.errors import ValidationError

__all__ = ["DATATYPES", "datatype_of", "infer_answer", "model_metadata", "parse_infer"]

DATATYPES = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}
_NUMPY = {v: k for k, v in DATATYPES.items()}


class OipError(ValidationError):
    """A request the protocol cannot read (400)."""

    status_code = 400


def datatype_of(column: Mapping[str, Any]) -> str:
    """The v2 datatype of a signature column (``BYTES`` for strings, categories and anything else)."""
    return DATATYPES.get(str(column.get("dtype", "")), "BYTES")


def model_metadata(name: str, versions: list[int], signature: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /v2/models/{name}``: every signature column as an input tensor of shape ``[-1]``."""
    outputs = [o for o in signature.get("outputs") or [] if o.get("name") == "predictions"]
    out_type = datatype_of(outputs[0]) if outputs else "BYTES"
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": "stead",
        "inputs": [
            {"name": str(c["name"]), "datatype": datatype_of(c), "shape": [-1]} for c in signature.get("inputs") or []
        ],
        "outputs": [{"name": "predictions", "datatype": out_type, "shape": [-1]}],
    }


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if any(isinstance(v, list) for v in data):
        return [x for v in data for x in _flatten(v)]
    return data


def _bytes_elements(raw: bytes, name: str) -> list[Any]:
    values: list[Any] = []
    at = 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise OipError(f"input {name}: a BYTES element's length is cut short")
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        chunk = raw[at : at + size]
        at += size
        try:
            values.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            raise OipError(f"input {name}: a BYTES element is not UTF-8 text") from None
    return values


def _binary(raw: bytes, datatype: str, name: str) -> list[Any]:
    import numpy as np

    if datatype == "BYTES":
        return _bytes_elements(raw, name)
    dtype = _NUMPY.get(datatype)
    if dtype is None:
        raise OipError(f"input {name}: datatype {datatype!r} is not one of BYTES, {', '.join(_NUMPY)}")
    try:
        array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    except ValueError as exc:
        raise OipError(f"input {name}: {len(raw)} bytes are not whole {datatype} values: {exc}") from None
    values: list[Any] = array.tolist()
    return values


def parse_infer(body: bytes, header_length: int | None) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """An infer request as ``({column: values}, request)``; ``header_length`` is the binary extension's JSON size."""
    if header_length is not None and not 0 < header_length <= len(body):
        raise OipError(f"Inference-Header-Content-Length {header_length} does not fit a body of {len(body)} bytes")
    head = body if header_length is None else body[:header_length]
    try:
        request = json.loads(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OipError(f"the infer request is not JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise OipError('an infer request needs "inputs": a list of tensors', details=["inputs"])
    offset = header_length or 0
    columns: dict[str, list[Any]] = {}
    for i, tensor in enumerate(request["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise OipError(f"input {i} needs a name", details=[f"inputs[{i}]"])
        name = tensor["name"]
        datatype = str(tensor.get("datatype", ""))
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if header_length is None or not isinstance(size, int) or offset + size > len(body):
                raise OipError(f"input {name}: binary_data_size {size!r} does not fit the body", details=[name])
            values = _binary(body[offset : offset + size], datatype, name)
            offset += size
        elif "data" in tensor:
            values = _flatten(tensor["data"])
        else:
            raise OipError(f"input {name} has neither data nor binary_data_size", details=[name])
        shape = tensor.get("shape")
        if isinstance(shape, list) and len(shape) == 2 and shape[1] != 1:
            raise OipError(f"input {name}: shape {shape} is not one value per row ([n] or [n, 1])", details=[name])
        if datatype == "BOOL":
            values = [bool(v) if v is not None else None for v in values]
        columns[name] = values
    return columns, request


def infer_answer(name: str, request: Mapping[str, Any], answer: Mapping[str, Any], datatype: str) -> dict[str, Any]:
    """The v2 answer to ``request`` from stead's ``answer`` (``predictions``, ``request_id``, ``version``)."""
    predictions = list(answer["predictions"])
    if datatype == "BYTES":
        predictions = [p if isinstance(p, str) else json.dumps(p) for p in predictions]
    result: dict[str, Any] = {
        "model_name": name,
        "model_version": str(answer["version"]),
        "parameters": {"request_id": answer["request_id"]},
        "outputs": [{"name": "predictions", "datatype": datatype, "shape": [len(predictions)], "data": predictions}],
    }
    if isinstance(request.get("id"), str):
        result["id"] = request["id"]
    return result
