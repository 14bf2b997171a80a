// Dashboard charts: per-minute series from /api/v1/instances/{id}/metrics/ drawn with uPlot.
(function () {
  const root = document.getElementById("charts");
  if (!root || !window.uPlot) return;
  const filters = document.getElementById("chart-filters");
  const plots = {};
  const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

  // The x axis always spans the chosen window, however few points there are.
  let windowStart = 0;
  let windowEnd = 0;

  function query(metric) {
    const params = new URLSearchParams({ metric, org: root.dataset.org });
    const form = new FormData(filters);
    const hours = Number(form.get("window") || 1);
    windowEnd = Date.now() / 1000;
    windowStart = windowEnd - hours * 3600;
    params.set("resolution", hours > 24 ? "1h" : "1m");
    params.set("from", new Date(Date.now() - hours * 3600 * 1000).toISOString());
    if (form.get("topic") && metric !== "lag_messages" && metric !== "storage_bytes" && metric !== "throttled_send") params.set("topic", form.get("topic"));
    if (form.get("group") && metric === "lag_messages") params.set("group", form.get("group"));
    return `${root.dataset.api}?${params}`;
  }

  async function draw(el) {
    const metric = el.dataset.metric;
    const note = root.querySelector(`.chart-note[data-for="${metric}"]`);
    const response = await fetch(query(metric), { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) { note.textContent = `Could not load (${response.status}).`; return; }
    const body = await response.json();
    const xs = body.points.map((p) => Date.parse(p[0]) / 1000);
    const ys = body.points.map((p) => p[1]);
    const count = body.points.length;
    note.textContent = count ? `${count} ${count === 1 ? "point" : "points"}, latest ${ys[ys.length - 1]}` : "No data reported in this window yet.";
    const data = [xs, ys];
    const width = Math.max(240, el.clientWidth);
    if (plots[metric]) { plots[metric].setData(data); plots[metric].setSize({ width, height: 200 }); return; }
    plots[metric] = new uPlot({ width, height: 200, scales: { x: { time: true, range: () => [windowStart, windowEnd] } }, series: [{}, { label: metric, stroke: "#1f5fbf", fill: "rgba(31,95,191,.12)" }],
      axes: [{}, { size: 60, values: (u, values) => values.map((v) => compact.format(v)) }], legend: { show: false } }, data, el);
  }

  function refresh() { root.querySelectorAll(".chart").forEach((el) => draw(el).catch(() => {})); }
  filters.addEventListener("change", () => { Object.values(plots).forEach((p) => p.destroy()); for (const k in plots) delete plots[k]; refresh(); });
  refresh();
  setInterval(refresh, 30000);
})();
