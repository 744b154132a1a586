"""OTLP trace export requests, protobuf or JSON, to ``SpanRecord`` rows.

Both encodings are walked directly: the protobuf one through the generated message classes, the
JSON one as plain dicts (no ``json_format``, which costs more per span than the whole protobuf
path). Each turns a span's attributes into plain Python values and hands them to
:func:`~loopwise_collector.ingest._attributes.map_span_attributes`, so the column mapping is
shared. A request with one invalid span is rejected whole, with the span's position in the
message, because OTLP exporters retry whole requests and a partial write would then duplicate.

Example:
    >>> from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    >>> req = ExportTraceServiceRequest()
    >>> span = req.resource_spans.add().scope_spans.add().spans.add(
    ...     trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="chat", kind=3,
    ...     start_time_unix_nano=1_700_000_000_000_000_000)
    >>> [r] = decode_protobuf(req.SerializeToString(), project_id="demo", retention_days=30, version=1)
    >>> r.trace_id, r.kind, r.parent_span_id
    ('0102030405060708090a0b0c0d0e0f10', 'client', '')
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from loopwise import semconv as sc
from loopwise_collector.errors import InvalidPayloadError
from loopwise_collector.ingest._attributes import SpanColumns, map_span_attributes
from loopwise_collector.ingest._values import (
    Value,
    attributes_to_str,
    dumps,
    json_attributes,
    pb_attributes,
    value_to_str,
)
from loopwise_collector.pricing import PriceTable
from loopwise_collector.store.records import SpanRecord

__all__ = ["decode_json", "decode_protobuf"]

# Indexed by the protobuf enum numbers; SPAN_KIND_UNSPECIFIED (0) reads as internal, the default.
_KINDS = ("internal", "internal", "server", "client", "producer", "consumer")
_STATUS_CODES = ("unset", "ok", "error")
# OTLP/JSON sends enums as numbers, but protobuf's JSON mapping also allows the names.
_KIND_NAMES = {name: _KINDS[number] for name, number in Span.SpanKind.items()}
_STATUS_NAMES = {name: _STATUS_CODES[number] for name, number in Status.StatusCode.items()}
_ERROR = "error"
# The store's DateTime64(9) is an int64 of nanoseconds; past that a timestamp is garbage (year 2262+).
_TIME_RANGE = "start/end time must be non-negative nanoseconds below 2**63"
# A span without a start would land in 1970, already past every retention, and vanish at the next merge.
_NO_START = "start_time_unix_nano is required"
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


# --- ids ------------------------------------------------------------------------------------------


def _checked_id(b: bytes, name: str, zero: bytes) -> str:
    if len(b) != len(zero):
        raise ValueError(f"{name} must be {len(zero)} bytes, got {len(b)}")
    if b == zero:
        raise ValueError(f"{name} is all zeros")
    return b.hex()


def _trace_id(b: bytes) -> str:
    return _checked_id(b, "trace_id", _ZERO_TRACE_ID)


def _span_id(b: bytes) -> str:
    return _checked_id(b, "span_id", _ZERO_SPAN_ID)


def _parent_span_id(b: bytes) -> str:
    # Some exporters spell "no parent" as eight zero bytes rather than an empty field.
    if not b or b == _ZERO_SPAN_ID:
        return ""
    if len(b) != 8:
        raise ValueError(f"parent_span_id must be 8 bytes or empty, got {len(b)}")
    return b.hex()


def _exception_text(attrs: dict[str, Value]) -> str:
    m = attrs.get(sc.EXCEPTION_MESSAGE) or attrs.get(sc.EXCEPTION_TYPE)
    return value_to_str(m) if m else ""


# --- protobuf ---------------------------------------------------------------------------------------


def _pb_events(events: Iterable[Any]) -> tuple[str, str]:
    """Events as stored JSON, plus the first exception event's message (for the status).

    Event attribute values keep their JSON types here (numbers stay numbers), since the whole
    column is JSON anyway.
    """
    out = []
    exception = ""
    for e in events:
        attrs = pb_attributes(e.attributes)
        if not exception:
            exception = _exception_text(attrs)
        out.append({"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": attrs})
    return dumps(out), exception


def _pb_links(links: Iterable[Any]) -> str:
    return dumps(
        [
            {
                "trace_id": ln.trace_id.hex(),
                "span_id": ln.span_id.hex(),
                "attributes": pb_attributes(ln.attributes),
            }
            for ln in links
        ]
    )


def decode_protobuf(
    body: bytes, *, project_id: str, retention_days: int, version: int, prices: PriceTable | None = None
) -> list[SpanRecord]:
    """Decode an ``application/x-protobuf`` OTLP ``ExportTraceServiceRequest`` into span rows.

    Raises :class:`InvalidPayloadError` for bytes that do not parse and for a span with bad ids
    or timestamps; the message names the span's position in the request.

    Example:
        >>> decode_protobuf(b"", project_id="demo", retention_days=30, version=1)
        []
        >>> decode_protobuf(b"\\xff", project_id="demo", retention_days=30, version=1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        loopwise_collector.errors.InvalidPayloadError: malformed OTLP protobuf: Error parsing message...
    """
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeError) as exc:
        raise InvalidPayloadError(f"malformed OTLP protobuf: {exc}") from None

    records: list[SpanRecord] = []
    append = records.append
    kinds, codes = _KINDS, _STATUS_CODES
    for i, rs in enumerate(request.resource_spans):
        resource = attributes_to_str(pb_attributes(rs.resource.attributes))
        service_name = resource.get(sc.SERVICE_NAME, "")
        for j, ss in enumerate(rs.scope_spans):
            scope_name = ss.scope.name
            for k, span in enumerate(ss.spans):
                # A try block costs nothing until it raises (Python 3.11), so one per span is free.
                try:
                    status = span.status
                    code = status.code
                    status_code = codes[code] if 0 <= code < 3 else codes[0]
                    status_message = status.message
                    events = exception = ""
                    if span.events:
                        events, exception = _pb_events(span.events)
                    if exception and not status_message and status_code == _ERROR:
                        status_message = exception
                    kind = span.kind
                    start, end = span.start_time_unix_nano, span.end_time_unix_nano
                    if (start | end) >> 63:
                        raise ValueError(_TIME_RANGE)
                    if not start:
                        raise ValueError(_NO_START)
                    cols = map_span_attributes(pb_attributes(span.attributes))
                    if prices is not None:
                        _price(cols, start, prices)
                    append(
                        SpanRecord(
                            project_id=project_id,
                            trace_id=_trace_id(span.trace_id),
                            span_id=_span_id(span.span_id),
                            name=span.name,
                            start_time_ns=start,
                            end_time_ns=end,
                            parent_span_id=_parent_span_id(span.parent_span_id),
                            kind=kinds[kind] if 0 <= kind < 6 else kinds[0],
                            status_code=status_code,
                            status_message=status_message,
                            service_name=service_name,
                            scope_name=scope_name,
                            # A dict per row: the row is frozen but a dict is not, and a shared
                            # one would let an edit to one row show up in all its siblings.
                            resource_attributes=dict(resource),
                            events=events,
                            links=_pb_links(span.links) if span.links else "",
                            retention_days=retention_days,
                            version=version,
                            **cols,
                        )
                    )
                except ValueError as exc:
                    where = f"resource_spans[{i}].scope_spans[{j}].spans[{k}]"
                    raise InvalidPayloadError(f"invalid OTLP span at {where}: {exc}") from None
    return records


def _price(cols: SpanColumns, start_time_ns: int, prices: PriceTable) -> None:
    # Priced before the record is built: rebuilding a frozen 40-field record afterwards cost
    # about as much as decoding it. A client's own cost always wins.
    if cols.get("cost_source") or cols.get("cost_usd") is not None:
        return
    tokens_in, tokens_out = cols.get("input_tokens"), cols.get("output_tokens")
    cached = cols.get("cache_read_input_tokens")
    if tokens_in is None and tokens_out is None and cached is None:
        return
    model = cols.get("response_model") or cols.get("request_model") or ""
    cost, cols["cost_source"] = prices.price_span(
        model, cols.get("provider", ""), start_time_ns, tokens_in, tokens_out, cached
    )
    if cost is not None:
        cols["cost_usd"] = cost


# --- OTLP/JSON --------------------------------------------------------------------------------------


def _field(d: dict[str, Any], camel: str, snake: str) -> Any:
    # OTLP/JSON is lowerCamelCase; protobuf's JSON mapping accepts the proto (snake_case) names too.
    v = d.get(camel)
    return d.get(snake) if v is None else v


def _list(d: dict[str, Any], camel: str, snake: str) -> list[Any]:
    v = _field(d, camel, snake)
    if v is None:
        return []
    if type(v) is not list:
        raise ValueError(f"{camel} must be a list")
    return v


def _hex(v: Any, name: str) -> bytes:
    # OTLP/JSON spells ids as hex, unlike protobuf's JSON mapping, which would use base64.
    if v is None or v == "":
        return b""
    if type(v) is not str:
        raise ValueError(f"{name} must be a hex string")
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise ValueError(f"{name} is not valid hex: {v[:40]!r}") from None


def _int(v: Any, name: str) -> int:
    # int64/uint64 fields come as decimal strings per the spec, or as plain numbers.
    if v is None:
        return 0
    if type(v) is int:
        return v
    if type(v) is str:
        return int(v)
    raise ValueError(f"{name} must be an integer or a decimal string")


def _time(v: Any, name: str) -> int:
    ns = _int(v, name)
    if ns < 0 or ns >> 63:
        raise ValueError(_TIME_RANGE)
    return ns


def _enum(v: Any, numbers: tuple[str, ...], names: dict[str, str], name: str) -> str:
    if v is None:
        return numbers[0]
    if type(v) is int:
        return numbers[v] if 0 <= v < len(numbers) else numbers[0]
    if type(v) is str:
        found = names.get(v)
        if found is not None:
            return found
        if v.isdecimal():
            return _enum(int(v), numbers, names, name)
    raise ValueError(f"{name} has an unknown value {v!r}")


# What a dict walk raises on a body of the wrong shape: a list where an object belongs
# (AttributeError), an object where a list belongs (TypeError), a missing key, a bad number or id.
_SHAPE_ERRORS = (ValueError, TypeError, AttributeError, KeyError, RecursionError)


def _malformed(exc: Exception, where: str) -> InvalidPayloadError:
    detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
    return InvalidPayloadError(f"malformed OTLP JSON at {where}: {detail}")


def _json_events(events: list[Any]) -> tuple[str, str]:
    out = []
    exception = ""
    for e in events:
        attrs = json_attributes(e.get("attributes"))
        if not exception:
            exception = _exception_text(attrs)
        out.append(
            {
                "name": e.get("name") or "",
                "time_unix_nano": _int(_field(e, "timeUnixNano", "time_unix_nano"), "timeUnixNano"),
                "attributes": attrs,
            }
        )
    return dumps(out), exception


def _json_links(links: list[Any]) -> str:
    return dumps(
        [
            {
                "trace_id": _hex(_field(ln, "traceId", "trace_id"), "link traceId").hex(),
                "span_id": _hex(_field(ln, "spanId", "span_id"), "link spanId").hex(),
                "attributes": json_attributes(ln.get("attributes")),
            }
            for ln in links
        ]
    )


def _json_span(
    span: dict[str, Any],
    *,
    service_name: str,
    scope_name: str,
    resource: dict[str, str],
    project_id: str,
    retention_days: int,
    version: int,
    prices: PriceTable | None,
) -> SpanRecord:
    status = span.get("status") or {}
    status_code = _enum(status.get("code"), _STATUS_CODES, _STATUS_NAMES, "status.code")
    status_message = status.get("message") or ""
    events = exception = ""
    raw_events = _list(span, "events", "events")
    if raw_events:
        events, exception = _json_events(raw_events)
    if exception and not status_message and status_code == _ERROR:
        status_message = exception
    raw_links = _list(span, "links", "links")
    name = span.get("name") or ""
    if type(name) is not str or type(status_message) is not str:
        raise ValueError("name and status.message must be strings")
    start = _time(_field(span, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano")
    if not start:
        raise ValueError(_NO_START)
    cols = map_span_attributes(json_attributes(span.get("attributes")))
    if prices is not None:
        _price(cols, start, prices)
    return SpanRecord(
        project_id=project_id,
        trace_id=_trace_id(_hex(_field(span, "traceId", "trace_id"), "traceId")),
        span_id=_span_id(_hex(_field(span, "spanId", "span_id"), "spanId")),
        name=name,
        start_time_ns=start,
        end_time_ns=_time(_field(span, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano"),
        parent_span_id=_parent_span_id(_hex(_field(span, "parentSpanId", "parent_span_id"), "parentSpanId")),
        kind=_enum(span.get("kind"), _KINDS, _KIND_NAMES, "kind"),
        status_code=status_code,
        status_message=status_message,
        service_name=service_name,
        scope_name=scope_name,
        resource_attributes=dict(resource),
        events=events,
        links=_json_links(raw_links) if raw_links else "",
        retention_days=retention_days,
        version=version,
        **cols,
    )


def decode_json(
    body: bytes, *, project_id: str, retention_days: int, version: int, prices: PriceTable | None = None
) -> list[SpanRecord]:
    """Decode an ``application/json`` OTLP ``ExportTraceServiceRequest`` into span rows.

    Follows the OTLP/JSON encoding: lowerCamelCase keys (snake_case accepted too), hex ids, int64
    as strings or numbers, enums as numbers (names accepted too). Raises
    :class:`InvalidPayloadError` for bodies that are not JSON, have the wrong shape or bad ids.

    Example:
        >>> body = (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' + b"ab" * 16
        ...         + b'", "spanId": "' + b"cd" * 8 + b'", "name": "chat", "kind": 3,'
        ...         + b' "startTimeUnixNano": "1700000000000000000"}]}]}]}')
        >>> [r] = decode_json(body, project_id="demo", retention_days=30, version=1)
        >>> r.span_id, r.kind
        ('cdcdcdcdcdcdcdcd', 'client')
    """
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidPayloadError(f"malformed OTLP JSON: {exc}") from None
    if type(doc) is not dict:
        raise InvalidPayloadError("malformed OTLP JSON: the body must be an object")

    records: list[SpanRecord] = []
    try:
        resource_spans = _list(doc, "resourceSpans", "resource_spans")
    except ValueError as exc:
        raise _malformed(exc, "top level") from None
    for i, rs in enumerate(resource_spans):
        try:
            res = rs.get("resource") or {}
            resource = attributes_to_str(json_attributes(res.get("attributes")))
            scope_spans = _list(rs, "scopeSpans", "scope_spans")
        except _SHAPE_ERRORS as exc:
            raise _malformed(exc, f"resourceSpans[{i}]") from None
        service_name = resource.get(sc.SERVICE_NAME, "")
        for j, ss in enumerate(scope_spans):
            try:
                scope_name = (ss.get("scope") or {}).get("name") or ""
                if type(scope_name) is not str:
                    raise ValueError("scope.name must be a string")
                spans = _list(ss, "spans", "spans")
            except _SHAPE_ERRORS as exc:
                raise _malformed(exc, f"resourceSpans[{i}].scopeSpans[{j}]") from None
            for k, span in enumerate(spans):
                try:
                    record = _json_span(
                        span,
                        service_name=service_name,
                        scope_name=scope_name,
                        resource=resource,
                        project_id=project_id,
                        retention_days=retention_days,
                        version=version,
                        prices=prices,
                    )
                except _SHAPE_ERRORS as exc:
                    raise _malformed(exc, f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]") from None
                records.append(record)
    return records
