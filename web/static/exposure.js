// The exposure caps under the protections (rl/risk/exposure.py, status.exposure): how many of
// the agent's positions are open against MAX_OPEN_POSITIONS, what they lose together if every
// stop fills against MAX_TOTAL_RISK_PERCENT, the correlation cap, and the newest refusal. The
// figures are the server's; this module only writes them in the page's language.

import { t, addStrings, pick } from "./i18n.js";

addStrings({
  zh: {
    exp_positions: "持仓 {n}/{max}", exp_risk: "止损风险 {pct}/{max} %", exp_corr: "相关性上限 {max}",
    exp_off: "关", exp_last: "最近拒绝：{reason}", exp_refusals: "已拒绝 {n} 次",
  },
  en: {
    exp_positions: "positions {n}/{max}", exp_risk: "risk at stops {pct}/{max} %", exp_corr: "correlation cap {max}",
    exp_off: "off", exp_last: "last refusal: {reason}", exp_refusals: "{n} refused",
  },
});

const cap = (v, fmt) => (v ? fmt(v) : t("exp_off"));

// `exp`: status.exposure or null (no agent): the line is hidden then.
export function renderExposure(exp) {
  const line = document.getElementById("exposure-line");
  if (!line) return;
  line.hidden = !exp;
  if (!exp) return;
  const pct = exp.open_risk_percent == null ? "–" : exp.open_risk_percent.toFixed(2);
  const parts = [
    t("exp_positions", { n: exp.open_positions, max: cap(exp.max_open_positions, String) }),
    t("exp_risk", { pct, max: cap(exp.max_total_risk_percent, (v) => v.toFixed(1)) }),
    t("exp_corr", { max: cap(exp.max_correlation, (v) => v.toFixed(2)) }),
  ];
  if (exp.refusals) parts.push(t("exp_refusals", { n: exp.refusals }));
  line.querySelector(".figures").textContent = parts.join(" · ");
  const last = (exp.last_refusals || [])[0];
  const why = line.querySelector(".last");
  why.hidden = !last;
  why.textContent = last ? t("exp_last", { reason: pick(last, "reason") || last.rule || "" }) : "";
}
