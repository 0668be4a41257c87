"""Celery consumers for playbook-sync."""
