"""Support/resistance levels: candidates, touch statistics, the six-feature finder and its ranked book."""
