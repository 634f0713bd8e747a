"""Runtimes: what wires the trading core to its adapters (live service, stdio, backtest)."""
