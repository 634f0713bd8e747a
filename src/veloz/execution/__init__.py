"""Execution: the venue interface, venues (sim, Binance) and sending orders to them."""
