"""Backtests: archive data, the bar-by-bar engine, metrics and the HTML report; `python -m rl.backtest`."""
