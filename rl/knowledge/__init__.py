"""The agent's memory: trades, thought chains, weights, orders and the decision log in SQLite."""
