"""Talking to an exchange: the exchange port and its data types, the Binance adapter, the order
router, position state."""
