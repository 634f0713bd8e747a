"""VeloZ: a crypto trading engine."""

__version__ = "0.1.0"
