"""`python -m rl.data`: download Binance archive files (see rl.market.download)."""
