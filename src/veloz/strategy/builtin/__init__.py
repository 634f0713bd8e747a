"""Built-in strategies: `ema_cross` and `grid`."""
