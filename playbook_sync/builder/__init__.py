"""The Playbook Builder (issue 15): structured playbooks, AI generation grounded in our knowledge, export, publish.

models (pydantic: what the API and the providers speak), tables (SQLAlchemy rows), users
(per-user API tokens), service (CRUD with ownership and optimistic concurrency), grounding
(sources for prompts), generation (the jobs' bodies), render/pdf/publishing (Markdown, PDF,
an SOP committed to the playbook). No web or task framework is imported here.
"""
