"""Native endpoints under /api, for what Graph has no resource for."""

from fastapi import APIRouter

router = APIRouter()
