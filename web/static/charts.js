// Charts over the vendored lightweight-charts (global LightweightCharts, standalone build).
// Times arrive as UTC seconds and are shown in the browser's local time, formatted per
// interval as design §5.1 asks: 1m/15m -> HH:mm (the date, MM-DD, on ticks that start a day),
// 8h -> MM-DD HH:mm, 1w -> YYYY-MM-DD; the crosshair label always carries the date.

const LW = window.LightweightCharts;

const THEME = {
  bg: "#131722", text: "#b2b5be", grid: "#1e222d", border: "#2a2e39",
  up: "#26a69a", down: "#ef5350", support: "#26a69a", resistance: "#ef5350",
};

const INTERVAL_SEC = { "1m": 60, "15m": 900, "8h": 28800, "1w": 604800 };
// Binance weeks open on Monday 00:00 UTC; the epoch was a Thursday (4 days later in the week).
const WEEK_OFFSET_SEC = 4 * 86400;

const pad = (n) => String(n).padStart(2, "0");

// Axis tick labels. lightweight-charts picks tick marks by weight and tells us the kind
// (TickMarkType: 0 Year, 1 Month, 2 DayOfMonth, 3 Time, 4 TimeWithSeconds). A tick that starts a
// new day/month/year shows the date ("11-24"), the others the time of day, so a 15m chart over
// three days reads "11-23 … 06:00 … 12:00 … 11-24" instead of "00:00" repeated.
const TICK = { Year: 0, Month: 1, DayOfMonth: 2, Time: 3, TimeWithSeconds: 4 };

export function formatTick(sec, tickType, interval) {
  const d = new Date(sec * 1000);
  const ymd = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const md = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (interval === "1w") return tickType === TICK.Year ? String(d.getFullYear()) : ymd;
  if (tickType === TICK.Year) return String(d.getFullYear());
  if (tickType === TICK.Month || tickType === TICK.DayOfMonth) return interval === "" ? ymd : md;
  if (interval === "8h") return `${md} ${hm}`;
  return hm;
}

// Crosshair label: the full moment (an intraday time alone does not say which day).
function formatCrosshair(sec, interval) {
  const d = new Date(sec * 1000);
  const ymd = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return interval === "1w" ? ymd : `${ymd} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function formatDateTime(ms) {
  if (ms == null) return "—";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
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
    this.data = [];
    this.precision = null;
    this.fitted = false;
  }

  setCandles(rows) {
    this.data = rows || [];
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
  }

  // levels: ScoredLevel.to_dict() rows, best first (from /api/agent/levels):
  // {price, kind: "support"|"resistance", score 0..100, timeframe, touches, features, ...}
  setLevels(levels) {
    this.priceLines.forEach((l) => this.candles.removePriceLine(l));
    this.priceLines = [];
    const last = this.data.length ? this.data[this.data.length - 1].close : null;
    (levels || []).slice(0, 6).forEach((lv) => {
      const price = Number(lv.price);
      if (!Number.isFinite(price)) return;
      // `kind` is relative to the price when the agent analysed; the price may have crossed
      // the level since, so the newest close decides which side it is on now.
      const kind = last != null ? (price <= last ? "support" : "resistance") : String(lv.kind || "");
      const isSupport = kind.startsWith("s");
      const score = lv.score != null ? Number(lv.score) : null;
      const scoreText = score == null ? "" : ` ${Math.round(score)}`;
      const tf = lv.timeframe ? ` ${lv.timeframe}` : "";
      this.priceLines.push(this.candles.createPriceLine({
        price, color: isSupport ? THEME.support : THEME.resistance, lineWidth: 1, lineStyle: 2,
        axisLabelVisible: true, title: `${isSupport ? "S" : "R"}${scoreText}${tf}`,
      }));
    });
  }

  // trades -> entry/exit markers snapped to this chart's bars (markers need a bar's time).
  // Several trades inside one bar (common on 8h/1w) become one marker with a count ("S×5")
  // instead of a tower of arrows.
  setTrades(trades) {
    if (!this.data.length) { this.markers.setMarkers([]); return; }
    const first = this.data[0].time;
    const lastT = this.data[this.data.length - 1].time;
    const groups = new Map();
    const add = (ms, kind, long) => {
      if (ms == null) return;
      const t = barOpen(Math.floor(ms / 1000), this.interval);
      if (t < first || t > lastT) return;
      const key = `${t}|${kind}|${long ? "L" : "S"}`;
      const g = groups.get(key) || { time: t, kind, long, n: 0 };
      g.n += 1;
      groups.set(key, g);
    };
    (trades || []).forEach((tr) => {
      const long = isLong(tr);
      add(tr.opened_ms, "entry", long);      // knowledge-store trade rows
      add(tr.closed_ms, "exit", long);
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
}
