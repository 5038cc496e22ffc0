"""Placeholder: filled in by the issue 16 work (the Trust portal)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's
