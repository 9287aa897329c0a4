// Chinese by default, English on request; the choice is remembered in localStorage.
// Static text carries data-i18n="key" (textContent) or data-i18n-ph="key" (placeholder);
// dynamic text calls t(key, vars).

const STORE_KEY = "dashboard.lang";

const DICT = {
  zh: {
    title: "自学习交易代理",
    symbol: "交易对",
    lang_switch: "English",
    logout: "退出登录",
    start: "启动Agent",
    stop: "停止Agent",
    running: "运行中",
    running_failing: "运行中·连续失败 {n} 次",
    stopped: "已停止",
    mode_paper: "模拟盘",
    mode_testnet: "测试网",
    mode_live: "实盘",
    mode_replay: "回放",
    conn_ok: "币安已连接",
    conn_unreachable: "离线·币安不可达",
    conn_unknown: "连接未知",
    world_time: "行情时间",
    // charts (issue 17 #9): time zone switch, OHLC readout, position lines
    tz_local: "本地 {zone}",
    tz_utc: "UTC",
    tz_switch: "切换时区（本地/UTC）",
    ohlc_o: "开", ohlc_h: "高", ohlc_l: "低", ohlc_c: "收",
    trades_in_bar: "本K线 开仓{e} 平仓{x}",
    tip_exit: "平仓", tip_long: "做多", tip_short: "做空",
    line_entry: "开仓",
    line_stop: "止损",
    line_target: "止盈",
    unreachable_banner: "无法连接币安（{error}）。页面照常运行；离线时可回放归档数据：",
    agent_unavailable: "Agent不可用：{note}",
    charts: "K线图表",
    account: "账户信息",
    total: "总额",
    available: "可用",
    used: "占用保证金",
    upnl: "未实现盈亏",
    positions: "持仓",
    no_positions: "无持仓",
    entry: "开仓价",
    size: "数量",
    pnl: "盈亏",
    stop_loss: "止损",
    target: "止盈",
    close: "平仓",
    order: "手动下单",
    side: "方向",
    buy: "买入/做多",
    sell: "卖出/做空",
    type: "类型",
    market: "市价",
    limit: "限价",
    quantity: "数量",
    price: "价格",
    submit: "下单",
    order_ok: "订单已提交：{status}",
    // order form (issue 17 #10): units, live notional/margin, market-order confirmation, and
    // Binance's refusals explained (bnc_<code>; the raw text stays in the tooltip)
    quantity_coins: "数量（{asset}）",
    reduce_only: "只减仓",
    order_estimate: "名义价值 ≈ {notional} USDT · 需保证金 ≈ {margin} USDT（{lev}倍）",
    order_estimate_none: "输入数量后显示名义价值和所需保证金",
    confirm_market: "确认市价{side} {qty} {symbol}？名义价值约 {notional} USDT，按当前价立即成交。",
    order_refused: "币安拒绝了订单（{code}）：{reason}",
    "bnc_-1111": "价格或数量的小数位超过该交易对允许的精度",
    "bnc_-1013": "价格或数量不符合交易对的过滤规则",
    "bnc_-2010": "订单被拒绝（例如余额不足或会立即成交）",
    "bnc_-2019": "保证金不足：减少数量或降低仓位",
    "bnc_-2021": "触发价会立即触发：调整止损/止盈价",
    "bnc_-2022": "只减仓单被拒绝：没有可减少的持仓",
    "bnc_-4003": "数量必须大于0",
    "bnc_-4004": "数量低于该交易对的最小下单量",
    "bnc_-4005": "数量超过该交易对的最大下单量",
    "bnc_-4014": "价格不是最小变动价位的整数倍",
    "bnc_-4016": "限价高于交易所允许的价格上限",
    "bnc_-4023": "数量不是最小数量步长的整数倍",
    "bnc_-4024": "限价低于交易所允许的价格下限",
    "bnc_-4116": "重复的订单号：该订单已存在",
    "bnc_-4164": "订单名义价值太小：至少需要交易所规定的最小金额",
    err_quantity: "数量必须是大于0的数字",
    err_price: "限价单需要大于0的价格",
    err_price_market: "市价单不填价格",
    stop_loss_opt: "止损价（可选）",
    take_profit_opt: "止盈价（可选）",
    err_below_price: "须低于下单价格",
    err_above_price: "须高于下单价格",
    err_stops_reduce_only: "只减仓单不设止损/止盈",
    protections: "风控保护",
    prot_none: "无",
    mode_mismatch: "账户模式不符，暂停开仓",
    prot_until: "最早 {time} 解除",
    prot_paused: "暂停开仓",
    prot_rule_drawdown: "回撤保护",
    prot_rule_daily_loss: "日亏损保护",
    prot_rule_stoploss_guard: "止损保护",
    training: "特征训练进度",
    phase_next: "{count}/{next}笔",
    phase_final: "{count}笔（最终阶段）",
    min_score: "入场门槛 ≥{min}分，多空分差 ≥{gap}分",
    weights: "特征权重",
    weight_history: "权重历史",
    w_volume_density: "成交量密集",
    w_touch_bounce_count: "触及反弹",
    w_bounce_magnitude: "反弹幅度",
    w_failed_breakout_count: "假突破",
    w_duration_days: "持续天数",
    w_multi_tf_confirm: "多周期确认",
    filter_title: "学习过滤器（预测每笔净R）",
    filter_head: "已学 {learned} 笔（热身 {warmup} 笔）· 基准 {base}R · 评估 {seen} 次信号，拒绝 {skip}",
    filter_view: "各特征看法（每个标准差对应的R）",
    logs: "运行日志",
    no_logs: "暂无日志",
    trades: "交易记录",
    no_trades: "暂无交易",
    time: "时间",
    dir: "方向",
    exit: "平仓价",
    status: "状态",
    long: "做多",
    short: "做空",
    open: "持仓中",
    closed: "已平仓",
    unreconciled: "未对账",
    unreconciled_hint: "持仓已在交易所消失，但尚未找到平仓成交：盈亏未知，不计入学习；找到后自动结算",
    equity: "权益曲线",
    thought: "思维链",
    perception: "感知",
    action: "行动",
    reward: "奖励",
    summary: "总结",
    close_dialog: "关闭",
    last_error: "最近错误",
    last_scores: "最新评分",
    reason: "理由",
    level: "关键位",
    score: "评分",
    exit_reason: "离场原因",
    r_multiple: "R倍数",
    fees: "手续费",
    weight_change: "权重调整",
    raw_data: "全部数据",
    still_open: "持仓中，尚无奖励",
    levels_none: "暂无支撑阻力位",
    confirm_close: "确定平掉 {symbol} 的持仓？",
    reset_paper: "重置模拟账户",
    confirm_reset_paper: "确定重置模拟账户？所有模拟成交、交易记录和学习到的权重都将清空，余额恢复为 {balance} USDT（旧文件保留为 .bak）。",
    // exit keys the agent stores with trades and exits (rl/strategy/exits.py exit_kind)
    exit_stop: "止损",
    exit_target: "止盈",
    exit_partial: "分批止盈",
    exit_target_loss: "止盈价（扣费后亏损）",
    exit_trailing: "移动止损",
    exit_break_even: "保本止损",
    exit_signal: "反向信号",
    exit_opposite_signal: "反向信号",
    exit_manual: "手动平仓",
    source_manual: "手动交易",
    source_mixed: "含手动单",
    exit_liquidation: "强平",
    exit_reconcile: "交易所已平仓",
  },
  en: {
    title: "Self-learning trading agent",
    symbol: "Symbol",
    lang_switch: "中文",
    logout: "Log out",
    start: "Start agent",
    stop: "Stop agent",
    running: "running",
    running_failing: "running · {n} cycles failing",
    stopped: "stopped",
    mode_paper: "paper",
    mode_testnet: "testnet",
    mode_live: "LIVE",
    mode_replay: "replay",
    conn_ok: "Binance reachable",
    conn_unreachable: "Offline · Binance unreachable",
    conn_unknown: "connectivity unknown",
    world_time: "Market time",
    tz_local: "local {zone}",
    tz_utc: "UTC",
    tz_switch: "Switch time zone (local/UTC)",
    ohlc_o: "O", ohlc_h: "H", ohlc_l: "L", ohlc_c: "C",
    trades_in_bar: "this bar: {e} in, {x} out",
    tip_exit: "exit", tip_long: "long", tip_short: "short",
    line_entry: "entry",
    line_stop: "stop",
    line_target: "target",
    unreachable_banner: "Binance is unreachable ({error}). The page keeps working; to work offline, replay archive data:",
    agent_unavailable: "Agent unavailable: {note}",
    charts: "Charts",
    account: "Account",
    total: "Total",
    available: "Available",
    used: "Used margin",
    upnl: "Unrealized PnL",
    positions: "Positions",
    no_positions: "No open positions",
    entry: "Entry",
    size: "Size",
    pnl: "PnL",
    stop_loss: "Stop",
    target: "Target",
    close: "Close",
    order: "Manual order",
    side: "Side",
    buy: "Buy / long",
    sell: "Sell / short",
    type: "Type",
    market: "Market",
    limit: "Limit",
    quantity: "Quantity",
    price: "Price",
    submit: "Place order",
    order_ok: "Order sent: {status}",
    quantity_coins: "Quantity ({asset})",
    reduce_only: "Reduce only",
    order_estimate: "Notional ≈ {notional} USDT · margin needed ≈ {margin} USDT ({lev}x)",
    order_estimate_none: "Enter a quantity to see the notional and the margin it needs",
    confirm_market: "Send a market {side} of {qty} {symbol}? Notional about {notional} USDT, filled now at the market price.",
    order_refused: "Binance refused the order ({code}): {reason}",
    "bnc_-1111": "Price or quantity has more decimals than this symbol allows",
    "bnc_-1013": "Price or quantity breaks this symbol's filter rules",
    "bnc_-2010": "Order rejected (e.g. insufficient balance or it would fill immediately)",
    "bnc_-2019": "Margin is insufficient: lower the quantity or the position",
    "bnc_-2021": "The trigger price would fire immediately: move the stop/target",
    "bnc_-2022": "Reduce-only order rejected: there is no position to reduce",
    "bnc_-4003": "Quantity must be greater than 0",
    "bnc_-4004": "Quantity is below this symbol's minimum order size",
    "bnc_-4005": "Quantity is above this symbol's maximum order size",
    "bnc_-4014": "Price is not a multiple of the tick size",
    "bnc_-4016": "Limit price is above the exchange's upper price band",
    "bnc_-4023": "Quantity is not a multiple of the step size",
    "bnc_-4024": "Limit price is below the exchange's lower price band",
    "bnc_-4116": "Duplicate order id: that order already exists",
    "bnc_-4164": "Order notional is too small: the exchange needs a minimum amount",
    err_quantity: "Quantity must be a number greater than 0",
    err_price: "A limit order needs a price greater than 0",
    err_price_market: "Leave the price empty for a market order",
    stop_loss_opt: "Stop-loss (optional)",
    take_profit_opt: "Take-profit (optional)",
    err_below_price: "Must be below the order price",
    err_above_price: "Must be above the order price",
    err_stops_reduce_only: "A reduce-only order takes no stop-loss/take-profit",
    protections: "Protections",
    prot_none: "none active",
    mode_mismatch: "Account mode mismatch: no entries",
    prot_until: "lifts {time} at the earliest",
    prot_paused: "entries paused",
    prot_rule_drawdown: "Drawdown guard",
    prot_rule_daily_loss: "Daily loss limit",
    prot_rule_stoploss_guard: "Stop-loss guard",
    training: "Feature training",
    phase_next: "{count}/{next} trades",
    phase_final: "{count} trades (final phase)",
    min_score: "Entry needs ≥{min} points and a gap ≥{gap}",
    weights: "Feature weights",
    weight_history: "Weight history",
    w_volume_density: "Volume density",
    w_touch_bounce_count: "Touch & bounce",
    w_bounce_magnitude: "Bounce size",
    w_failed_breakout_count: "Failed breakouts",
    w_duration_days: "Duration (days)",
    w_multi_tf_confirm: "Multi-timeframe",
    filter_title: "Learned filter (predicts each trade's net R)",
    filter_head: "learned from {learned} trades (warm-up {warmup}) · baseline {base}R · judged {seen} signals, said no to {skip}",
    filter_view: "its view per feature (R per standard deviation)",
    logs: "Run log",
    no_logs: "No log lines yet",
    trades: "Trades",
    no_trades: "No trades yet",
    time: "Time",
    dir: "Side",
    exit: "Exit",
    status: "Status",
    long: "Long",
    short: "Short",
    open: "open",
    closed: "closed",
    unreconciled: "unreconciled",
    unreconciled_hint: "The position is gone on the exchange but its exit fills were not found yet: PnL unknown, kept out of learning; settled once they turn up",
    equity: "Equity curve",
    thought: "Thought chain",
    perception: "Perception",
    action: "Action",
    reward: "Reward",
    summary: "Summary",
    close_dialog: "Close",
    last_error: "Last error",
    last_scores: "Last scores",
    reason: "Reason",
    level: "Level",
    score: "score",
    exit_reason: "Exit reason",
    r_multiple: "R multiple",
    fees: "Fees",
    weight_change: "Weight change",
    raw_data: "All data",
    still_open: "Still open: no reward yet",
    levels_none: "No support/resistance levels yet",
    confirm_close: "Close the {symbol} position?",
    reset_paper: "Reset paper account",
    confirm_reset_paper: "Reset the paper account? All paper fills, trades and learned weights are cleared and the balance goes back to {balance} USDT (the old files are kept as .bak).",
    exit_stop: "stop",
    exit_target: "target",
    exit_partial: "partial take-profit",
    exit_target_loss: "take-profit price, net loss after fees",
    exit_trailing: "trailing stop",
    exit_break_even: "break-even stop",
    exit_signal: "opposite signal",
    exit_opposite_signal: "opposite signal",
    exit_manual: "manual close",
    source_manual: "manual",
    source_mixed: "with manual orders",
    exit_liquidation: "liquidation",
    exit_reconcile: "closed on the exchange",
  },
};

