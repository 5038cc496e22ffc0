"""Signing in and out (placeholder while the routes are written)."""

from fastapi import APIRouter

router = APIRouter()
