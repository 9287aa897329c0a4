// Charts over the vendored lightweight-charts (global LightweightCharts, standalone build).
// Times arrive as UTC seconds and are shown in the browser's local time or UTC (switchable), formatted per
// interval as design §5.1 asks: 1m/15m -> HH:mm (the date, MM-DD, on ticks that start a day),
// 8h -> MM-DD HH:mm, 1w -> YYYY-MM-DD; the crosshair label always carries the date.

const LW = window.LightweightCharts;

const THEME = {
  bg: "#131722", text: "#b2b5be", grid: "#1e222d", border: "#2a2e39",
  up: "#26a69a", down: "#ef5350", support: "#26a69a", resistance: "#ef5350",
};

const LABELLED = 3;     // S/R levels with an axis label; the others are named on hover

const INTERVAL_SEC = { "1m": 60, "15m": 900, "8h": 28800, "1w": 604800 };
// Binance weeks open on Monday 00:00 UTC; the epoch was a Thursday (4 days later in the week).
const WEEK_OFFSET_SEC = 4 * 86400;

const pad = (n) => String(n).padStart(2, "0");

// Axis tick labels. lightweight-charts picks tick marks by weight and tells us the kind
// (TickMarkType: 0 Year, 1 Month, 2 DayOfMonth, 3 Time, 4 TimeWithSeconds). A tick that starts a
// new day/month/year shows the date ("11-24"), the others the time of day, so a 15m chart over
// three days reads "11-23 … 06:00 … 12:00 … 11-24" instead of "00:00" repeated.
const TICK = { Year: 0, Month: 1, DayOfMonth: 2, Time: 3, TimeWithSeconds: 4 };

// Time zone of every chart axis, crosshair and timestamp on the page: the browser's local time
// (default) or UTC, switchable and remembered; the page labels which one it shows.
const TZ_KEY = "dashboard.tz";
let tzMode = (() => { try { return localStorage.getItem(TZ_KEY) === "utc" ? "utc" : "local"; } catch (e) { return "local"; } })();
const tzListeners = [];

export function timeZone() { return tzMode; }

export function setTimeZone(mode) {
  tzMode = mode === "utc" ? "utc" : "local";
  try { localStorage.setItem(TZ_KEY, tzMode); } catch (e) { /* private mode: not remembered */ }
  tzListeners.forEach((fn) => fn(tzMode));
}

export function onTimeZoneChange(fn) { tzListeners.push(fn); }

// "UTC" or the local offset ("UTC+8", "UTC-3:30") so the label says what the clock means.
export function timeZoneLabel() {
  if (tzMode === "utc") return "UTC";
  const off = -new Date().getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const h = Math.floor(Math.abs(off) / 60);
  const m = Math.abs(off) % 60;
  return `UTC${sign}${h}${m ? ":" + pad(m) : ""}`;
}

function parts(ms) {
  const d = new Date(ms);
  const u = tzMode === "utc";
  return {
    y: u ? d.getUTCFullYear() : d.getFullYear(), mo: (u ? d.getUTCMonth() : d.getMonth()) + 1,
    d: u ? d.getUTCDate() : d.getDate(), h: u ? d.getUTCHours() : d.getHours(),
    mi: u ? d.getUTCMinutes() : d.getMinutes(), s: u ? d.getUTCSeconds() : d.getSeconds(),
  };
}

export function formatTick(sec, tickType, interval) {
  const p = parts(sec * 1000);
  const ymd = `${p.y}-${pad(p.mo)}-${pad(p.d)}`;
  const md = `${pad(p.mo)}-${pad(p.d)}`;
  const hm = `${pad(p.h)}:${pad(p.mi)}`;
  if (interval === "1w") return tickType === TICK.Year ? String(p.y) : ymd;
  if (tickType === TICK.Year) return String(p.y);
  if (tickType === TICK.Month || tickType === TICK.DayOfMonth) return interval === "" ? ymd : md;
  if (interval === "8h") return `${md} ${hm}`;
  return hm;
}

// Crosshair label: the full moment (an intraday time alone does not say which day).
function formatCrosshair(sec, interval) {
  const p = parts(sec * 1000);
  const ymd = `${p.y}-${pad(p.mo)}-${pad(p.d)}`;
  return interval === "1w" ? ymd : `${ymd} ${pad(p.h)}:${pad(p.mi)}`;
}

export function formatDateTime(ms) {
  if (ms == null) return "—";
  const p = parts(ms);
  return `${p.y}-${pad(p.mo)}-${pad(p.d)} ${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}`;
}

