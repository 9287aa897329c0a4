"""Risk protections (pure): drawdown guard, daily loss limit, stop-loss guard.

`Protections` folds closed trades and equity observations into pauses on new entries;
`evaluate` rebuilds the same state from scratch. Design: rl/risk/protections.py.
"""
from rl.risk.config import ProtectionConfig
from rl.risk.protections import Protections, ProtectionState, evaluate
from rl.risk.records import ClosedTrade, EquityPoint, Pause, ProtectionEvent

__all__ = ["ClosedTrade", "EquityPoint", "Pause", "ProtectionConfig", "ProtectionEvent",
           "ProtectionState", "Protections", "evaluate"]
