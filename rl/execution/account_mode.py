"""Verify the account is set up the way the agent's orders and risk maths assume, before entries.

The agent sends one-way orders (positionSide BOTH, reduce-only stops) and sizes every trade for
isolated margin at LEVERAGE. None of that is true on an account in hedge mode (positions are
LONG/SHORT legs: the agent would read them as flat and cancel their stops), in multi-assets
mode (cross margin only, margin shared with other assets), or on a symbol whose margin type or
leverage is not the configured one (a refused change used to be only logged, and the trade was
sized for a leverage the exchange did not have).

`check_account_mode` reads the exchange's truth (ExchangePort.account_mode: Binance's
positionSide/dual, multiAssetsMargin and symbolConfig), fixes what it safely can (a symbol's
margin type and leverage, only while no position is open on it: changing them under a position
changes its margin and liquidation price), reads again to confirm, and reports every mismatch
that remains. Account-wide modes are the trader's choice and affect positions the agent does not
own, so they are never switched here. The agent refuses entries while a mismatch stands
(rl/agent/agent.py) and shows it in /api/agent/status.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rl.errors import BinanceError
from rl.execution.port import AccountMode, ExchangePort

EXPECTED_MARGIN_TYPE = "ISOLATED"     # what the sizing and the liquidation maths assume
_MARGIN_ZH = {"ISOLATED": "逐仓", "CROSSED": "全仓"}


@dataclass(frozen=True)
class ModeProblem:
    """One mismatch. `symbol` "" = account-wide (it blocks every symbol)."""

    symbol: str
    kind: str            # hedge_mode | multi_assets | margin_type | leverage | unverified
    zh: str
    en: str

    def to_dict(self) -> dict[str, str]:
        return {"symbol": self.symbol, "kind": self.kind, "zh": self.zh, "en": self.en}


@dataclass(frozen=True)
class ModeCheck:
    """The outcome of one check: what still blocks entries, and what was fixed on the way."""

    time_ms: int
    problems: tuple[ModeProblem, ...] = ()
    fixed: tuple[tuple[str, str], ...] = ()      # (zh, en) notes of the changes made
    hedge_mode: bool = False
    multi_assets: bool = False
    symbols: dict[str, dict[str, Any]] = field(default_factory=dict)   # what was read

    @property
    def ok(self) -> bool:
        return not self.problems

    def blocking(self, symbol: str) -> tuple[ModeProblem, ...]:
        """The problems that refuse entries on `symbol` (its own and the account-wide ones)."""
        return tuple(p for p in self.problems if p.symbol in ("", symbol))

    @property
    def hands_off(self) -> bool:
        """Hedge mode: the positions and orders on the account are not one-way ones, so the
        agent must not reconcile (adopt, re-protect, cancel) anything."""
        return self.hedge_mode

    def key(self, symbol: str | None = None) -> str:
        """Identifies the set of problems (for logging a standing mismatch once)."""
        probs = self.problems if symbol is None else self.blocking(symbol)
        return ";".join(f"{p.symbol}:{p.kind}:{p.en}" for p in probs)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked_ms": self.time_ms, "hedge_mode": self.hedge_mode,
                "multi_assets": self.multi_assets, "symbols": {k: dict(v) for k, v in self.symbols.items()},
                "problems": [p.to_dict() for p in self.problems],
                "fixed": [{"zh": zh, "en": en} for zh, en in self.fixed]}


def _error_text(exc: BaseException) -> str:
    return getattr(exc, "msg", "") or str(exc)


def check_account_mode(exchange: ExchangePort, symbols: Sequence[str], leverage: int, now_ms: int,
                       margin_type: str = EXPECTED_MARGIN_TYPE) -> ModeCheck:
    """Read the account's modes, fix a flat symbol's margin type and leverage, report the rest.
    Never raises: an account that cannot be read (an exchange failure, an answer of an unknown
    shape) is itself a problem ("unverified"), so entries stay refused until a later check
    reads it."""
    try:
        mode = exchange.account_mode(symbols)
    except Exception as exc:  # noqa: BLE001 - unreadable = unverified: entries stay refused
        return ModeCheck(now_ms, (ModeProblem("", "unverified",
                                              f"无法读取账户模式（{_error_text(exc)}），暂不开仓",
                                              f"could not read the account's modes ({_error_text(exc)}): "
                                              f"no entries until they are verified"),))
    fixed: list[tuple[str, str]] = []
    why: dict[str, tuple[str, str]] = {}          # symbol -> why it was not fixed (zh, en)
    if not (mode.hedge_mode or mode.multi_assets):
        wrong = [m.symbol for m in mode.symbols if m.margin_type != margin_type or m.leverage != leverage]
        for sym in wrong:
            fixed += _fix_symbol(exchange, mode, sym, leverage, margin_type, why)
        if fixed:
            try:
                mode = exchange.account_mode(symbols)
            except Exception as exc:  # noqa: BLE001 - unreadable = unverified: entries stay refused
                return ModeCheck(now_ms, (ModeProblem("", "unverified",
                                                      f"修改后无法再次读取账户模式（{_error_text(exc)}），暂不开仓",
                                                      f"could not read the account's modes again after changing "
                                                      f"them ({_error_text(exc)}): no entries until verified"),),
                                 tuple(fixed))
    return ModeCheck(now_ms, tuple(_problems(mode, symbols, leverage, margin_type, why)), tuple(fixed),
                     mode.hedge_mode, mode.multi_assets,
                     {m.symbol: {"margin_type": m.margin_type, "leverage": m.leverage} for m in mode.symbols})


def _fix_symbol(exchange: ExchangePort, mode: AccountMode, sym: str, leverage: int,
                margin_type: str, why: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    """Set a flat symbol's margin type and leverage; returns the changes made. Why a symbol
    was left as it is goes into `why` (the re-read then still finds the mismatch)."""
    cur = mode.symbol(sym)
    if cur is None:
        return []
    try:
        flat = exchange.position(sym) is None
    except BinanceError as exc:
        why[sym] = (f"无法确认无持仓（{_error_text(exc)}），未修改", f"not known to be flat ({_error_text(exc)}): "
                    "left unchanged")
        return []
    if not flat:               # changing them would move the open position's margin
        why[sym] = ("有持仓，未修改", "a position is open: left unchanged")
        return []
    notes: list[tuple[str, str]] = []
    try:
        if cur.margin_type != margin_type:
            exchange.set_margin_type(sym, margin_type)
            notes.append((f"{sym}：保证金模式 {_MARGIN_ZH.get(cur.margin_type, cur.margin_type)} → "
                          f"{_MARGIN_ZH.get(margin_type, margin_type)}",
                          f"{sym}: margin type {cur.margin_type} -> {margin_type}"))
        if cur.leverage != leverage:
            exchange.set_leverage(sym, leverage)
            notes.append((f"{sym}：杠杆 {cur.leverage} 倍 → {leverage} 倍",
                          f"{sym}: leverage {cur.leverage}x -> {leverage}x"))
    except (BinanceError, ValueError) as exc:
        why[sym] = (f"币安拒绝修改（{_error_text(exc)}）", f"the exchange refused the change: {_error_text(exc)}")
    return notes


def _problems(mode: AccountMode, symbols: Sequence[str], leverage: int, margin_type: str,
              why: dict[str, tuple[str, str]]) -> list[ModeProblem]:
    out: list[ModeProblem] = []
    if mode.hedge_mode:
        out.append(ModeProblem("", "hedge_mode",
                               "账户为双向持仓模式（对冲模式）：代理只支持单向持仓，不开仓，也不处理账户上的持仓和止损单；"
                               "请在币安合约“偏好设置”中改为单向持仓",
                               "the account is in hedge mode (dual-side positions): the agent trades one-way "
                               "mode only, so it opens nothing and leaves the account's positions and stops "
                               "alone; switch to one-way mode in Binance's futures preferences"))
    if mode.multi_assets:
        out.append(ModeProblem("", "multi_assets",
                               "账户为联合保证金模式（多资产模式）：代理按单资产逐仓计算风险，不开仓；请改为单资产模式",
                               "the account is in multi-assets mode: the agent sizes risk for single-asset "
                               "isolated margin, so it opens nothing; switch to single-asset mode"))
    for sym in symbols:
        m = mode.symbol(sym)
        if m is None:
            out.append(ModeProblem(sym, "unverified", f"{sym}：交易所未返回该交易对的保证金模式和杠杆，暂不开仓",
                                   f"{sym}: the exchange reported no margin type and leverage for it: "
                                   f"no entries until verified"))
            continue
        zh, en = why.get(sym, ("", ""))
        zh_tail, en_tail = (f"（{zh}）", f" ({en})") if en else ("", "")
        if m.margin_type != margin_type:
            out.append(ModeProblem(sym, "margin_type",
                                   f"{sym}：保证金模式为{_MARGIN_ZH.get(m.margin_type, m.margin_type)}，"
                                   f"代理需要{_MARGIN_ZH.get(margin_type, margin_type)}{zh_tail}，不开仓",
                                   f"{sym}: margin type is {m.margin_type}, the agent needs {margin_type}"
                                   f"{en_tail}: no entries"))
        if m.leverage != leverage:
            out.append(ModeProblem(sym, "leverage",
                                   f"{sym}：交易所杠杆为 {m.leverage} 倍，设置中的杠杆为 {leverage} 倍"
                                   f"{zh_tail}，不开仓",
                                   f"{sym}: the exchange's leverage is {m.leverage}x, the setting is "
                                   f"LEVERAGE={leverage}{en_tail}: no entries"))
    return out
