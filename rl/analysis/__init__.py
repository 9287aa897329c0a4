"""Market analysis: indicators, entry-score components, the (incremental) analyzer and its result."""
