"""Metrics, logging setup and the health model."""
