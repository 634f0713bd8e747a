"""Research: parameter sweeps and optimisation over backtests, and the jobs that run
backtests and optimisations for the API in worker processes."""
