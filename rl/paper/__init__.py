"""The simulated futures exchange: account, order matching, futures rules, records, its SQLite store."""
