// Narrow screens (style.css, max-width 760px) show one kline chart at a time: the tabs above
// the grid pick it. On wide screens the tabs are hidden and all four charts stay in the grid;
// the choice is kept either way so turning a tablet does not lose it.

const TAB_KEY = "dashboard.chartTab";

export function bindChartTabs() {
  const grid = document.querySelector(".chart-grid");
  const tabs = [...document.querySelectorAll(".chart-tab")];
  if (!grid || !tabs.length) return;
  const select = (itv) => {
    grid.dataset.active = itv;
    tabs.forEach((b) => b.setAttribute("aria-selected", String(b.dataset.interval === itv)));
    try { localStorage.setItem(TAB_KEY, itv); } catch (e) { /* not remembered */ }
  };
  tabs.forEach((b) => b.addEventListener("click", () => select(b.dataset.interval)));
  let saved = null;
  try { saved = localStorage.getItem(TAB_KEY); } catch (e) { /* none */ }
  if (saved && tabs.some((b) => b.dataset.interval === saved)) select(saved);
}
