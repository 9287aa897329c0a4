"""The report's words in Chinese and English: every label is a span carrying both, the page's
button switches them (rl/ has no access to web/static/i18n.js, so the few words live here)."""
from __future__ import annotations

import html

# summary and figure keys -> (zh, en)
FIGURES: dict[str, tuple[str, str]] = {
    "trades": ("交易数", "Trades"), "wins": ("盈利笔数", "Winning trades"),
    "losses": ("亏损笔数", "Losing trades"), "win_rate": ("胜率", "Win rate"),
    "net_pnl": ("净盈亏", "Net PnL"), "return_pct": ("收益率", "Return"),
    "fees": ("手续费", "Fees"), "max_drawdown_pct": ("最大回撤", "Max drawdown"),
    "sharpe": ("夏普比率", "Sharpe ratio"), "sortino": ("索提诺比率", "Sortino ratio"),
    "profit_factor": ("利润因子", "Profit factor"), "expectancy": ("每笔期望", "Expectancy per trade"),
    "average_r": ("平均 R", "Average R"), "exposure_pct": ("持仓时间占比", "Exposure"),
    "buy_hold_return_pct": ("持有收益", "Buy & hold return"), "start_balance": ("初始资金", "Start balance"),
    "end_balance": ("期末资金", "End balance"), "bars": ("K线数 (1分钟)", "Bars (1m)"),
    "seconds": ("耗时 (秒)", "Run time (s)"),
    "cagr": ("年化复合收益 (CAGR)", "CAGR"), "calmar": ("卡玛比率", "Calmar ratio"),
    "sqn": ("系统质量数 (SQN)", "SQN"), "avg_duration": ("平均持仓时长", "Average trade duration"),
    "max_duration": ("最长持仓时长", "Longest trade"), "best_trade": ("最佳交易", "Best trade"),
    "worst_trade": ("最差交易", "Worst trade"), "losing_streak": ("最长连亏", "Longest losing streak"),
    "winning_streak": ("最长连胜", "Longest winning streak"),
    "dd_peak": ("最大回撤起点 (峰值)", "Max drawdown from (peak)"),
    "dd_trough": ("最大回撤谷底", "Max drawdown trough"),
    "dd_recovered": ("回撤修复于", "Recovered on"), "open_trades": ("期末未平仓", "Open at the end"),
}

SETTINGS: dict[str, tuple[str, str]] = {
    "leverage": ("杠杆", "Leverage"), "max_risk_percent": ("每笔最大风险 %", "Max risk per trade %"),
    "min_trades_for_adjust": ("调整权重所需交易数", "Trades before weights adjust"),
    "check_interval_flat": ("空仓检查间隔 (秒)", "Check interval, flat (s)"),
    "check_interval_position": ("持仓检查间隔 (秒)", "Check interval, in a position (s)"),
    "paper_balance": ("初始资金", "Start balance"), "maker_fee": ("挂单费率", "Maker fee"),
    "taker_fee": ("吃单费率", "Taker fee"), "ioc_offset_bps": ("IOC 偏移 (基点)", "IOC offset (bps)"),
    "entry_order": ("入场订单", "Entry order"), "take_profit_order": ("止盈订单", "Take-profit order"),
    "max_notional_percent": ("名义价值上限 % 权益", "Max notional % of equity"),
    "min_reward_r": ("最低回报 (R，扣费后)", "Least reward (R, after fees)"),
    "max_drawdown_percent": ("最大回撤保护 %", "Drawdown guard %"),
    "daily_loss_limit_percent": ("每日亏损上限 %", "Daily loss limit %"),
    "stoploss_guard_trades": ("止损保护次数", "Stop-loss guard stop-outs"),
    "max_open_positions": ("最多同时持仓", "Max open positions"),
    "max_total_risk_percent": ("总止损风险上限 %", "Max total risk at stops %"),
    "max_correlation": ("相关性上限", "Max correlation"), "trade_filter": ("交易过滤器", "Trade filter"),
    "strategy_profile": ("策略配置", "Strategy profile"),
}

# exit keys as rl/strategy/exits.py stores them (the same words as web/static/i18n.js)
EXITS: dict[str, tuple[str, str]] = {
    "stop": ("止损", "Stop loss"), "target": ("止盈", "Take profit"), "partial": ("分批止盈", "Partial take profit"),
    "trailing": ("移动止损", "Trailing stop"), "break_even": ("保本止损", "Break-even stop"),
    "signal": ("反向信号", "Opposite signal"), "opposite_signal": ("反向信号", "Opposite signal"),
    "manual": ("手动平仓", "Manual close"), "liquidation": ("强平", "Liquidation"),
    "target_loss": ("止盈价（扣费后亏损）", "Take-profit price, net loss after fees"),
    "reconcile": ("交易所已平仓", "Closed on the exchange"), "end": ("回测结束", "End of test"),
}

SIDES: dict[str, tuple[str, str]] = {"LONG": ("做多", "Long"), "SHORT": ("做空", "Short"),
                                     "BUY": ("做多", "Long"), "SELL": ("做空", "Short")}

WEIGHTS: dict[str, tuple[str, str]] = {
    "volume_density": ("成交量密度", "Volume density"), "touch_bounce_count": ("触及反弹次数", "Touch & bounce count"),
    "bounce_magnitude": ("反弹幅度", "Bounce size"), "failed_breakout_count": ("假突破次数", "Failed breakouts"),
    "duration_days": ("持续天数", "Age in days"), "multi_tf_confirm": ("多周期确认", "Multi-timeframe confirmation"),
}


def t(zh: str, en: str) -> str:
    """A label in both languages; the Chinese shows until the page switches."""
    return (f'<span data-zh="{html.escape(zh)}" data-en="{html.escape(en)}">'
            f"{html.escape(zh)}</span>")


def word(table: dict[str, tuple[str, str]], key: object) -> str:
    """The label for `key` in `table`, the key itself when the table does not know it."""
    zh, en = table.get(str(key), (str(key), str(key)))
    return t(zh, en)


def duration(ms: float | None) -> str:
    """'1天 3小时' / '1d 3h', '2小时 5分' / '2h 5m', '45分' / '45m'."""
    if ms is None:
        return "—"
    minutes = int(round(ms / 60_000))
    d, rest = divmod(minutes, 1440)
    h, m = divmod(rest, 60)
    if d:
        return t(f"{d}天 {h}小时", f"{d}d {h}h")
    if h:
        return t(f"{h}小时 {m}分", f"{h}h {m}m")
    return t(f"{m}分", f"{m}m")
