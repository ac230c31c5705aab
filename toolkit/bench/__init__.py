"""Benchmarks that produce the README's performance figures (scripts, not timed tests)."""
