"""HTTP routes of the matching service: parse, authorise, call a handler, shape the response."""

from fastapi import APIRouter

router = APIRouter()
