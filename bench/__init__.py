"""Benchmark of nexor-mcp against a minimal SDK server (`python -m bench`)."""