function barOpen(sec, interval) {
  const step = INTERVAL_SEC[interval];
  if (!step) return sec;
  if (interval === "1w") return Math.floor((sec - WEEK_OFFSET_SEC) / step) * step + WEEK_OFFSET_SEC;
  return Math.floor(sec / step) * step;
}

function precisionFor(price) {
  if (!(price > 0)) return 2;
  if (price < 1) return 5;
  if (price < 10) return 4;
  if (price < 1000) return 3;
  return 2;
}

function baseOptions(interval) {
  return {
    autoSize: true,
    layout: { background: { type: "solid", color: THEME.bg }, textColor: THEME.text, fontSize: 11 },
    grid: { vertLines: { color: THEME.grid }, horzLines: { color: THEME.grid } },
    rightPriceScale: { borderColor: THEME.border },
    timeScale: { borderColor: THEME.border, timeVisible: true, secondsVisible: false,
      tickMarkFormatter: (time, tickType) => formatTick(time, tickType, interval) },
    localization: { timeFormatter: (time) => formatCrosshair(time, interval) },
    crosshair: { mode: 0 },
  };
}

export class KlineChart {
  constructor(container, interval) {
    this.interval = interval;
    this.chart = LW.createChart(container, baseOptions(interval));
    this.candles = this.chart.addSeries(LW.CandlestickSeries, {
      upColor: THEME.up, downColor: THEME.down, borderVisible: false,
      wickUpColor: THEME.up, wickDownColor: THEME.down,
    });
    this.volume = this.chart.addSeries(LW.HistogramSeries, {
      priceFormat: { type: "volume" }, priceScaleId: "", lastValueVisible: false, priceLineVisible: false,
    });
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.22 } });
    this.markers = LW.createSeriesMarkers(this.candles, []);
    this.priceLines = [];
    this.positionLines = [];
    this.hoverLevels = [];      // levels drawn without a label: named in the readout on hover
    this.tradeCounts = new Map();   // bar time -> {entries, exits}: the readout's marker tooltip
    this.tradesByBar = new Map();   // bar time -> [{kind, long, price, pnl, id}]: the marker's trade list
    this.data = [];
    this.byTime = new Map();
    this.precision = null;
    this.fitted = false;
    // OHLC readout over the chart's top-left corner: the bar under the crosshair, else the last.
    this.container = container;
    this.readout = document.createElement("div");
    this.readout.className = "ohlc";
    this.readout.dataset.interval = interval;
    container.append(this.readout);
    // the trades behind an aggregated marker, listed next to the crosshair (hover or tap)
    this.tip = document.createElement("div");
    this.tip.className = "trade-tip";
    this.tip.hidden = true;
    container.append(this.tip);
    this.chart.subscribeCrosshairMove((param) => this.showReadout(param));
  }

  // Labels come from the page (i18n) so this module stays free of the dictionary.
  setLabels(labels) { this.labels = labels; this.showReadout(null); }

  showReadout(param) {
    const L = this.labels || {};
    const bar = param && param.time != null ? this.byTime.get(param.time) : this.data[this.data.length - 1];
    if (!bar) { this.readout.replaceChildren(); return; }
    const prec = this.precision ?? 2;
    const f = (v) => Number(v).toFixed(prec);
    const cls = bar.close >= bar.open ? "up" : "down";
    const item = (k, v) => {
      const s = document.createElement("span");
      s.append(`${k} `);
      const b = document.createElement("b");
      b.className = cls;
      b.textContent = v;
      s.append(b);
      return s;
    };
    const row = [
      Object.assign(document.createElement("span"), { className: "ohlc-time", textContent: formatCrosshair(bar.time, this.interval) }),
      item(L.o || "O", f(bar.open)), item(L.h || "H", f(bar.high)), item(L.l || "L", f(bar.low)), item(L.c || "C", f(bar.close)),
    ];
    const tc = this.tradeCounts.get(bar.time);
    if (tc) {
      row.push(Object.assign(document.createElement("span"), { className: "ohlc-trades",
        textContent: (L.trades_in_bar || "{e} in / {x} out").replace("{e}", tc.entries).replace("{x}", tc.exits) }));
    }
    // A level drawn without a label, near the crosshair's price: name it here.
    if (param && param.point && this.hoverLevels.length) {
      const price = this.candles.coordinateToPrice(param.point.y);
      const near = this.hoverLevels.find((lv) => {
        const y = this.candles.priceToCoordinate(lv.price);
        return y != null && Math.abs(y - param.point.y) <= 4;
      });
      if (near && price != null) {
        row.push(Object.assign(document.createElement("span"), { className: "ohlc-level", textContent: `${near.title} @ ${f(near.price)}` }));
      }
    }
    this.readout.replaceChildren(...row);
    this.showTradeTip(param, f);
  }

  // Under the crosshair, a bar with trades: one line per entry/exit (side, price, PnL).
  showTradeTip(param, f) {
    const list = param && param.time != null && param.point ? this.tradesByBar.get(param.time) : null;
    if (!list || !list.length) { this.tip.hidden = true; return; }
    const L = this.labels || {};
    const pnl = (v) => (v == null || !Number.isFinite(Number(v)) ? "" : ` ${Number(v) >= 0 ? "+" : ""}${Number(v).toFixed(2)}`);
    this.tip.replaceChildren(...list.slice(0, 12).map((x) => {
      const line = document.createElement("div");
      line.className = x.kind === "exit" ? (Number(x.pnl) >= 0 ? "up" : "down") : (x.long ? "up" : "down");
      const side = x.long ? (L.long || "long") : (L.short || "short");
      const what = x.kind === "entry" ? (L.entry || "entry") : (L.exit || "exit");
      line.textContent = `#${x.id ?? "?"} ${side} ${what} @ ${f(x.price)}${x.kind === "exit" ? pnl(x.pnl) : ""}`;
      return line;
    }), ...(list.length > 12 ? [Object.assign(document.createElement("div"), { textContent: `… +${list.length - 12}` })] : []));
    const w = this.container.clientWidth;
    this.tip.style.left = `${Math.min(param.point.x + 14, Math.max(0, w - 220))}px`;
    this.tip.style.top = `${Math.max(18, param.point.y - 10)}px`;
    this.tip.hidden = false;
  }

  // The open position: entry, stop and target as price lines (none drawn when flat).
  setPosition(pos) {
    this.positionLines.forEach((l) => this.candles.removePriceLine(l));
    this.positionLines = [];
    this.container.dataset.positionLines = "0";    // how many lines are drawn, for tests
    if (!pos) return;
    const L = this.labels || {};
    const lines = [
      [pos.entry_price, "#d1d4dc", L.entry || "entry", 0],
      [pos.stop, THEME.down, L.stop || "stop", 0],
      [pos.target, THEME.up, L.target || "target", 0],
    ];
    lines.forEach(([v, color, title, style]) => {
      const price = Number(v);
      if (v == null || !Number.isFinite(price) || price <= 0) return;
      this.positionLines.push(this.candles.createPriceLine({
        price, color, lineWidth: 2, lineStyle: style, axisLabelVisible: true, title }));
    });
    this.container.dataset.positionLines = String(this.positionLines.length);
  }

  // What the chart shows now (for tests and the page): price lines by purpose.
  describe() {
    return { position: this.positionLines.map((l) => ({ title: l.options().title, price: l.options().price })),
      levels: this.priceLines.map((l) => ({ title: l.options().title, price: l.options().price })),
      bars: this.data.length };
  }

  refreshTime() {
    // Same formatters, re-applied: the chart redraws its axis in the new time zone.
    this.chart.applyOptions(baseOptions(this.interval));
    this.showReadout(null);
  }

  setCandles(rows) {
    this.data = rows || [];
    this.byTime = new Map(this.data.map((c) => [c.time, c]));
    if (!this.data.length) {
      this.candles.setData([]);
      this.volume.setData([]);
      return;
    }
    const prec = precisionFor(this.data[this.data.length - 1].close);
    if (prec !== this.precision) {
      this.precision = prec;
      this.candles.applyOptions({ priceFormat: { type: "price", precision: prec, minMove: 10 ** -prec } });
    }
    this.candles.setData(this.data.map((c) => ({ time: c.time, open: c.open, high: c.high, low: c.low, close: c.close })));
    this.volume.setData(this.data.map((c) => ({
      time: c.time, value: c.volume,
      color: c.close >= c.open ? "rgba(38,166,154,0.45)" : "rgba(239,83,80,0.45)",
    })));
    if (!this.fitted) {
      this.chart.timeScale().fitContent();
      this.fitted = true;
    }
    this.showReadout(null);
  }

  // levels: ScoredLevel.to_dict() rows, best first (from /api/agent/levels):
  // {price, kind: "support"|"resistance", score 0..100, timeframe, touches, features, ...}
  setLevels(levels) {
    this.priceLines.forEach((l) => this.candles.removePriceLine(l));
    this.priceLines = [];
    this.hoverLevels = [];
    const last = this.data.length ? this.data[this.data.length - 1].close : null;
    // The best LABELLED levels carry a label; the rest are thin lines named in the readout on
    // hover, so labels of nearby levels do not stack over each other on the axis.
    (levels || []).slice(0, 6).forEach((lv, i) => {
      const price = Number(lv.price);
      if (!Number.isFinite(price)) return;
      // `kind` is relative to the price when the agent analysed; the price may have crossed
      // the level since, so the newest close decides which side it is on now.
      const kind = last != null ? (price <= last ? "support" : "resistance") : String(lv.kind || "");
      const isSupport = kind.startsWith("s");
      const score = lv.score != null ? Number(lv.score) : null;
      const scoreText = score == null ? "" : ` ${Math.round(score)}`;
      const tf = lv.timeframe ? ` ${lv.timeframe}` : "";
      const title = `${isSupport ? "S" : "R"}${scoreText}${tf}`;
      const labelled = i < LABELLED;
      if (!labelled) this.hoverLevels.push({ price, title });
      this.priceLines.push(this.candles.createPriceLine({
        price, color: isSupport ? THEME.support : THEME.resistance, lineWidth: 1, lineStyle: 2,
        axisLabelVisible: labelled, title: labelled ? title : "",
      }));
    });
  }

  // trades -> entry/exit markers snapped to this chart's bars (markers need a bar's time).
  // Several trades inside one bar (common on 8h/1w) become one marker with a count ("S×5")
  // instead of a tower of arrows.
  setTrades(trades) {
    if (!this.data.length) {
      this.markers.setMarkers([]); this.tradeCounts = new Map(); this.tradesByBar = new Map(); return;
    }
    const first = this.data[0].time;
    const lastT = this.data[this.data.length - 1].time;
    const groups = new Map();
    this.tradesByBar = new Map();
    const add = (ms, kind, long, tr) => {
      if (ms == null) return;
      const t = barOpen(Math.floor(ms / 1000), this.interval);
      if (t < first || t > lastT) return;
      const list = this.tradesByBar.get(t) || [];
      list.push({ kind, long, id: tr.id, price: kind === "entry" ? tr.entry_price : tr.exit_price,
        pnl: tr.net_pnl ?? tr.pnl });
      this.tradesByBar.set(t, list);
      const key = `${t}|${kind}|${long ? "L" : "S"}`;
      const g = groups.get(key) || { time: t, kind, long, n: 0 };
      g.n += 1;
      groups.set(key, g);
    };
    (trades || []).forEach((tr) => {
      const long = isLong(tr);
      add(tr.opened_ms, "entry", long, tr);      // knowledge-store trade rows
      add(tr.closed_ms, "exit", long, tr);
    });
    this.tradeCounts = new Map();
    groups.forEach((g) => {
      const c = this.tradeCounts.get(g.time) || { entries: 0, exits: 0 };
      if (g.kind === "entry") c.entries += g.n; else c.exits += g.n;
      this.tradeCounts.set(g.time, c);
    });
    const out = [...groups.values()].map((g) => {
      const count = g.n > 1 ? `×${g.n}` : "";
      if (g.kind === "entry") {
        return { time: g.time, position: g.long ? "belowBar" : "aboveBar", color: g.long ? THEME.up : THEME.down,
          shape: g.long ? "arrowUp" : "arrowDown", text: (g.long ? "L" : "S") + count };
      }
      return { time: g.time, position: g.long ? "aboveBar" : "belowBar", color: "#f0b90b", shape: "circle",
        text: "X" + count };
    });
    out.sort((a, b) => a.time - b.time);
    this.markers.setMarkers(out);
  }
}

export function isLong(tr) {
  const side = String(tr.side || "").toUpperCase();   // "LONG" | "SHORT"
  return side === "LONG" || side === "BUY";
}

// A plain line chart (equity curve, weight history). series: [{key, color}]
export class LineChart {
  constructor(container, series, valueFormat) {
    this.chart = LW.createChart(container, baseOptions(""));
    this.series = {};
    series.forEach((s) => {
      this.series[s.key] = this.chart.addSeries(LW.LineSeries, {
        color: s.color, lineWidth: 2, priceLineVisible: false, lastValueVisible: series.length === 1,
        priceFormat: valueFormat || { type: "price", precision: 2, minMove: 0.01 },
      });
    });
  }

  // points: [{time_ms, value}] per key; times must be strictly increasing: keep the last per second.
  setSeries(key, points) {
    const bySec = new Map();
    (points || []).forEach((p) => {
      if (p.value == null || !Number.isFinite(Number(p.value))) return;
      bySec.set(Math.floor(p.time_ms / 1000), Number(p.value));
    });
    const data = [...bySec.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
    this.series[key].setData(data);
    return data.length;
  }

  fit() { this.chart.timeScale().fitContent(); }

  refreshTime() { this.chart.applyOptions(baseOptions("")); }
}
