// A small hand-written SVG line plot: enough for loss and success-rate curves, no library to vendor or fetch.
"use strict";
function svgPlot(svg, series, opts) {
  opts = opts || {};
  const W = 320, H = 120, pad = 4;
  const all = series.flatMap(s => s.points);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const ns = "http://www.w3.org/2000/svg";
  const text = (x, y, s, anchor) => {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("font-size", "9");
    t.setAttribute("fill", "#666"); t.setAttribute("text-anchor", anchor || "start"); t.textContent = s;
    svg.appendChild(t);
  };
  if (all.length === 0) { text(W / 2, H / 2, opts.empty || "no data yet", "middle"); return; }
  let x0 = Math.min(...all.map(p => p[0])), x1 = Math.max(...all.map(p => p[0]));
  let y0 = opts.yMin !== undefined ? opts.yMin : Math.min(...all.map(p => p[1]));
  let y1 = opts.yMax !== undefined ? opts.yMax : Math.max(...all.map(p => p[1]));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) y1 = y0 + 1;
  const sx = x => pad + (x - x0) / (x1 - x0) * (W - 2 * pad);
  const sy = y => H - pad - (y - y0) / (y1 - y0) * (H - 2 * pad);
  for (const s of series) {
    if (s.points.length === 0) continue;
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", s.points.map(p => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", s.color); line.setAttribute("stroke-width", "1.5");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.appendChild(line);
  }
  const fmt = v => Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
  text(pad + 1, 10, fmt(y1)); text(pad + 1, H - 6, fmt(y0));
  text(W - pad, H - 6, (opts.xLabel || "") + fmt(x1), "end");
}
