"""A person's own account (``/account``): placeholder, filled in by the self-service work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's
