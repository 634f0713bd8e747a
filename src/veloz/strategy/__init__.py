"""Strategies: the Strategy API, the host that runs them on the trading core, and the
built-in strategies."""
