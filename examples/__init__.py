"""Runnable examples for recyclecheck (run them from the repository root)."""
