"""``/api/v1/experiments``: offline evaluation runs pushed by ``loopwise eval --push``."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["experiments"])
