"""Runnable projects: one module per classic model, run by ``python -m projects``."""
