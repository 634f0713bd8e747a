"""Binance Spot: what the market data sources and the venue share. Endpoints, request
signing, error classification, the rate limiter fed by Binance's own usage headers, the
REST client, and symbol filters from exchangeInfo. Written from Binance's public Spot API
documentation; no SDK, so timeouts, retries and limits are ours to decide."""