let current = "zh";
const listeners = [];

export function lang() {
  return current;
}

export function t(key, vars) {
  let s = (DICT[current] && DICT[current][key]) ?? DICT.zh[key] ?? key;
  if (vars) {
    for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
  }
  return s;
}

export function has(key) {
  return key in DICT.zh;
}

export function applyStatic(root = document) {
  root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  root.querySelectorAll("[data-i18n-ph]").forEach((el) => { el.placeholder = t(el.dataset.i18nPh); });
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
}

export function setLang(value) {
  current = value === "en" ? "en" : "zh";
  try { localStorage.setItem(STORE_KEY, current); } catch (e) { /* private mode: not remembered */ }
  applyStatic();
  listeners.forEach((fn) => fn(current));
}

export function initLang(serverDefault) {
  let stored = null;
  try { stored = localStorage.getItem(STORE_KEY); } catch (e) { stored = null; }
  current = stored === "en" || stored === "zh" ? stored : (serverDefault === "en" ? "en" : "zh");
  applyStatic();
}

export function onLangChange(fn) {
  listeners.push(fn);
}

// A stored exit key ("stop", "target", "partial", ...) in the current language; an unknown
// key is shown as stored.
export function exitReason(key) {
  if (key == null || key === "") return "";
  const k = `exit_${key}`;
  return k in DICT.zh ? t(k) : String(key);
}

// Feature identifiers (touch_bounce_count, ...) inside a text, replaced by their labels.
export function featureNames(text) {
  return String(text ?? "").replace(/[a-z]+(?:_[a-z]+)+/g, (m) => (`w_${m}` in DICT.zh ? t(`w_${m}`) : m));
}

// A message in the current language from a {message_zh, message_en}-style record.
export function pick(obj, base) {
  if (!obj) return "";
  return obj[`${base}_${current}`] ?? obj[`${base}_zh`] ?? obj[base] ?? "";
}

// A module's own strings (orders.js, ...), merged into the dictionary so t() finds them and
// the module's text stays next to its code.
export function addStrings(extra) {
  for (const [code, strings] of Object.entries(extra)) Object.assign(DICT[code] ??= {}, strings);
  applyStatic();
}
