"""The policy routes of the HTTP API."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
