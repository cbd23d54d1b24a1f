// A line chart of requests or tokens per client over time, drawn as SVG with DOM calls.

import { el } from "./common.js";

const NS = "http://www.w3.org/2000/svg";
const W = 720;
const H = 260;
const PAD = { left: 52, right: 14, top: 12, bottom: 30 };
const COLOURS = 8; // .s0 … .s7 in style.css; .s8 is "others"

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A round number at or above `value`, so the axis reads 0, 250, 500, … */
function niceCeil(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((s) => s * power >= value);
  return step * power;
}

const compact = new Intl.NumberFormat(undefined, { notation: "compact" });
const whole = new Intl.NumberFormat();

function labeller(bucket) {
  const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  const hour = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  return {
    axis: (ms, first) => {
      const date = new Date(ms);
      if (bucket === "day") return day.format(date);
      return first || date.getHours() === 0 ? `${day.format(date)} ${hour.format(date)}`
        : hour.format(date);
    },
    full: (ms) => (bucket === "day" ? day.format(new Date(ms))
      : `${day.format(new Date(ms))} ${hour.format(new Date(ms))}`),
  };
}

function colourClass(series, index) {
  return series.client === "others" ? "s8" : `s${index % COLOURS}`;
}

/** Draw `usage` (GET /v1/admin/usage) into `figure`, showing `metric` (tokens or requests). */
export function drawChart(figure, usage, metric) {
  const step = usage.bucket === "day" ? 86_400_000 : 3_600_000;
  const first = Math.floor(Date.parse(usage.since) / step) * step;
  const last = Math.floor(Date.parse(usage.until) / step) * step;
  const slots = [];
  for (let at = first; at <= last; at += step) slots.push(at);
  const values = usage.series.map((s) => {
    const byTime = new Map(s.points.map((p) => [Date.parse(p.at), p[metric]]));
    return slots.map((at) => byTime.get(at) ?? 0);
  });
  const top = niceCeil(Math.max(0, ...values.flat()));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (slots.length > 1 ? (i * plotW) / (slots.length - 1) : plotW / 2);
  const y = (v) => PAD.top + plotH * (1 - v / top);
  const label = labeller(usage.bucket);
  const what = metric === "tokens" ? "tokens" : "requests";

  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${what} per client and ${usage.bucket}, ${usage.series.length} clients`,
  });
  for (let i = 0; i <= 4; i += 1) {
    const value = (top * i) / 4;
    chart.append(
      svg("line", { class: i ? "grid" : "axis", x1: PAD.left, x2: W - PAD.right,
                    y1: y(value), y2: y(value) }),
      svg("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" },
          compact.format(value)));
  }
  const every = Math.max(1, Math.ceil(slots.length / 6));
  slots.forEach((at, i) => {
    if (i % every) return;
    chart.append(svg("text", { x: x(i), y: H - 8, "text-anchor": i ? "middle" : "start" },
                     label.axis(at, i === 0)));
  });
  usage.series.forEach((series, index) => {
    const group = svg("g", { class: colourClass(series, index) });
    const points = values[index].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    group.append(svg("polyline", { class: "line", points: points.join(" ") }));
    values[index].forEach((v, i) => {
      if (!v) return;
      group.append(svg("circle", { class: "dot", cx: x(i), cy: y(v), r: 3 },
        svg("title", {}, `${series.client}, ${label.full(slots[i])}: ${whole.format(v)} ${what}`)));
    });
    chart.append(group);
  });
  if (!usage.series.length) {
    chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" },
                     "No API requests in this period."));
  }
  const legend = el("ul", { class: "legend" }, usage.series.map((series, index) =>
    el("li", { class: colourClass(series, index) }, el("span", { class: "swatch" }),
       `${series.client}: ${whole.format(series[metric])} ${what}`)));
  figure.replaceChildren(chart, legend);
}
