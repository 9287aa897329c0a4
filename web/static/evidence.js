// The Evidence panel: the active strategy profile's out-of-sample result against random
// entries and buy & hold, as rl/optimize/evidence.py computed it (GET /api/agent/evidence).
// The figures and the plain sentence come from the server; this module only lays them out.
// The profile cannot change while the process runs, so it is fetched once.

import { api } from "./api.js";
import { t, addStrings, onLangChange, pick } from "./i18n.js";
import { el } from "./dom.js";

addStrings({
  zh: {
    ev_title: "证据", ev_profile: "策略配置", ev_none: "无（默认参数）", ev_oos: "本配置（样本外）",
    ev_random: "随机入场中位数", ev_band: "随机入场 10–90 %", ev_bh: "买入持有", ev_pct: "在随机入场中的百分位（100 = 胜过全部）",
    ev_fold: "第 {n} 折 {test}：样本内 {is} → 样本外 {oos}", ev_months: "测试月份", ev_error: "证据不可用：{error}",
    ev_gate_overridden: "实盘在没有证据的情况下运行（LIVE_WITHOUT_EVIDENCE=I_ACCEPT_THE_RISK）。",
    ev_gate_passed: "实盘：此配置的样本外收益高于随机入场中位数。",
  },
  en: {
    ev_title: "Evidence", ev_profile: "Strategy profile", ev_none: "none (default parameters)",
    ev_oos: "This profile (out-of-sample)", ev_random: "Random entries, median", ev_band: "Random entries 10–90 %",
    ev_bh: "Buy & hold", ev_pct: "Percentile among random entries (100 = beat all)",
    ev_fold: "Fold {n} {test}: in-sample {is} → out-of-sample {oos}", ev_months: "Test months",
    ev_error: "Evidence unavailable: {error}",
    ev_gate_overridden: "Live trading runs without evidence (LIVE_WITHOUT_EVIDENCE=I_ACCEPT_THE_RISK).",
    ev_gate_passed: "Live: this profile's out-of-sample return beats the random-entry median.",
  },
});

const $ = (id) => document.getElementById(id);
let data = null;
let failure = null;


const pct = (v) => (v == null || !Number.isFinite(Number(v)) ? "—" : `${Number(v) > 0 ? "+" : ""}${Number(v).toFixed(2)} %`);
const cls = (v) => (v == null ? "" : Number(v) < 0 ? "down" : Number(v) > 0 ? "up" : "");

function row(label, value, klass = "") {
  return el("tr", {}, el("th", {}, label), el("td", { class: klass }, value));
}

export function renderEvidence() {
  const box = $("evidence-body");
  if (!box) return;
  if (failure) { box.replaceChildren(el("p", { class: "inline-error small" }, t("ev_error", { error: failure }))); return; }
  if (!data) return;
  const good = data.state === "beats_chance";
  const parts = [
    el("div", { class: "ev-profile" }, `${t("ev_profile")}: `, el("b", {}, data.profile || t("ev_none")),
      data.created ? el("span", { class: "muted" }, ` · ${String(data.created).slice(0, 10)}`) : null),
    el("p", { id: "evidence-sentence", class: `ev-sentence ${good ? "good" : "bad"}`, "data-state": data.state },
      pick(data, "sentence")),
  ];
  if (data.oos_return_pct != null) {
    const rows = [row(t("ev_oos"), pct(data.oos_return_pct), cls(data.oos_return_pct))];
    if (data.random_median_return_pct != null) {
      rows.push(row(t("ev_random"), pct(data.random_median_return_pct), cls(data.random_median_return_pct)));
      rows.push(row(t("ev_band"), `${pct(data.random_p10_return_pct)} … ${pct(data.random_p90_return_pct)}`));
      rows.push(row(t("ev_pct"), data.agent_percentile == null ? "—" : Math.round(data.agent_percentile)));
    }
    if (data.buy_hold_return_pct != null) rows.push(row(t("ev_bh"), pct(data.buy_hold_return_pct), cls(data.buy_hold_return_pct)));
    if (data.test_months && data.test_months.length) rows.push(row(t("ev_months"), data.test_months.join(", ")));
    parts.push(el("table", { class: "grid ev-table" }, el("tbody", {}, rows)));
    parts.push(el("ul", { class: "ev-folds small muted" }, (data.folds || []).map((f) => el("li", {},
      t("ev_fold", { n: f.fold, test: (f.test || []).join(","), is: pct(f.in_sample_return_pct), oos: pct(f.out_of_sample_return_pct) })))));
  }
  if (data.live_gate === "overridden" || data.live_gate === "passed") {
    parts.push(el("p", { class: `small ${data.live_gate === "overridden" ? "down" : ""}` }, t(`ev_gate_${data.live_gate}`)));
  }
  box.replaceChildren(...parts);
  $("evidence-panel").classList.toggle("negative", !good);
}

async function load() {
  try {
    data = await api.evidence();
    failure = null;
  } catch (e) {
    failure = e.message;
  }
  renderEvidence();
  $("evidence-panel").dataset.ready = "1";
}

onLangChange(renderEvidence);
load();
