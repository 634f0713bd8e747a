"""Portfolio: balances with free/locked funds, positions and PnL, equity and its peak.
Pure book-keeping driven by events; no I/O."""
