"""Builders the tests share: generated candles and archive zips, fake Binance payloads, the
scripted agent world, level bars and the reference level implementation. Plain functions and
classes; pytest fixtures stay in tests/conftest.py."""
