"""Providers: embeddings, LLM and playbook repository behind small protocols."""
