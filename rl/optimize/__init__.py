"""Walk-forward Bayesian optimization of the strategy (docs/optimize.md)."""
