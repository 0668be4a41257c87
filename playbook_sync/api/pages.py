"""The Playbook Builder pages (filled below)."""

from fastapi import APIRouter

router = APIRouter()
