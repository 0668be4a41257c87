"""Benchmarks of playbook-sync: `make bench` (bench/run.py) writes BENCHMARKS.md."""
