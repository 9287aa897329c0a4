"""BinanceExchange: the exchange port over client.BinanceClient (testnet or live), and the
mapping of Binance's JSON onto the port's data types."""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from client import (
    FILTER_CODES,
    BinanceClient,
    BinanceError,
    NetworkError,
    SymbolFilters,
    UnknownOrderStatus,
    never_sent,
)
from rl.execution.port import (
    ALGO_NOT_FOUND_CODES,
    NOT_FOUND,
    AccountMode,
    AccountSnapshot,
    Fill,
    FundingPayment,
    OrderResult,
    PositionSnapshot,
    StopOrderInfo,
    SymbolMode,
    check_order_args,
    check_stop_args,
)

# a stop in one of these no longer protects (nor threatens) anything: FINISHED and TRIGGERED
# went to the matching engine; TRIGGERING is on its way there and may still fail: not gone
ALGO_GONE_STATUSES = frozenset({"CANCELED", "EXPIRED", "REJECTED", "FINISHED", "TRIGGERED"})


def _f(d: dict, key: str, default: float = 0.0) -> float:
    v = d.get(key)
    if v in (None, ""):
        return default
    return float(v)


def order_from_binance(d: dict) -> OrderResult:
    """/fapi/v1/order JSON → OrderResult. avgPrice may be missing: fall back to cumQuote/qty."""
    executed = _f(d, "executedQty")
    avg = _f(d, "avgPrice")
    if avg == 0.0 and executed > 0 and _f(d, "cumQuote") > 0:
        avg = _f(d, "cumQuote") / executed
    return OrderResult(
        symbol=d["symbol"], order_id=str(d.get("orderId", "")),
        client_order_id=str(d.get("clientOrderId", "")), side=d["side"],
        type=d.get("origType") or d["type"], status=d["status"], price=_f(d, "price"),
        orig_qty=_f(d, "origQty"), executed_qty=executed, avg_price=avg,
        reduce_only=bool(d.get("reduceOnly", False)), time_in_force=d.get("timeInForce"),
        update_time_ms=int(d.get("updateTime") or d.get("time") or 0))


def stop_from_binance(d: dict) -> StopOrderInfo:
    """/fapi/v1/algoOrder JSON → StopOrderInfo."""
    return StopOrderInfo(
        symbol=d["symbol"], algo_id=str(d.get("algoId", "")),
        client_algo_id=str(d.get("clientAlgoId", "")), side=d["side"],
        type=d.get("orderType") or d.get("type", ""), trigger_price=_f(d, "triggerPrice"),
        quantity=_f(d, "quantity"), close_position=bool(d.get("closePosition", False)),
        status=d.get("algoStatus", "NEW"),
        update_time_ms=int(d.get("updateTime") or d.get("createTime") or 0))


DAY_MS = 86_400_000
TRADES_WINDOW_MS = 7 * DAY_MS - 1      # userTrades: endTime - startTime at most 7 days
TRADES_HISTORY_MS = 180 * DAY_MS       # userTrades: only the last 6 months are kept
PAGE = 1000                            # the most rows userTrades and income answer at once

# (asset, time_ms) -> the asset's price in the quote asset at that time (BNB fees)
AssetPrice = Callable[[str, int], float]


def fill_from_binance(d: dict, asset_price: AssetPrice | None = None) -> Fill:
    """/fapi/v1/userTrades row → Fill (Binance shows commission signed; we store it paid > 0).

    A commission paid in another asset than the symbol's quote (commissionAsset BNB, with the
    BNB fee discount) is counted in the quote at that asset's price at the fill's time
    (`asset_price`; BinanceExchange uses the open of the asset's USDT 1m candle holding the
    fill); the raw amount and asset stay on the fill (asset_commission, commission_asset)."""
    raw = abs(_f(d, "commission"))
    asset = str(d.get("commissionAsset") or "USDT")
    commission, in_asset = raw, None
    if not str(d["symbol"]).endswith(asset):
        if asset_price is None:
            raise ValueError(f"commissionAsset={asset!r}: a price to convert it is needed")
        commission, in_asset = raw * asset_price(asset, int(d["time"])), raw
    return Fill(symbol=d["symbol"], trade_id=str(d["id"]), order_id=str(d["orderId"]),
                side=d["side"], price=_f(d, "price"), qty=_f(d, "qty"),
                realized_pnl=_f(d, "realizedPnl"), commission=commission,
                maker=bool(d.get("maker", False)), time_ms=int(d["time"]),
                commission_asset=asset, asset_commission=in_asset)


F = TypeVar("F", bound=Callable[..., Any])


