// optlab's report page: renders the page's JSON (tables, plotly charts, learning curves) and
// links them. Brushing the parallel coordinates selects the runs inside every constrained
// range; the tables then show only those runs (and the groups holding them), the other charts
// highlight them, and the learning curves show the best groups among them. Nothing here
// computes a statistic: every number comes from the report, as report.csv has it.
(function () {
  "use strict";
  const page = JSON.parse(document.getElementById("page-data").textContent);
  const root = document.getElementById("page");
  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf"];
  const PLOT_CONFIG = {displaylogo: false, responsive: true};
  const state = {selection: null, tables: [], highlights: [], curves: [], drawing: []};
  const runs = page.runs || [];
  const groups = page.groups || [];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "text") node.textContent = value; else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  // Numbers as the terminal table shows them: 4 significant digits, "-" where missing.
  function fmt(value) {
    if (value === null || value === undefined || value === "") return "-";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
    const exponent = Math.floor(Math.log10(Math.abs(value)));
    if (value !== 0 && (exponent < -4 || exponent >= 4)) {
      const [mantissa, power] = value.toExponential(3).split("e");
      return `${trimZeros(mantissa)}e${power[0] === "-" ? "-" : "+"}${power.replace(/^[+-]/, "").padStart(2, "0")}`;
    }
    return trimZeros(value.toPrecision(4));
  }

  function trimZeros(text) {
    return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
  }

  // ------------------------------------------------------------------ the header

  function header() {
    const facts = Object.entries(page.facts || {}).map(([k, v]) => `${k}: ${v}`).join(" · ");
    root.append(el("header", {}, el("h1", {text: page.title}),
                   page.subtitle ? el("p", {class: "subtitle", text: page.subtitle}) : null,
                   facts ? el("p", {class: "facts", text: facts}) : null));
    if ((page.notes || []).length) {
      const list = el("ul", {class: "notes"});
      for (const note of page.notes) list.append(el("li", {text: note}));
      root.append(list);
    }
    if (page.brush) {
      const status = el("p", {id: "selection", class: "selection", text: "all runs shown"});
      const clear = el("button", {id: "clear-selection", type: "button", text: "clear the selection"});
      clear.addEventListener("click", clearBrush);
      root.append(el("div", {class: "selection-bar"}, status, clear));
    }
  }

  function section(spec) {
    const box = el("section", {id: spec.id ? `section-${spec.id}` : null, class: `section ${spec.kind}`});
    if (spec.title) box.append(el("h2", {text: spec.title}));
    if (spec.caption) box.append(el("p", {class: "caption", text: spec.caption}));
    root.append(box);
    return box;
  }

  // ------------------------------------------------------------------ facts (a study's claim, verdict)

  function facts(spec, box) {
    if (spec.badge) box.append(el("p", {class: `badge ${spec.badge.replace(/[^a-z_]/g, "")}`, text: spec.badge}));
    const list = el("dl", {});
    for (const [term, text] of spec.items) list.append(el("dt", {text: term}), el("dd", {text: text}));
    box.append(list);
  }

  // ------------------------------------------------------------------ tables

  function table(spec, box) {
    const filter = el("input", {type: "search", class: "filter", placeholder: "filter rows (words, all must match)",
                                "aria-label": `filter ${spec.title || "rows"}`});
    const count = el("span", {class: "count"});
    box.append(el("div", {class: "table-tools"}, filter, count));
    const head = el("tr", {});
    const body = el("tbody", {});
    const view = {spec, body, count, filter, rows: [], sort: null};
    spec.columns.forEach((column, index) => {
      const th = el("th", {scope: "col", "data-col": column.key, title: column.help || null, text: column.label});
      th.addEventListener("click", () => sortBy(view, index));
      head.append(th);
    });
    for (const row of spec.rows) {
      const tr = el("tr", {});
      if (row.runs) tr.dataset.runs = row.runs.join(",");
      for (const column of spec.columns) tr.append(cell(column, row.cells));
      view.rows.push({tr, row, text: tr.textContent.toLowerCase()});
      body.append(tr);
    }
    box.append(el("div", {class: "table-box"}, el("table", {id: spec.id}, el("thead", {}, head), body)));
    filter.addEventListener("input", () => applyRows(view));
    state.tables.push(view);
    applyRows(view);
  }

  function cell(column, cells) {
    const td = el("td", {class: column.type});
    const keys = column.type === "interval" ? column.keys : [column.key];
    const parts = keys.map((key) => {
      const value = cells[key];
      const shown = column.type === "text" ? String(value ?? "") : fmt(value);
      const span = el("span", {"data-col": key, text: shown, title: column.type === "text" ? shown : null});
      if (value !== null && value !== undefined) span.dataset.value = String(value);
      return span;
    });
    if (column.type === "interval") td.append("[", parts[0], ", ", parts[1], "]"); else td.append(parts[0]);
    return td;
  }

  function sortBy(view, index) {
    const column = view.spec.columns[index];
    const key = column.type === "interval" ? column.keys[0] : column.key;
    const ascending = !(view.sort && view.sort.index === index && view.sort.ascending);
    view.sort = {index, ascending};
    const missing = (v) => v === null || v === undefined || v === "";
    view.rows.sort((a, b) => {
      const x = a.row.cells[key], y = b.row.cells[key];
      if (missing(x) || missing(y)) return missing(x) - missing(y);  // missing last, either way
      const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return ascending ? order : -order;
    });
    for (const item of view.rows) view.body.append(item.tr);
    view.body.parentElement.querySelectorAll("th").forEach((th, i) => {
      th.dataset.sort = i === index ? (ascending ? "ascending" : "descending") : "";
    });
  }

  function applyRows(view) {
    const words = view.filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const item of view.rows) {
      const chosen = !state.selection || !item.row.runs || item.row.runs.some((r) => state.selection.has(r));
      const visible = chosen && words.every((w) => item.text.includes(w));
      item.tr.hidden = !visible;
      shown += visible;
    }
    view.count.textContent = `${shown} of ${view.rows.length} rows`;
  }

  // ------------------------------------------------------------------ charts

  function chart(spec, box) {
    const div = el("div", {class: "chart", id: spec.id});
    box.append(div);
    toggles(spec, box, div);
    for (const trace of spec.figure.data) {
      if (trace.meta === "runs" && trace.customdata) trace.text = trace.customdata.map((r) => runs[r].hover);
    }
    const drawn = Plotly.newPlot(div, spec.figure.data, spec.figure.layout, PLOT_CONFIG);
    state.drawing.push(drawn.then(() => { div.dataset.drawn = "1"; }));
    if (spec.role === "brush") drawn.then(() => div.on("plotly_restyle", () => brushed(div)));
    if (spec.role === "highlight") state.highlights.push(div);
  }

  function toggles(spec, box, div) {
    const bar = el("div", {class: "toggles"});
    for (const name of spec.toggles || []) {
      const input = el("input", {type: "checkbox", "data-toggle": name});
      bar.append(el("label", {}, input, ` ${name === "log" ? "log scale" : "each seed's run"}`));
      if (name === "log") {
        input.addEventListener("change", () => Plotly.relayout(div, {"yaxis.type": input.checked ? "log" : "linear"}));
      }
    }
    if (bar.childElementCount) box.append(bar);
    return bar;
  }

  function highlight() {
    for (const div of state.highlights) {
      const indices = [], points = [];
      div.data.forEach((trace, i) => {
        if (!trace.customdata || trace.meta !== "runs") return;
        indices.push(i);
        points.push(state.selection ? trace.customdata.flatMap((r, j) => (state.selection.has(r) ? [j] : [])) : null);
      });
      if (indices.length) Plotly.restyle(div, {selectedpoints: points}, indices);
    }
  }

  // ------------------------------------------------------------------ brushing

  function ranges(constraint) {
    if (!constraint || !constraint.length) return null;
    return Array.isArray(constraint[0]) ? constraint : [constraint];
  }

  function brushed(div) {
    const dims = div.data[0].dimensions;
    const active = dims.map((d, i) => [i, ranges(d.constraintrange)]).filter(([, r]) => r);
    if (!active.length) {
      select(null);
      return;
    }
    const chosen = new Set();
    runs.forEach((_, r) => {
      const inside = active.every(([i, rs]) => {
        const v = page.brush.dims[i].values[r];
        return v !== null && rs.some(([lo, hi]) => v >= lo && v <= hi);
      });
      if (inside) chosen.add(r);
    });
    select(chosen);
  }

  function clearBrush() {
    const div = document.getElementById(page.brush.chart);
    if (!div || !div.data) return;
    const update = {};
    div.data[0].dimensions.forEach((_, i) => { update[`dimensions[${i}].constraintrange`] = null; });
    Plotly.restyle(div, update);  // fires plotly_restyle: brushed() clears the selection
  }

  function select(selection) {
    state.selection = selection;
    const status = document.getElementById("selection");
    if (status) {
      status.textContent = selection ? `${selection.size} of ${runs.length} runs inside the brushed ranges`
                                     : "all runs shown";
    }
    state.tables.forEach(applyRows);
    highlight();
    state.curves.forEach(drawCurves);
  }

  // ------------------------------------------------------------------ learning curves

  function curves(spec, box) {
    const div = el("div", {class: "chart", id: spec.id});
    const note = el("p", {class: "caption curve-note"});
    box.append(div, note);
    const bar = toggles(spec, box, div);
    const view = {spec, div, note, seeds: bar.querySelector("[data-toggle='seeds']")};
    if (view.seeds) view.seeds.addEventListener("change", () => drawCurves(view));
    state.curves.push(view);
    state.drawing.push(drawCurves(view).then(() => { div.dataset.drawn = "1"; }));
  }

  function drawCurves(view) {
    const data = page.curves[view.spec.column];
    const byGroup = new Map(data.groups.map((g) => [g.group, g]));
    const candidates = groups.map((_, g) => g).filter((g) => byGroup.has(g) &&
      (!state.selection || groups[g].runs.some((r) => state.selection.has(r))));
    const shown = candidates.slice(0, page.max_curves);
    const traces = [];
    shown.forEach((g, i) => traces.push(...groupTraces(byGroup.get(g), COLOURS[i % COLOURS.length], data, view)));
    const layout = Object.assign({}, view.spec.layout);
    const yaxis = view.div.layout && view.div.layout.yaxis;
    if (yaxis) layout.yaxis = Object.assign({}, layout.yaxis, {type: yaxis.type});
    view.note.textContent = candidates.length > shown.length
      ? `the best ${shown.length} of ${candidates.length} groups (by the report's rank) are drawn`
      : `${shown.length} group${shown.length === 1 ? "" : "s"} drawn`;
    return Plotly.react(view.div, traces, layout, PLOT_CONFIG);
  }

  function groupTraces(curve, colour, data, view) {
    const label = groups[curve.group].label;
    const traces = [];
    if (curve.low.some((v) => v !== null)) {
      traces.push({x: curve.epoch.concat([...curve.epoch].reverse()), y: curve.high.concat([...curve.low].reverse()),
                   type: "scatter", mode: "lines", fill: "toself", fillcolor: colour, opacity: 0.18,
                   line: {width: 0}, hoverinfo: "skip", showlegend: false, legendgroup: String(curve.group)});
    }
    const hover = curve.epoch.map((_, i) => `${label}<br>epoch ${curve.epoch[i]}: mean ${fmt(curve.mean[i])}` +
      (curve.low[i] !== null ? `, 95% CI [${fmt(curve.low[i])}, ${fmt(curve.high[i])}]` : "") + `, n=${curve.n[i]}`);
    traces.push({x: curve.epoch, y: curve.mean, type: "scatter", mode: "lines+markers", marker: {size: 4},
                 line: {color: colour, width: 2}, name: `${label} (n=${Math.max(...curve.n)})`,
                 legendgroup: String(curve.group), text: hover, hovertemplate: "%{text}<extra></extra>"});
    if (view.seeds && view.seeds.checked) {
      const perRun = new Map(data.runs.map((c) => [c.run, c]));
      for (const r of groups[curve.group].runs) {
        const line = perRun.get(r);
        if (!line || (state.selection && !state.selection.has(r))) continue;
        traces.push({x: line.epoch, y: line.value, type: "scatter", mode: "lines", showlegend: false,
                     legendgroup: String(curve.group), line: {color: colour, width: 1, dash: "dot"},
                     name: runs[r].name, text: line.epoch.map(() => runs[r].hover),
                     hovertemplate: "%{text}<br>%{y}<extra></extra>"});
      }
    }
    return traces;
  }

  // ------------------------------------------------------------------ the page

  function text(spec, box) {
    for (const paragraph of spec.paragraphs || []) box.append(el("p", {text: paragraph}));
  }

  const RENDER = {facts, table, chart, curves, text};

  header();
  for (const spec of page.sections) {
    const box = section(spec);
    try {
      RENDER[spec.kind](spec, box);
    } catch (error) {
      console.error(`optlab page: section ${spec.id || spec.title}: ${error}`);
      box.append(el("p", {class: "error", text: `this section could not be drawn: ${error}`}));
    }
  }
  Promise.all(state.drawing).then(() => {
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.ready = "1";
  }, (error) => console.error(`optlab page: a chart could not be drawn: ${error}`));
})();
