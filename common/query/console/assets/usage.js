// Usage of the last 30 days (GET /v1/usage): requests, tokens and documents added per UTC day,
// each as a small bar chart drawn here in SVG (no chart library), with the numbers as a table.

import { describe, json } from "./api.js";
import { byId, bytes, h, replace, s } from "./dom.js";

const WIDTH = 300;
const HEIGHT = 90;
const TOP = 14;
const BOTTOM = 14;

const SERIES = [
  { name: "Requests", value: (day) => day.requests },
  { name: "Tokens", value: (day) => day.prompt_tokens + day.completion_tokens },
  { name: "Documents added", value: (day) => day.documents_added },
];

let loading = null;

export async function loadUsage() {
  const state = byId("usage-state");
  loading?.abort();
  loading = new AbortController();
  state.textContent = "Loading usage…";
  try {
    const report = await json("GET", "/v1/usage", { signal: loading.signal });
    render(report);
    state.textContent = `From ${report.from} to ${report.to} (UTC days), for your whole team.`;
  } catch (error) {
    if (error.name !== "AbortError") state.textContent = describe(error);
  }
}

function render(report) {
  const total = report.total;
  const now = report.documents;
  const statuses = Object.entries(now.by_status || {})
    .map(([status, count]) => `${count} ${status}`)
    .join(", ");
  replace(
    byId("usage-totals"),
    h(
      "dl",
      { class: "fields" },
      h("dt", {}, "Requests"),
      h("dd", {}, `${total.requests} (${total.answered_requests} answered from documents)`),
      h("dt", {}, "Tokens"),
      h("dd", {}, `${total.prompt_tokens} prompt, ${total.completion_tokens} completion`),
      h("dt", {}, "Documents added"),
      h("dd", {}, `${total.documents_added} (${bytes(total.bytes_uploaded)}), ${total.chunks_created} chunks`),
      h("dt", {}, "Documents now"),
      h("dd", {}, `${statuses || "none"}; ${now.chunks_stored} chunks, ${bytes(now.bytes_stored)}`),
    ),
  );
  replace(
    byId("usage-charts"),
    SERIES.map((series) => chart(series, report.days)),
  );
}

function chart(series, days) {
  const values = days.map(series.value);
  const max = Math.max(1, ...values);
  const sum = values.reduce((a, b) => a + b, 0);
  const peak = values.indexOf(Math.max(...values));
  const slot = WIDTH / Math.max(1, days.length);
  const plot = HEIGHT - TOP - BOTTOM;
  const summary =
    `${series.name} per day: ${sum} in all` +
    (sum ? `, most on ${days[peak].date} (${values[peak]})` : "");
  const bars = values.map((value, i) => {
    const height = value ? Math.max(1, (value / max) * plot) : 0;
    return s(
      "rect",
      {
        x: (i * slot + slot * 0.15).toFixed(2),
        y: (TOP + plot - height).toFixed(2),
        width: (slot * 0.7).toFixed(2),
        height: height.toFixed(2),
        class: "bar",
      },
      s("title", {}, `${days[i].date}: ${value}`),
    );
  });
  const first = days[0]?.date ?? "";
  const last = days[days.length - 1]?.date ?? "";
  const svg = s(
    "svg",
    {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-label": summary,
      class: "chart-svg",
    },
    s("line", { x1: 0, x2: WIDTH, y1: TOP + plot, y2: TOP + plot, class: "axis" }),
    s("text", { x: 0, y: 10, class: "tick" }, `max ${max}`),
    bars,
    s("text", { x: 0, y: HEIGHT - 2, class: "tick" }, first),
    s("text", { x: WIDTH, y: HEIGHT - 2, class: "tick end" }, last),
  );
  const table = h(
    "details",
    {},
    h("summary", {}, `${series.name}: the numbers`),
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Day"), h("th", { scope: "col" }, series.name))),
      h(
        "tbody",
        {},
        days.map((day, i) => h("tr", {}, h("td", {}, day.date), h("td", {}, String(values[i])))),
      ),
    ),
  );
  return h("figure", { class: "chart" }, h("figcaption", {}, `${series.name}: ${sum}`), svg, table);
}
