"""The HTTP edge: the FastAPI app (`create_app`) and its routers, thin over the service functions."""

from playbook_sync.api.app import create_app

__all__ = ["create_app"]
