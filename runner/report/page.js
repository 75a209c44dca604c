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

  const ROWS_SHOWN = 100;  // rows put on the page at first: a thousand-row table's layout costs seconds

  function table(spec, box) {
    const filter = el("input", {type: "search", class: "filter", placeholder: "filter rows (words, all must match)",
                                "aria-label": `filter ${spec.title || "rows"}`});
    const count = el("span", {class: "count"});
    const more = el("button", {type: "button", class: "show-all", hidden: ""});
    box.append(el("div", {class: "table-tools"}, filter, count, more));
    const head = el("tr", {});
    const body = el("tbody", {});
    const view = {spec, body, count, filter, more, limit: ROWS_SHOWN, sort: null,
                  rows: spec.rows.map((row) => ({row, tr: null, text: rowText(spec, row)}))};
    spec.columns.forEach((column, index) => {
      const th = el("th", {scope: "col", "data-col": column.key, title: column.help || null, text: column.label});
      th.addEventListener("click", () => sortBy(view, index));
      head.append(th);
    });
    box.append(el("div", {class: "table-box"}, el("table", {id: spec.id}, el("thead", {}, head), body)));
    filter.addEventListener("input", () => applyRows(view));
    more.addEventListener("click", () => { view.limit = Infinity; applyRows(view); });
    state.tables.push(view);
    applyRows(view);
  }

  function rowText(spec, row) {
    return spec.columns.flatMap((c) => (c.type === "interval" ? c.keys : [c.key]))
      .map((key) => (typeof row.cells[key] === "number" ? fmt(row.cells[key]) : String(row.cells[key] ?? "")))
      .join(" ").toLowerCase();
  }

  function rowElement(view, item) {
    if (!item.tr) {
      item.tr = el("tr", {});
      if (item.row.runs) item.tr.dataset.runs = item.row.runs.join(",");
      for (const column of view.spec.columns) item.tr.append(cell(column, item.row.cells));
    }
    return item.tr;
  }

  function cell(column, cells) {
    const td = el("td", {class: column.type});
    const keys = column.type === "interval" ? column.keys : [column.key];
    const parts = keys.map((key) => {
      const value = cells[key];
      const text = column.type === "text" || column.type === "longtext";
      const shown = text ? String(value ?? "") : fmt(value);
      const span = el("span", {"data-col": key, text: shown, title: text ? shown : null});
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
    applyRows(view);
    view.body.parentElement.querySelectorAll("th").forEach((th, i) => {
      th.dataset.sort = i === index ? (ascending ? "ascending" : "descending") : "";
    });
  }

  function applyRows(view) {
    const words = view.filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    const matching = view.rows.filter((item) => {
      const chosen = !state.selection || !item.row.runs || item.row.runs.some((r) => state.selection.has(r));
      return chosen && words.every((w) => item.text.includes(w));
    });
    const shown = matching.slice(0, view.limit);
    view.body.replaceChildren(...shown.map((item) => rowElement(view, item)));
    view.count.textContent = `${matching.length} of ${view.rows.length} rows` +
      (shown.length < matching.length ? ` (the first ${shown.length} shown)` : "");
    view.count.dataset.matching = String(matching.length);
    view.more.hidden = shown.length === matching.length;
    view.more.textContent = `show all ${matching.length}`;
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
    if (spec.role === "highlight") state.highlights.push(div);
  }

  function toggles(spec, box, div) {
    const bar = el("div", {class: "toggles"});
    for (const name of spec.toggles || []) {
      const input = el("input", {type: "checkbox", "data-toggle": name});
      bar.append(el("label", {}, input, ` ${name === "log" ? "log scale" : "each seed's run"}`));
      if (name === "log") {
        input.addEventListener("change", () => Plotly.relayout(div, {"yaxis.type": input.checked ? "log" : "linear",
                                                                     "yaxis.dtick": input.checked ? 1 : null}));
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

  // ------------------------------------------------------------------ parallel coordinates (SVG)

  const SVG = "http://www.w3.org/2000/svg";
  const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
                   "#b5de2b", "#fde725"];
  const PC = {height: 440, top: 80, bottom: 34, left: 70, right: 110};
  const LABEL_CHAR_PX = 7;  // an axis label's character at 12px bold, about

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    return node;
  }

  function extent(values, given) {
    if (given) return given;
    const finite = values.filter((v) => v !== null);
    let lo = Math.min(...finite), hi = Math.max(...finite);
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    return [lo, hi];
  }

  function niceTicks(lo, hi) {
    const raw = (hi - lo) / 5, power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
    return ticks;
  }

  function parcoords(spec, box) {
    const dims = page.brush.dims;
    const width = Math.max(640, Math.min(1160, window.innerWidth - 80));  // not box.clientWidth: a forced layout
    const plot = svg("svg", {width, height: PC.height, class: "parcoords", id: spec.id, role: "img"});
    const gap = (width - PC.left - PC.right) / Math.max(1, dims.length - 1);
    const scales = dims.map((d, i) => {
      const [lo, hi] = extent(d.values, d.range);
      const x = PC.left + i * gap;
      return {x, lo, hi, y: (v) => PC.top + (1 - (v - lo) / (hi - lo)) * (PC.height - PC.top - PC.bottom)};
    });
    const colour = colourOf(dims[dims.length - 1].values);
    const lines = svg("g", {class: "lines"});
    const markup = [];  // one string for every line: a thousand createElementNS calls cost far more
    runs.forEach((_, r) => {
      if (dims.some((d) => d.values[r] === null)) return;
      const points = dims.map((d, i) => `${scales[i].x.toFixed(1)},${scales[i].y(d.values[r]).toFixed(1)}`);
      markup.push(`<path d="M${points.join("L")}" stroke="${colour(r)}" data-run="${r}"></path>`);
    });
    lines.innerHTML = markup.join("");
    const paths = new Map([...lines.children].map((path) => [Number(path.dataset.run), path]));
    plot.append(lines);
    dims.forEach((d, i) => plot.append(axis(d, i, scales[i], gap)));
    plot.append(colourBar(dims[dims.length - 1], width));
    const tip = el("div", {class: "tooltip", hidden: ""});
    lines.addEventListener("mouseover", (event) => {  // one listener for every line: no per-line nodes
      const r = event.target.dataset.run;
      if (r === undefined) return;
      tip.innerHTML = runs[Number(r)].hover;
      tip.hidden = false;
    });
    lines.addEventListener("mousemove", (event) => {
      tip.style.left = `${event.clientX + 14}px`;
      tip.style.top = `${event.clientY + 10}px`;
    });
    lines.addEventListener("mouseout", () => { tip.hidden = true; });
    box.append(plot, tip);
    state.parcoords = {plot, paths, scales, constraints: new Map()};
    plot.dataset.drawn = "1";
  }

  function colourOf(values) {
    const finite = values.filter((v) => v !== null);
    const lo = Math.min(...finite), hi = Math.max(...finite);
    return (r) => {
      let t = hi > lo ? (values[r] - lo) / (hi - lo) : 1;
      if (!page.brush.maximize) t = 1 - t;  // the better end is always yellow
      return VIRIDIS[Math.min(VIRIDIS.length - 1, Math.floor(t * VIRIDIS.length))];
    };
  }

  function axis(dim, i, scale, gap) {
    const group = svg("g", {class: "axis", "data-dim": i});
    const bottom = PC.height - PC.bottom;
    group.append(svg("line", {x1: scale.x, x2: scale.x, y1: PC.top, y2: bottom, class: "axis-line"}));
    const integral = dim.values.every((v) => v === null || Number.isInteger(v));  // depth, width: no 2.5
    const ticks = dim.tickvals ? dim.tickvals.map((v, k) => [v, dim.ticktext[k]])
                               : niceTicks(scale.lo, scale.hi).filter((v) => !integral || Number.isInteger(v))
                                   .map((v) => [v, fmt(v)]);
    for (const [value, text] of ticks) {
      if (value < scale.lo - 1e-12 || value > scale.hi + 1e-12) continue;
      const y = scale.y(value);
      group.append(svg("line", {x1: scale.x - 4, x2: scale.x, y1: y, y2: y, class: "tick"}));
      const label = svg("text", {x: scale.x - 7, y: y + 4, "text-anchor": "end", class: "tick-label"});
      label.textContent = text;
      group.append(label);
    }
    // Close axes take turns at two heights, so each label has two gaps of room; longer ones are cut.
    const stagger = gap < 180 ? (i % 2) * 18 : 0;
    const room = Math.floor((gap < 180 ? 2 * gap : gap) / LABEL_CHAR_PX);
    const name = svg("text", {x: scale.x, y: PC.top - 40 + stagger, "text-anchor": "middle", class: "axis-label"});
    name.textContent = dim.label.length > room ? `${dim.label.slice(0, Math.max(4, room - 1))}…` : dim.label;
    const full = svg("title", {});
    full.textContent = dim.label;
    name.append(full);
    group.append(name);
    const band = svg("rect", {x: scale.x - 7, width: 14, y: 0, height: 0, class: "brush-range", visibility: "hidden"});
    const target = svg("rect", {x: scale.x - 14, width: 28, y: PC.top - 6, height: bottom - PC.top + 12,
                                class: "brush-target", "data-dim": i});
    group.append(band, target);
    dragToBrush(target, band, i, scale);
    return group;
  }

  function dragToBrush(target, band, i, scale) {
    const valueAt = (y) => scale.lo + (1 - (y - PC.top) / (PC.height - PC.top - PC.bottom)) * (scale.hi - scale.lo);
    const clamp = (y) => Math.min(PC.height - PC.bottom, Math.max(PC.top, y));
    let start = null;
    const yOf = (event) => clamp(event.clientY - target.ownerSVGElement.getBoundingClientRect().top);
    target.addEventListener("pointerdown", (event) => {
      start = yOf(event);
      target.setPointerCapture(event.pointerId);
    });
    target.addEventListener("pointermove", (event) => {
      if (start === null) return;
      const y = yOf(event);
      band.setAttribute("y", Math.min(start, y));
      band.setAttribute("height", Math.abs(y - start));
      band.setAttribute("visibility", "visible");
    });
    target.addEventListener("pointerup", (event) => {
      if (start === null) return;
      const y = yOf(event);
      const moved = Math.abs(y - start) > 2;
      start = moved ? [valueAt(Math.max(start, y)), valueAt(Math.min(start, y))] : null;
      brushAxis(i, start);
      start = null;
    });
  }

  // One axis's range in its own units (log10 for a log axis), or null to drop it. Exposed for
  // scripts as optlabPage.brushAxis(i, [low, high]).
  function brushAxis(i, range) {
    const view = state.parcoords;
    const group = view.plot.querySelector(`g.axis[data-dim="${i}"]`);
    const band = group.querySelector(".brush-range");
    const target = group.querySelector(".brush-target");
    if (range) {
      const [lo, hi] = range;
      view.constraints.set(i, [lo, hi]);
      band.setAttribute("y", view.scales[i].y(hi));
      band.setAttribute("height", view.scales[i].y(lo) - view.scales[i].y(hi));
      band.setAttribute("visibility", "visible");
      target.dataset.low = String(lo);
      target.dataset.high = String(hi);
    } else {
      view.constraints.delete(i);
      band.setAttribute("visibility", "hidden");
      delete target.dataset.low;
      delete target.dataset.high;
    }
    brushed();
  }

  function colourBar(dim, width) {
    const group = svg("g", {class: "colour-bar"});
    const x = width - PC.right + 50, height = PC.height - PC.top - PC.bottom;
    VIRIDIS.forEach((c, k) => {
      const step = height / VIRIDIS.length;
      const y = page.brush.maximize ? PC.top + (VIRIDIS.length - 1 - k) * step : PC.top + k * step;
      group.append(svg("rect", {x, y, width: 12, height: step + 0.5, fill: c}));
    });
    const finite = dim.values.filter((v) => v !== null);
    [[Math.max(...finite), PC.top + 4], [Math.min(...finite), PC.height - PC.bottom]].forEach(([v, y]) => {
      const label = svg("text", {x: x + 16, y, class: "tick-label"});
      label.textContent = fmt(v);
      group.append(label);
    });
    return group;
  }

  function brushed() {
    const active = [...state.parcoords.constraints.entries()];
    if (!active.length) {
      select(null);
      return;
    }
    const chosen = new Set();
    runs.forEach((_, r) => {
      const inside = active.every(([i, [lo, hi]]) => {
        const v = page.brush.dims[i].values[r];
        return v !== null && v >= lo && v <= hi;
      });
      if (inside) chosen.add(r);
    });
    select(chosen);
  }

  function clearBrush() {
    if (!state.parcoords) return;
    for (const i of [...state.parcoords.constraints.keys()]) brushAxis(i, null);
  }

  function shadeLines() {
    if (!state.parcoords) return;
    for (const [r, path] of state.parcoords.paths) {
      path.classList.toggle("unselected", Boolean(state.selection) && !state.selection.has(r));
    }
  }

  function select(selection) {
    state.selection = selection;
    const status = document.getElementById("selection");
    if (status) {
      status.textContent = selection ? `${selection.size} of ${runs.length} runs inside the brushed ranges`
                                     : "all runs shown";
    }
    state.tables.forEach(applyRows);
    shadeLines();
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
                 line: {color: colour, width: 2}, name: `${groups[curve.group].legend} (n=${Math.max(...curve.n)})`,
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

  const RENDER = {facts, table, chart, curves, parcoords};
  window.optlabPage = {brushAxis: (i, range) => brushAxis(i, range), clear: () => clearBrush()};

  header();
  const timings = {script: Math.round(performance.now())};
  for (const spec of page.sections) {
    const box = section(spec);
    const started = performance.now();
    try {
      RENDER[spec.kind](spec, box);
      timings[spec.id || spec.kind] = Math.round(performance.now() - started);
    } catch (error) {
      console.error(`optlab page: section ${spec.id || spec.title}: ${error}`);
      box.append(el("p", {class: "error", text: `this section could not be drawn: ${error}`}));
    }
  }
  // When every chart has drawn: the page's own clock from navigation start (readyMs) and each
  // section's milliseconds, which the browser tests and the README's opening times read.
  Promise.all(state.drawing).then(() => {
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.timings = JSON.stringify(timings);
    document.body.dataset.ready = "1";
  }, (error) => console.error(`optlab page: a chart could not be drawn: ${error}`));
})();
