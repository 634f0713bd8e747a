"""Market data: sources (sim, Binance) and the MarketDataEngine that caches and fans out."""
