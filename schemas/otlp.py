"""OTLP/HTTP trace bodies (protobuf or JSON, as the OTLP specification encodes them) to spans.

Only what the span joiner needs is kept: name, ids, times, status, attributes flattened to
Python values, and the resource's ``service.name``. Protobuf bodies are read with the
``opentelemetry-proto`` messages; JSON bodies follow the specification's JSON mapping (hex
trace and span ids, lowerCamelCase keys, 64-bit integers as strings), which is not protobuf's
default JSON mapping, so they are walked directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


class OtlpError(ValueError):
    """The body is not an OTLP trace export; the message says why."""


@dataclass(slots=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    start_ns: int
    end_ns: int
    status_code: int = 0
    status_message: str = ""
    service: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_us(self) -> int:
        return max(0, (self.end_ns - self.start_ns) // 1000)


def parse_protobuf(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError(f"not an OTLP ExportTraceServiceRequest protobuf: {exc}") from exc
    spans = []
    for rs in request.resource_spans:
        service = next((_any(a.value) for a in rs.resource.attributes if a.key == "service.name"),
                       "")
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(Span(s.name, s.trace_id.hex(), s.span_id.hex(),
                                  s.start_time_unix_nano, s.end_time_unix_nano, s.status.code,
                                  s.status.message, str(service),
                                  {a.key: _any(a.value) for a in s.attributes}))
    return spans


def _any(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


def parse_json(body: bytes) -> list[Span]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpError(f"invalid JSON: {exc}") from exc
    if type(doc) is not dict:
        raise OtlpError("expected an ExportTraceServiceRequest object with resourceSpans")
    spans = []
    try:
        for rs in _list(doc, "resourceSpans", "resource_spans"):
            resource = _attrs(_list(rs.get("resource") or {}, "attributes"))
            for ss in _list(rs, "scopeSpans", "scope_spans"):
                for s in _list(ss, "spans"):
                    status = s.get("status") or {}
                    spans.append(Span(
                        str(s.get("name", "")), str(s.get("traceId", "")).lower(),
                        str(s.get("spanId", "")).lower(),
                        int(s.get("startTimeUnixNano") or 0), int(s.get("endTimeUnixNano") or 0),
                        _status_code(status.get("code", 0)), str(status.get("message", "")),
                        str(resource.get("service.name", "")), _attrs(_list(s, "attributes"))))
    except (AttributeError, TypeError, ValueError) as exc:
        raise OtlpError(f"not an OTLP trace export: {exc}") from exc
    return spans


def _list(obj: dict, *keys: str) -> list:
    for key in keys:
        if key in obj:
            value = obj[key]
            if value is None:
                return []
            if type(value) is not list:
                raise TypeError(f"'{key}' should be an array")
            return value
    return []


def _attrs(items: list) -> dict[str, Any]:
    return {str(a["key"]): _json_any(a.get("value") or {}) for a in items}


def _json_any(value: dict) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_json_any(v) for v in (value["arrayValue"].get("values") or [])]
    if "kvlistValue" in value:
        return _attrs(value["kvlistValue"].get("values") or [])
    return None


def _status_code(code: Any) -> int:
    names = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
    return names.get(code, code) if isinstance(code, str) else int(code)
