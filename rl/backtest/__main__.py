"""`python -m rl.backtest`: run the agent over archive candles (see rl.backtest.engine)."""
import sys

from rl.backtest.engine import main

sys.exit(main())
