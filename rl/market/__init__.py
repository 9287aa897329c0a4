"""Market data: candles and their intervals, Binance archive files and downloads, the market-data ports."""
