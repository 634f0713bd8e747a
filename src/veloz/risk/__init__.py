"""Risk: limits and their file, pre-trade checks, the order-rate limiter. Pure decisions;
the engine gathers the facts they need and acts on the answer."""
