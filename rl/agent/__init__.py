"""The trading agent: its perceive-analyze-decide-execute-record-learn loop, restart
reconciliation, the runner thread."""
