"""``POST /v1/traces``: OTLP/HTTP ingest, protobuf or JSON, optionally gzip-compressed."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from loopwise_collector.api.deps import CurrentProject, State
from loopwise_collector.errors import UnsupportedMediaTypeError
from loopwise_collector.ingest.service import JSON_TYPES, PROTOBUF_TYPES, decompress, media_type, read_body

router = APIRouter(tags=["ingest"])
_EMPTY_PROTO_RESPONSE = ExportTraceServiceResponse().SerializeToString()


@router.post(
    "/v1/traces",
    summary="Ingest spans (OTLP/HTTP)",
    responses={200: {"description": "All spans are durable (in ClickHouse or the fsynced spool)."}},
)
async def export_traces(request: Request, state: State, project: CurrentProject) -> Response:
    kind = media_type(request.headers.get("content-type"))
    if kind not in PROTOBUF_TYPES and kind not in JSON_TYPES:
        raise UnsupportedMediaTypeError(
            f"Content-Type {kind or '(none)'!r} is not supported: use application/x-protobuf or application/json"
        )
    limit = state.settings.max_body_bytes
    raw = await read_body(request.stream(), request.headers.get("content-length"), limit)
    body = decompress(raw, request.headers.get("content-encoding"), limit)
    await state.ingest.ingest_otlp(project, body, kind)
    if kind in PROTOBUF_TYPES:
        return Response(_EMPTY_PROTO_RESPONSE, media_type="application/x-protobuf")
    return Response(b"{}", media_type="application/json")
