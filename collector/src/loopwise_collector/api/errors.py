"""Every error leaves as ``{"error": {"code", "message"}}`` with a meaningful status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from loopwise_collector.errors import LoopwiseError

log = logging.getLogger("loopwise.api")


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """The JSON error envelope."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "5"}
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":  # loc is ("body", <character offset>)
            reason = (err.get("ctx") or {}).get("error") or err.get("msg", "invalid JSON")
            parts.append(f"at character {err.get('loc', ('', '?'))[-1]}: {reason}")
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map the exception tree, validation errors and unknown routes onto the envelope."""

    @app.exception_handler(LoopwiseError)
    async def _loopwise(_: Request, exc: LoopwiseError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return error_response(exc.status_code, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # A body that is not JSON at all is malformed (400); a well-formed but invalid one is 422.
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            return error_response(400, "invalid_payload", f"malformed JSON body: {_describe(exc)}")
        return error_response(422, "invalid_query", _describe(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":  # Starlette's own: no route matched
            message = f"no route {request.method} {request.url.path}; the API is listed at /openapi.json"
        elif exc.status_code == 405 and message == "Method Not Allowed":
            message = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; see the collector log")
