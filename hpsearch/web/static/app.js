// The live pages of hpsearch's web view: poll the JSON endpoints every 2 s and redraw in place.
"use strict";

const POLL_MS = 2000;
const PAGE_ROWS = 500;  // rows per page of the runs table; every run is on some page
const STATUS_ORDER = ["running", "queued", "interrupted", "done", "failed", "timed_out"];
const csrf = document.querySelector('meta[name="csrf-token"]').content;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function fmtNumber(value) {
  if (value === null || value === undefined || value === "") return "";
  if (typeof value !== "number") return typeof value === "string" ? value : JSON.stringify(value);
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return Number(value.toPrecision(4)).toExponential();
  return String(+value.toPrecision(5));
}

function fmtTime(stamp) {
  if (!stamp) return "";
  const d = new Date(stamp * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60), h = Math.floor(m / 60);
  return h ? `${h} h ${m % 60} min` : `${m} min ${Math.floor(seconds % 60)} s`;
}

function statusBadge(status) {
  return el("span", {class: `status s-${status}`}, status);
}

function setLive(ok, text) {
  const live = document.getElementById("live");
  live.textContent = text;
  live.classList.toggle("down", !ok);
}

function poll(url, render) {
  let seen = null;
  async function tick() {
    try {
      const answer = await fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      const tag = answer.headers.get("ETag");
      if (!tag || tag !== seen) render(await answer.json());  // unchanged (304 behind the scenes): keep the page
      seen = tag;
      setLive(true, `live · ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      setLive(false, `no answer from the service (${error.message}); retrying`);
    }
    setTimeout(tick, POLL_MS);
  }
  tick();
}

function fillBody(table, rows) {
  table.tBodies[0].replaceChildren(...rows);
}

function countsOf(search) {
  const c = search.counts || {};
  return {done: c.done || 0, running: c.running || 0, failed: (c.failed || 0) + (c.timed_out || 0),
          queued: (c.queued || 0) + (c.interrupted || 0)};
}

function bestText(search) {
  if (!search.best) return "";
  return `${search.performance_key} = ${fmtNumber(search.best.value)} (${search.best.run})`;
}

function gpuRows(gpus, searchId) {
  return gpus.map((gpu) => {
    const memory = gpu.memory_total_mb ? `${fmtNumber(gpu.memory_used_mb)} / ${fmtNumber(gpu.memory_total_mb)} MB` : "";
    const load = gpu.load === null || gpu.load === undefined ? "" : `${Math.round(gpu.load * 100)} %`;
    const runs = gpu.runs || [];
    const cells = [el("td", {}, gpu.id), el("td", {}, gpu.name || ""), el("td", {class: "num"}, memory),
                   el("td", {class: "num"}, load)];
    if (searchId === undefined) {
      cells.push(el("td", {class: "mono"}, runs.map((r) => `${r.search}/${r.run}`).join(", ")));
    } else {
      const mine = runs.filter((r) => r.search === searchId);
      cells.push(el("td", {class: "mono"}, mine.map((r) => r.run).join(", ")),
                 el("td", {class: "num"}, String(runs.length - mine.length)));
    }
    return el("tr", {}, ...cells);
  });
}

// ---- the searches page

function renderSearches(data) {
  const table = document.getElementById("searches");
  fillBody(table, data.searches.map((s) => {
    const c = countsOf(s);
    return el("tr", {"data-search": s.id},
      el("td", {class: "mono"}, el("a", {href: `search/${encodeURIComponent(s.id)}`}, s.id)),
      el("td", {}, statusBadge(s.state)), el("td", {}, s.kind), el("td", {class: "num"}, s.priority),
      el("td", {class: "num"}, c.done), el("td", {class: "num"}, c.running), el("td", {class: "num"}, c.failed),
      el("td", {class: "num"}, c.queued), el("td", {class: "num"}, s.counts.total), el("td", {}, bestText(s)),
      el("td", {class: "mono muted"}, s.folder));
  }));
  document.getElementById("no-searches").hidden = data.searches.length > 0;
  const service = data.pool.service || {};
  document.getElementById("service").textContent = service.running === false
    ? `The service is not running${service.last_seen ? " (last seen " + fmtTime(service.last_seen) + ")" : ""}.`
    : service.pid ? `Service pid ${service.pid}${service.started ? ", up since " + fmtTime(service.started) : ""}.` : "";
  fillBody(document.getElementById("gpus"), gpuRows(data.pool.gpus || []));
  document.getElementById("gpus").hidden = !(data.pool.gpus || []).length;
  document.getElementById("no-gpus").hidden = (data.pool.gpus || []).length > 0;
}

// ---- the queue page

function renderQueue(data) {
  fillBody(document.getElementById("queue"), data.queue.map((s, i) => {
    const c = countsOf(s);
    return el("tr", {},
      el("td", {class: "num"}, i + 1),
      el("td", {class: "mono"}, el("a", {href: `search/${encodeURIComponent(s.id)}`}, s.id)),
      el("td", {}, statusBadge(s.state)), el("td", {class: "num"}, s.priority),
      el("td", {class: "num"}, c.queued), el("td", {class: "num"}, c.running), el("td", {class: "mono muted"}, s.folder));
  }));
  document.getElementById("empty-queue").hidden = data.queue.length > 0;
}

// ---- one search

const view = {sortKey: "number", sortDir: 1, status: "", page: 0, columns: [], search: null, figuresKey: null};

function runColumns(search) {
  const perf = search.performance_key;
  const columns = [
    {key: "number", label: "#", value: (r) => r.number, num: true},
    {key: "run", label: "run", value: (r) => r.run, mono: true},
    {key: "status", label: "status", value: (r) => r.status, badge: true},
  ];
  if (perf) columns.push({key: "value", label: perf, value: (r) => r.value, num: true, strong: true});
  for (const name of search.grid_keys || []) {
    columns.push({key: "config:" + name, label: name, value: (r) => r.config[name], num: true});
  }
  columns.push(
    {key: "where", label: "where", value: (r) => r.where || ""},
    {key: "started", label: "started", value: (r) => r.started, time: true},
    {key: "duration", label: "duration", value: (r) => duration(r), dur: true, num: true},
    {key: "reason", label: "reason", value: (r) => r.reason || ""},
  );
  return columns;
}

function duration(run) {
  if (!run.started) return null;
  const end = run.ended || (run.status === "running" ? Date.now() / 1000 : null);
  return end ? end - run.started : null;
}

function compare(a, b) {
  const missing = (v) => v === null || v === undefined || v === "";
  if (missing(a) && missing(b)) return 0;
  if (missing(a)) return 1;
  if (missing(b)) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, {numeric: true});
}

function renderHeader(columns) {
  const row = document.querySelector("#runs thead tr");
  row.replaceChildren(...columns.map((c) => {
    const arrow = view.sortKey === c.key ? (view.sortDir > 0 ? " ▲" : " ▼") : "";
    const th = el("th", {"data-key": c.key, title: "sort by " + c.label, class: c.num ? "num" : null}, c.label + arrow);
    th.addEventListener("click", () => {
      view.sortDir = view.sortKey === c.key ? -view.sortDir : (c.key === "value" && !view.search.ascending ? -1 : 1);
      view.sortKey = c.key;
      view.page = 0;
      renderRuns();
    });
    return th;
  }), el("th", {}, "files"));
}

function renderFilter(search) {
  const select = document.getElementById("status-filter");
  const counts = search.counts || {};
  const known = STATUS_ORDER.filter((s) => counts[s])
    .concat(Object.keys(counts).filter((s) => counts[s] && s !== "total" && !STATUS_ORDER.includes(s)));
  const options = [el("option", {value: ""}, `all (${counts.total})`)]
    .concat(known.map((s) => el("option", {value: s}, `${s} (${counts[s]})`)));
  if (view.status && !known.includes(view.status)) options.push(el("option", {value: view.status}, `${view.status} (0)`));
  select.replaceChildren(...options);
  select.value = view.status;
}

function fileLinks(search, run) {
  const base = `${encodeURIComponent(search.id)}/runs/${encodeURIComponent(run.run)}/`;
  const links = [["stdout", "stdout"], ["stderr", "stderr"]];
  if (search.summary_filename) links.push(["summary", "summary"]);
  const cell = el("td", {class: "files"});
  for (const [which, label] of links) {
    cell.append(el("a", {href: base + which, target: "_blank", rel: "noopener"}, label), " ");
  }
  return cell;
}

function renderRuns() {
  const search = view.search;
  const columns = view.columns;
  renderHeader(columns);
  const column = columns.find((c) => c.key === view.sortKey) || columns[0];
  const runs = search.runs.filter((r) => !view.status || r.status === view.status);
  runs.sort((a, b) => {
    const primary = compare(column.value(a), column.value(b));
    const missing = column.value(a) === null || column.value(a) === undefined || column.value(b) === null || column.value(b) === undefined;
    return (missing ? primary : view.sortDir * primary) || a.number - b.number;
  });
  const pages = Math.max(1, Math.ceil(runs.length / PAGE_ROWS));
  view.page = Math.min(Math.max(0, view.page), pages - 1);
  const first = view.page * PAGE_ROWS;
  const shown = runs.slice(first, first + PAGE_ROWS);
  fillBody(document.getElementById("runs"), shown.map((run) => el("tr", {"data-status": run.status, "data-key": run.key},
    ...columns.map((c) => {
      const value = c.value(run);
      const text = c.time ? fmtTime(value) : c.dur ? fmtDuration(value) : fmtNumber(value);
      const cls = [c.num ? "num" : "", c.mono ? "mono" : "", c.strong ? "strong" : "", `col-${c.key.replace(/[^a-z_]/gi, "")}`].join(" ").trim();
      return el("td", {class: cls}, c.badge ? statusBadge(value) : text);
    }),
    fileLinks(search, run))));
  const of = runs.length === search.counts.total ? `${runs.length} runs` : `${runs.length} of ${search.counts.total} runs`;
  document.getElementById("shown").textContent = runs.length > shown.length
    ? `runs ${first + 1}–${first + shown.length} of ${of}` : of;
  document.getElementById("page-info").textContent = `page ${view.page + 1} of ${pages}`;
  document.getElementById("page-prev").disabled = view.page === 0;
  document.getElementById("page-next").disabled = view.page >= pages - 1;
  document.getElementById("pager").hidden = pages === 1;
}

function renderSummary(search) {
  const state = document.getElementById("search-state");
  state.replaceChildren(statusBadge(search.state));
  document.getElementById("search-folder").textContent = search.folder;
  const c = countsOf(search);
  document.getElementById("counts").replaceChildren(
    ...[["done", c.done], ["running", c.running], ["failed", c.failed], ["queued", c.queued], ["total", search.counts.total]]
      .map(([label, n]) => el("span", {class: "count"}, el("b", {}, n), " " + label)));
  document.getElementById("best").textContent = search.best ? "Best: " + bestText(search) : "No run is done with a value yet.";
  const priority = document.getElementById("priority");
  if (document.activeElement !== priority) priority.value = search.priority;
}

function renderPlots(figures) {
  const key = JSON.stringify(figures);
  if (key === view.figuresKey) return;  // nothing new: keep the plots (and the user's zoom) as they are
  view.figuresKey = key;
  const config = {responsive: true, displaylogo: false};
  document.getElementById("no-plots").hidden = !!figures.best;
  for (const [id, figure] of [["plot-best", figures.best], ["plot-parallel", figures.parallel]]) {
    const div = document.getElementById(id);
    div.hidden = !figure;
    if (figure) Plotly.react(div, figure.data, figure.layout, config); else Plotly.purge(div);
  }
  const slices = document.getElementById("plot-slices");
  while (slices.children.length > figures.slices.length) { Plotly.purge(slices.lastChild); slices.lastChild.remove(); }
  figures.slices.forEach((figure, i) => {
    let div = slices.children[i];
    if (!div) { div = el("div", {class: "plot slice"}); slices.append(div); }
    Plotly.react(div, figure.data, figure.layout, config);
  });
}

function renderSearch(data) {
  view.search = data.search;
  view.columns = runColumns(data.search);
  renderSummary(data.search);
  renderFilter(data.search);
  renderRuns();
  const mine = (data.pool.gpus || []).filter((g) => (g.runs || []).some((r) => r.search === data.search.id));
  fillBody(document.getElementById("gpus"), gpuRows(mine, data.search.id));
  document.getElementById("gpus").hidden = !mine.length;
  document.getElementById("no-gpus").hidden = mine.length > 0;
  renderPlots(data.figures);
}

async function act(searchId, action) {
  const result = document.getElementById("action-result");
  const body = action === "priority" ? {n: parseInt(document.getElementById("priority").value, 10)} : {};
  if (action === "cancel" && !window.confirm(`Cancel search ${searchId}? Its running runs are stopped.`)) return;
  try {
    const answer = await fetch(`../api/search/${encodeURIComponent(searchId)}/${action}`, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body)});
    const data = await answer.json();
    result.textContent = data.ok ? `${action}: done` : `${action}: ${data.error}`;
  } catch (error) {
    result.textContent = `${action}: ${error.message}`;
  }
}

function startSearchPage() {
  const searchId = document.body.dataset.search;
  document.getElementById("status-filter").addEventListener("change", (event) => {
    view.status = event.target.value;
    view.page = 0;
    if (view.search) renderRuns();
  });
  for (const [id, step] of [["page-prev", -1], ["page-next", 1]]) {
    document.getElementById(id).addEventListener("click", () => {
      view.page += step;
      if (view.search) renderRuns();
    });
  }
  for (const button of document.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => act(searchId, button.dataset.action));
  }
  poll(`../api/search/${encodeURIComponent(searchId)}`, renderSearch);
}

const page = document.body.dataset.page;
if (page === "searches") poll("api/searches", renderSearches);
else if (page === "queue") poll("api/queue", renderQueue);
else if (page === "search") startSearchPage();
