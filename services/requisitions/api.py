"""HTTP routes of the requisitions service: parse, authorise, call a handler, shape the response."""

from fastapi import APIRouter

router = APIRouter()