def _filters_checked(method: F) -> F:
    """An order refused for its precision, tick or step (-1111/-4014/-4023) says the cached
    exchangeInfo filters may be out of date: the next `filters` reads them again."""
    @functools.wraps(method)
    def wrapper(self: BinanceExchange, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except BinanceError as exc:
            if exc.code in FILTER_CODES:
                self.client.invalidate_filters()
            raise
    return wrapper  # type: ignore[return-value]


class BinanceExchange:
    """ExchangePort over client.BinanceClient (testnet or live). Isolated margin, one-way mode."""

    def __init__(self, client: BinanceClient, name: str = "testnet",
                 margin_type: str = "ISOLATED") -> None:
        if name not in ("testnet", "live"):
            raise ValueError(f"name: must be 'testnet' or 'live', got {name!r}")
        self.client = client
        self.name = name
        self.margin_type = margin_type
        self._leverage: dict[str, int] = {}
        self._margin_set: set[str] = set()

    def filters(self, symbol: str) -> SymbolFilters:
        """The symbol's exchangeInfo filters (client.symbol_filters: re-read hourly and after a
        -1111/-4014/-4023 reject)."""
        return self.client.symbol_filters(symbol)

    def account(self) -> AccountSnapshot:
        a = self.client.account()
        return AccountSnapshot(
            wallet_balance=_f(a, "totalWalletBalance"), unrealized_pnl=_f(a, "totalUnrealizedProfit"),
            margin_balance=_f(a, "totalMarginBalance"), initial_margin=_f(a, "totalInitialMargin"),
            available_balance=_f(a, "availableBalance"))

    def position(self, symbol: str) -> PositionSnapshot | None:
        """The one-way (positionSide BOTH) position, None when flat. A hedge-mode leg (LONG or
        SHORT) is not flat and not ours: reading it raises, so nothing downstream takes the
        account for flat and cancels the stops that protect the user's legs."""
        rows = [p for p in self.client.position_risk(symbol) if p.get("symbol") == symbol]
        legs = sorted(str(p.get("positionSide")) for p in rows
                      if p.get("positionSide", "BOTH") != "BOTH" and _f(p, "positionAmt") != 0)
        if legs:
            raise BinanceError(f"{symbol}: the account holds hedge-mode positions "
                               f"({', '.join(legs)}); the agent trades one-way mode only and "
                               f"leaves them and their orders alone")
        for p in rows:
            if p.get("positionSide", "BOTH") != "BOTH":
                continue
            amt = _f(p, "positionAmt")
            if amt == 0:
                return None
            notional = abs(_f(p, "notional"))
            pim = _f(p, "positionInitialMargin") or _f(p, "initialMargin")
            # v3 positionRisk has no leverage field: use what we set, else notional / margin.
            lev = self._leverage.get(symbol) or (max(1, round(notional / pim)) if pim else 1)
            margin = _f(p, "isolatedMargin") or _f(p, "initialMargin")
            return PositionSnapshot(symbol=symbol, amount=amt, entry_price=_f(p, "entryPrice"),
                                    mark_price=_f(p, "markPrice"),
                                    unrealized_pnl=_f(p, "unRealizedProfit"),
                                    liquidation_price=_f(p, "liquidationPrice"), leverage=int(lev),
                                    margin=margin)
        return None

    def position_amount(self, symbol: str) -> float | None:
        pos = self.position(symbol)
        return None if pos is None else pos.amount

    def set_leverage(self, symbol: str, leverage: int) -> None:
        if symbol not in self._margin_set:
            self.client.set_margin_type(symbol, self.margin_type)
            self._margin_set.add(symbol)
        self.client.set_leverage(symbol, leverage)
        self._leverage[symbol] = int(leverage)

    def account_mode(self, symbols: Sequence[str]) -> AccountMode:
        """positionSide/dual and multiAssetsMargin (account-wide), symbolConfig per symbol."""
        hedge = self.client.position_mode()
        multi = self.client.multi_assets_mode()
        modes = []
        for sym in symbols:
            for row in self.client.symbol_config(sym):
                if row.get("symbol") == sym:
                    mode = SymbolMode(sym, str(row.get("marginType", "")).upper(),
                                      int(row.get("leverage") or 0))
                    modes.append(mode)
                    if mode.leverage > 0:      # positionRisk v3 has no leverage: keep the truth
                        self._leverage[sym] = mode.leverage
                    break
        return AccountMode(hedge_mode=hedge, multi_assets=multi, symbols=tuple(modes))

    def set_margin_type(self, symbol: str, margin_type: str) -> None:
        self.client.set_margin_type(symbol, margin_type)
        if margin_type == self.margin_type:
            self._margin_set.add(symbol)

    @_filters_checked
    def place_order(self, symbol: str, side: str, type: str, quantity: float,
                    price: float | None = None, time_in_force: str | None = None,
                    reduce_only: bool = False, client_order_id: str | None = None) -> OrderResult:
        """The order as Binance answered it (priced from its fills when the answer has no
        average price). Raises UnknownOrderStatus whenever the order may have reached Binance,
        even if the client's one lookup found nothing: Binance may show a new order late."""
        check_order_args(side, type, quantity, price, time_in_force)
        try:
            raw = self.client.new_order(symbol, side, type, quantity=quantity, price=price,
                                        time_in_force=time_in_force, reduce_only=reduce_only,
                                        new_client_order_id=client_order_id)
        except UnknownOrderStatus:
            raise
        except NetworkError as exc:
            if never_sent(exc.__cause__):
                raise                   # never connected: it cannot have reached Binance
            # any other transport failure once the request may have left: it proves nothing
            # yet (the router keeps looking, on a schedule)
            raise UnknownOrderStatus(f"order {client_order_id}: outcome unknown ({exc.msg})",
                                     exc.code, exc.status,
                                     client_order_id=client_order_id or "") from exc
        return self._priced(order_from_binance(raw))

    def _priced(self, o: OrderResult) -> OrderResult:
        """An order that filled but whose answer has neither avgPrice nor cumQuote: price it
        from GET /fapi/v1/order, else from its fills (userTrades of its orderId); left at 0
        when neither says (the router then prices it at its limit)."""
        if o.executed_qty <= 0 or o.avg_price > 0:
            return o
        try:
            ref = ({"order_id": int(o.order_id)} if o.order_id.isdigit()
                   else {"orig_client_order_id": o.client_order_id})
            q = order_from_binance(self.client.query_order(o.symbol, **ref))
            if q.avg_price > 0:
                return replace(o, avg_price=q.avg_price)
        except BinanceError:
            pass
        try:
            since = o.update_time_ms - 60_000 if o.update_time_ms else None
            mine = [fill_from_binance(r) for r in self.client.user_trades(o.symbol, start_time=since, limit=1000)
                    if str(r.get("orderId")) == o.order_id]
        except BinanceError:
            return o
        qty = sum(f.qty for f in mine)
        if qty <= 0:
            return o
        return replace(o, avg_price=sum(f.price * f.qty for f in mine) / qty,
                       commission=sum(f.commission for f in mine))

    def get_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        try:
            return self._priced(order_from_binance(self.client.query_order(
                symbol, orig_client_order_id=client_order_id)))
        except BinanceError as exc:
            if exc.code == NOT_FOUND:
                return None
            raise

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        try:
            return self._priced(order_from_binance(self.client.cancel_order(
                symbol, orig_client_order_id=client_order_id)))
        except BinanceError as exc:
            if exc.code in (NOT_FOUND, -2011):
                return self.get_order(symbol, client_order_id)
            raise

    def open_orders(self, symbol: str) -> list[OrderResult]:
        return [order_from_binance(o) for o in self.client.open_orders(symbol)]

    @_filters_checked
    def place_stop(self, symbol: str, side: str, type: str, trigger_price: float,
                   quantity: float | None, client_algo_id: str) -> StopOrderInfo:
        check_stop_args(side, type, trigger_price, quantity)
        if quantity is None:
            raw = self.client.new_algo_order(symbol, side, type, trigger_price,
                                             close_position=True, client_algo_id=client_algo_id)
        else:
            raw = self.client.new_algo_order(symbol, side, type, trigger_price, quantity=quantity,
                                             reduce_only=True, client_algo_id=client_algo_id)
        return stop_from_binance(raw)

    def cancel_stop(self, symbol: str, client_algo_id: str) -> None:
        """Idempotent: a stop that is already gone (triggered/cancelled) is not an error. But
        -2011/-2013 on the cancel is only taken as "gone" once GET algoOrder confirms it (a
        final status, or no such order at all); a stop still NEW (or TRIGGERING) raises, so
        the caller keeps retrying."""
        try:
            self.client.cancel_algo_order(client_algo_id=client_algo_id)
            return
        except BinanceError as exc:
            if exc.code not in ALGO_NOT_FOUND_CODES:
                raise
            refused = exc
        try:
            status = stop_from_binance(self.client.query_algo_order(client_algo_id=client_algo_id)).status
        except BinanceError as exc:
            if exc.code in ALGO_NOT_FOUND_CODES:
                return                  # no such stop at all: nothing to cancel
            raise BinanceError(f"cancel of stop {client_algo_id} answered {refused.code} and its "
                               f"status could not be read ({exc.msg})", exc.code, exc.status) from exc
        if status not in ALGO_GONE_STATUSES:
            raise BinanceError(f"cancel of stop {client_algo_id} answered {refused.code} "
                               f"({refused.msg}) but the stop is {status}", refused.code, refused.status)

    def open_stops(self, symbol: str) -> list[StopOrderInfo]:
        return [stop_from_binance(o) for o in self.client.open_algo_orders(symbol)
                if o.get("symbol") == symbol]

    def _now_ms(self) -> int:
        return int(self.client.now() * 1000) + self.client.time_offset_ms

    def fills_since(self, symbol: str, since_ms: int) -> list[Fill]:
        """Every fill from since_ms to now, oldest first: userTrades asked in windows of at most
        7 days (Binance refuses longer ones and answers only 7 days without an end), each
        paged on by time while a page comes back full; no further back than Binance keeps."""
        now = self._now_ms()
        start = max(int(since_ms), now - TRADES_HISTORY_MS)
        rows: dict[str, dict] = {}
        while start <= now:
            end = min(start + TRADES_WINDOW_MS, now)
            page_start = start
            while True:
                page = self.client.user_trades(symbol, start_time=page_start, end_time=end, limit=PAGE)
                fresh = [r for r in page if str(r["id"]) not in rows]
                rows.update((str(r["id"]), r) for r in page)
                if len(page) < PAGE or not fresh:
                    break
                page_start = max(int(r["time"]) for r in page)   # same-ms rows: deduped by id
            start = end + 1
        return self._fills(rows.values())

    def order_fills(self, symbol: str, order_id: str) -> list[Fill]:
        """The fills of one order (userTrades by orderId: no time window to get wrong)."""
        rows: dict[str, dict] = {}
        from_id: int | None = None
        while True:
            page = (self.client.user_trades(symbol, order_id=int(order_id), limit=PAGE) if from_id is None
                    else self.client.user_trades(symbol, from_id=from_id, limit=PAGE))
            mine = [r for r in page if str(r["orderId"]) == str(order_id)]
            fresh = [r for r in mine if str(r["id"]) not in rows]
            rows.update((str(r["id"]), r) for r in mine)
            if len(page) < PAGE or not fresh:
                break
            from_id = max(int(r["id"]) for r in page) + 1
        return self._fills(rows.values())

    def stop_fills(self, symbol: str, client_algo_id: str) -> list[Fill]:
        """The fills of a stop (Algo API order): once triggered its algoOrder answer names the
        order it sent (actualOrderId), whose fills these are; none before it triggered."""
        algo = self.client.query_algo_order(client_algo_id=client_algo_id)
        actual = algo.get("actualOrderId")
        if actual in (None, "", 0, "0"):
            return []
        return self.order_fills(symbol, str(actual))

    def _fills(self, rows: Any) -> list[Fill]:
        prices: dict[tuple[str, int], float] = {}

        def asset_price(asset: str, time_ms: int) -> float:
            minute = time_ms // 60_000 * 60_000
            key = (asset, minute)
            if key not in prices:
                k = self.client.klines(f"{asset}USDT", "1m", limit=1, start_time=minute)
                if not k:
                    raise BinanceError(f"no {asset}USDT price at {minute} to convert a fee paid in {asset}")
                prices[key] = float(k[0][1])          # the open of the fill's minute
            return prices[key]

        return sorted((fill_from_binance(r, asset_price) for r in rows), key=lambda f: (f.time_ms, f.trade_id))

    def funding_since(self, symbol: str, since_ms: int) -> list[FundingPayment]:
        """The funding fees of `symbol` from since_ms to now (/fapi/v1/income, incomeType
        FUNDING_FEE; > 0 received, < 0 paid), oldest first, paged on by time while a page
        comes back full. Binance keeps three months of them."""
        now = self._now_ms()
        start = int(since_ms)
        rows: dict[tuple[str, int], dict] = {}
        while True:
            page = self.client.income(symbol, "FUNDING_FEE", start_time=start, end_time=now, limit=PAGE)
            fresh = 0
            for r in page:
                key = (str(r.get("tranId", "")), int(r["time"]))
                funding = r.get("incomeType", "FUNDING_FEE") == "FUNDING_FEE"
                if key not in rows and r.get("symbol") == symbol and funding:
                    rows[key] = r
                    fresh += 1
            if len(page) < PAGE or not fresh:
                break
            start = max(int(r["time"]) for r in page)
        return sorted((FundingPayment(symbol, int(r["time"]), _f(r, "income"), str(r.get("asset") or "USDT"))
                       for r in rows.values()), key=lambda f: f.time_ms)
