"""The backtester: the same kernel on a simulated clock."""
