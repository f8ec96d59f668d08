// sessionware ui: a read-only browser over one session store.
// Hash routes: #/ (sessions), #/s/ID (a session), #/s/ID/c/SEQ (a call's context), #/totals.
// Every text from the store is set with textContent: recorded content is never markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PAGE_EVENTS = 200;
const PAGE_SESSIONS = 50;
const KINDS = ["user", "assistant", "tool", "tool_call", "system_prompt", "hidden", "call", "page_fault",
  "compaction", "summary", "branch", "error"];
const PART_LABELS = {
  system: "system prompt", memory: "memory block", recalled: "recalled pages", recent: "recent turns",
  latest: "latest turn", left_out: "left out (in memory)", system_and_memory: "system + memory block",
};

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function s(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

async function api(path) {
  const res = await fetch("/api/" + path, { headers: { Accept: "application/json" } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

const fmt = {
  n: (v) => (v === null || v === undefined ? "" : Number(v).toLocaleString("en-US")),
  cost(v) {
    if (v === null || v === undefined) return "?";
    const x = Number(v);
    if (x === 0) return "$0";
    const a = Math.abs(x);
    return (x < 0 ? "-$" : "$") + (a < 0.01 ? a.toFixed(6) : a.toFixed(4));
  },
  pct: (v) => (v === null || v === undefined ? "" : (v * 100).toFixed(v * 100 >= 1 || v === 0 ? 0 : 1) + "%"),
  ms: (v) => (v === null || v === undefined ? "" : Math.round(v).toLocaleString("en-US") + " ms"),
  time: (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "") : ""),
};

function main() { return document.getElementById("main"); }

function setNav(which) {
  document.getElementById("nav-sessions").className = which === "sessions" ? "on" : "";
  document.getElementById("nav-totals").className = which === "totals" ? "on" : "";
}

// Set once the page is drawn: after the next frame's layout and paint, not when the DOM is built.
function markReady(view) {
  requestAnimationFrame(() => setTimeout(() => { document.documentElement.dataset.ready = view; }, 0));
}

function showError(err) {
  main().replaceChildren(h("p", { class: "err" }, "Could not load: " + err.message));
  markReady("error");
}

// -- the session list ---------------------------------------------------------------------

const listState = { q: "", sort: "created", desc: true, offset: 0 };
let listTimer = null;

const LIST_COLUMNS = [
  ["id", "session", "id"], ["created", "started", "created_at"], ["updated", "updated", "updated_at"], ["turns", "turns", "turns", true],
  ["calls", "calls", "calls", true], ["tokens", "tokens in / out", null, true],
  ["cache", "cached", "cache_read_share", true], ["cost", "cost", "cost", true],
  ["saved", "saved by cache", "cache_saved_cost", true], [null, "models", "models"],
];

// A response is drawn only if no route() ran since its request was sent: two lists in
// flight (a search typed while the first, partial page asks again) may come back in
// either order, and the one drawn last must be the one asked for last.
async function renderList() {
  setNav("sessions");
  const gen = routeGen;
  const qs = new URLSearchParams({ q: listState.q, sort: listState.sort, desc: listState.desc ? "1" : "0",
    offset: String(listState.offset), limit: String(PAGE_SESSIONS) });
  const data = await api("sessions?" + qs);
  if (gen !== routeGen) return;
  const search = h("input", { type: "search", id: "search", placeholder: "Search id, model, prompt, metadata…",
    value: listState.q, "aria-label": "search sessions" });
  search.addEventListener("input", () => {
    clearTimeout(listTimer);
    listTimer = setTimeout(() => { listState.q = search.value; listState.offset = 0; route(); }, 200);
  });
  const sortSel = h("select", { id: "sort", "aria-label": "sort by" },
    LIST_COLUMNS.filter((c) => c[0]).map(([key, label]) => h("option", { value: key, selected: key === listState.sort }, label)));
  sortSel.addEventListener("change", () => { listState.sort = sortSel.value; listState.offset = 0; route(); });
  const dirBtn = h("button", { id: "direction", onclick: () => { listState.desc = !listState.desc; route(); } },
    listState.desc ? "descending" : "ascending");
  const head = h("tr", {}, LIST_COLUMNS.map(([key, label, , num]) => {
    const cls = [num ? "num" : "", key ? "sortable" : "", key === listState.sort ? "sorted" : "",
      key === listState.sort && !listState.desc ? "asc" : ""].join(" ").trim();
    return h("th", { class: cls || null, onclick: key ? () => {
      if (listState.sort === key) listState.desc = !listState.desc; else { listState.sort = key; listState.desc = true; }
      listState.offset = 0; route();
    } : null }, label);
  }));
  const rows = data.rows.map((r) => h("tr", { "data-id": r.id },
    h("td", { class: "id" }, h("a", { href: "#/s/" + encodeURIComponent(r.id), title: r.system_prompt || r.id }, r.id),
      r.managed ? h("span", { class: "tag managed" }, "managed") : null,
      r.errors ? h("span", { class: "tag err" }, r.errors + " err") : null,
      r.parent_id ? h("span", { class: "tag" }, "child") : null),
    h("td", {}, fmt.time(r.created_at)),
    h("td", {}, fmt.time(r.updated_at)),
    h("td", { class: "num" }, fmt.n(r.turns)),
    h("td", { class: "num" }, fmt.n(r.calls)),
    h("td", { class: "num" }, fmt.n(r.input_tokens) + " / " + fmt.n(r.output_tokens)),
    h("td", { class: "num" }, r.input_tokens ? fmt.pct(r.cache_read_share) : ""),
    h("td", { class: "num" }, r.calls && r.unpriced_calls >= r.calls ? "?" : fmt.cost(r.cost) + (r.unpriced_calls ? "+" : "")),
    h("td", { class: "num" }, r.cache_read_tokens ? (r.cache_saved_cost === null ? "see session" : fmt.cost(r.cache_saved_cost)) : ""),
    h("td", {}, (r.models || []).join(", "))));
  if (data.partial) setTimeout(() => { if (gen === routeGen && location.hash.replace(/^#\/?/, "") === "") route(); }, 400);
  const counted = data.partial ? data.offset + data.rows.length + 1 : data.matched;
  const from = data.rows.length ? data.offset + 1 : 0;
  const to = Math.min(data.offset + data.limit, data.partial ? data.offset + data.rows.length : data.matched);
  const pager = h("div", { class: "pager" },
    h("button", { id: "prev", disabled: data.offset === 0, onclick: () => { listState.offset = Math.max(0, listState.offset - PAGE_SESSIONS); route(); } }, "‹ prev"),
    h("span", { id: "range" }, data.partial ? `${fmt.n(from)}–${fmt.n(to)} (counting…)`
      : `${fmt.n(from)}–${fmt.n(to)} of ${fmt.n(data.matched)}` + (data.matched !== data.total ? ` (matching; ${fmt.n(data.total)} in store)` : "")),
    h("button", { id: "next", disabled: to >= counted, onclick: () => { listState.offset += PAGE_SESSIONS; route(); } }, "next ›"));
  main().replaceChildren(
    h("h1", {}, "Sessions"),
    h("div", { class: "controls" }, search, h("label", {}, "sort ", sortSel), dirBtn),
    data.rows.length ? h("table", { id: "sessions" }, h("thead", {}, head), h("tbody", {}, rows))
      : h("p", { class: "muted" }, data.total || data.partial ? "No session matches." : "No sessions in this store yet."),
    pager);
  if (document.activeElement !== search && listState.q) {
    search.focus();
    search.setSelectionRange(search.value.length, search.value.length);
  }
  markReady("list");
}

// -- charts ---------------------------------------------------------------------------------

// Bins n calls into at most `width` buckets: each bucket's mean, so long sessions stay drawable.
function bins(n, width) {
  const per = Math.max(1, Math.ceil(n / width));
  const out = [];
  for (let i = 0; i < n; i += per) out.push([i, Math.min(n, i + per)]);
  return { per, ranges: out };
}

function mean(col, a, b) {
  let sum = 0, k = 0;
  for (let i = a; i < b; i++) { const v = col[i]; if (v !== null && v !== undefined) { sum += v; k++; } }
  return k ? sum / k : null;
}

function chart(title, series, calls, opts) {
  const W = 600, H = 150, P = 4;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": title });
  const { per, ranges } = bins(calls, 300);
  const bw = (W - 2 * P) / Math.max(ranges.length, 1);
  const stacks = series.filter((x) => x.stack);
  const lines = series.filter((x) => !x.stack);
  const values = ranges.map(([a, b]) => {
    const st = stacks.map((x) => mean(x.col, a, b) || 0);
    const ln = lines.map((x) => mean(x.col, a, b));
    return { st, ln };
  });
  let max = 0;
  for (const v of values) {
    max = Math.max(max, v.st.reduce((p, c) => p + c, 0));
    for (const x of v.ln) if (x !== null) max = Math.max(max, x);
  }
  max = max || 1;
  const y = (v) => H - P - (v / max) * (H - 2 * P);
  // One path per stacked series (a rectangle per bar in it): a few nodes, not thousands.
  const bars = stacks.map(() => []);
  const width = Math.max(bw - (bw > 3 ? 1 : 0), 0.5).toFixed(2);
  values.forEach((v, i) => {
    let base = 0;
    v.st.forEach((val, j) => {
      if (val <= 0) return;
      const top = base + val;
      bars[j].push(`M${(P + i * bw).toFixed(2)} ${y(top).toFixed(2)}h${width}V${y(base).toFixed(2)}h-${width}Z`);
      base = top;
    });
  });
  bars.forEach((d, j) => { if (d.length) svg.append(s("path", { d: d.join(""), fill: stacks[j].color, "data-series": stacks[j].key })); });
  lines.forEach((x, j) => {
    let d = "";
    values.forEach((v, i) => {
      const val = v.ln[j];
      if (val === null) return;
      d += (d ? "L" : "M") + (P + i * bw + bw / 2).toFixed(1) + " " + y(val).toFixed(1);
    });
    if (d) svg.append(s("path", { d, fill: "none", stroke: x.color, "stroke-width": 1.5, "vector-effect": "non-scaling-stroke" }));
  });
  const legend = h("div", { class: "legend" }, series.map((x) => h("span", {}, h("span", { class: "sw bg-" + x.key }), x.label)),
    h("span", {}, `max ${opts.fmt(max)}` + (per > 1 ? ` · each bar: mean of ${per} calls` : "")));
  return h("div", { class: "chart", "data-chart": opts.id }, h("h3", {}, title), svg, legend);
}

function colour(name) { return getComputedStyle(document.documentElement).getPropertyValue("--" + name).trim() || "#888"; }

function charts(series) {
  const n = series.calls;
  if (!n) return h("p", { class: "muted" }, "No provider calls recorded.");
  const uncached = series.input.map((v, i) => v - series.cached[i]);
  const out = [
    chart("Tokens per call", [
      { key: "cached", label: "input read from cache", col: series.cached, color: colour("cached"), stack: true },
      { key: "uncached", label: "input not cached", col: uncached, color: colour("uncached"), stack: true },
      { key: "output", label: "output", col: series.output, color: colour("output"), stack: true },
    ], n, { id: "tokens", fmt: fmt.n }),
    chart("Cost per call ($)", [{ key: "cost", label: "cost", col: series.cost, color: "#1f8a5b" }], n, { id: "cost", fmt: fmt.cost }),
    chart("Latency per call", [
      { key: "latency", label: "latency", col: series.latency, color: "#2f5fd0" },
      { key: "ttft", label: "time to first token", col: series.ttft, color: "#f0a04b" },
    ], n, { id: "latency", fmt: fmt.ms }),
  ];
  if (series.app_input.some((v) => v !== null)) {
    const idx = series.app_input.map((v, i) => (v === null ? -1 : i)).filter((i) => i >= 0);
    const pick = (col) => idx.map((i) => col[i]);
    out.push(chart("Managed calls: app vs wire vs cached input tokens", [
      { key: "app", label: "app asked to send", col: pick(series.app_input), color: colour("app"), stack: false },
      { key: "wire", label: "sent (wire)", col: pick(series.input), color: colour("wire") },
      { key: "cached", label: "read from cache", col: pick(series.cached), color: colour("cached") },
    ], idx.length, { id: "managed", fmt: fmt.n }));
  }
  return h("div", { class: "charts" }, out);
}

// -- one session ----------------------------------------------------------------------------

const sessionState = { id: null, offset: 0, kinds: new Set() };

function card(k, v, sub) { return h("div", { class: "card" }, h("div", { class: "k" }, k), h("div", { class: "v" }, v), sub ? h("div", { class: "s" }, sub) : null); }

function callLine(c, item) {
  const parts = [];
  if (c.model) parts.push(c.provider ? `${c.provider}/${c.model}` : c.model);
  if (c.input_tokens !== null) {
    let cache = c.cache_read_tokens ? ` (${fmt.n(c.cache_read_tokens)} cached)` : "";
    if (c.cache_write_tokens) cache += ` (${fmt.n(c.cache_write_tokens)} cache write)`;
    parts.push(`in ${fmt.n(c.input_tokens)}${cache}`, `out ${fmt.n(c.output_tokens)}`);
    if (c.token_source && c.token_source !== "provider") parts.push(c.token_source);
  }
  if (c.app_input_tokens !== null) parts.push(`app asked ${fmt.n(c.app_input_tokens)} in`);
  parts.push(fmt.cost(c.cost));
  if (c.cache_saved_cost) parts.push(`cache saved ${fmt.cost(c.cache_saved_cost)}`);
  if (c.latency_ms !== null) parts.push(fmt.ms(c.latency_ms));
  if (c.ttft_ms !== null) parts.push("ttft " + fmt.ms(c.ttft_ms));
  if (c.finish_reason) parts.push(c.finish_reason);
  if (item.hidden) parts.push("hidden from the app");
  return parts.join(" · ");
}

function eventRow(item, sid) {
  const cls = ["ev", "k-" + item.kind, item.superseded_by ? "superseded" : "", item.hidden ? "hiddenround" : ""].join(" ");
  const body = [];
  if (item.type === "branch") body.push(h("div", { class: "text" }, `History edited by the app; the conversation continues after #${item.branch_of}.`));
  if (item.tool) {
    body.push(h("div", { class: "toolcall" }, `${item.tool.name}(${item.tool.arguments})`));
    if (item.tool.result) body.push(h("div", { class: "toolcall" }, "→ " + item.tool.result + (item.tool.clipped ? " …" : "")));
  }
  if (item.text) body.push(h("div", { class: "text" }, item.text + (item.clipped ? " …" : "")));
  if (item.clipped || (item.tool && item.tool.clipped)) {
    body.push(h("a", { href: "#", class: "more", onclick: async (e) => {
      e.preventDefault();
      const full = await api(`sessions/${encodeURIComponent(sid)}/events/${item.seq}`);
      e.target.closest(".ev").replaceWith(eventRow(full, sid));
    } }, "show all"));
  }
  for (const c of item.tool_calls || []) body.push(h("div", { class: "toolcall" }, `→ ${c.name}(${c.arguments}) [${c.id}]`));
  if (item.tool_call_id && !item.tool) body.push(h("div", { class: "muted" }, "result of " + item.tool_call_id));
  if (item.error) body.push(h("div", { class: "err" }, `${item.error.type}${item.error.status_code ? " (" + item.error.status_code + ")" : ""}: ${item.error.message}`));
  if (item.managed) body.push(h("div", { class: "callline" }, "managed: " + Object.entries(item.managed).map(([k, v]) => `${k.replace(/_/g, " ")} ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ")));
  if (item.metadata && item.type !== "message") body.push(h("div", { class: "callline" }, JSON.stringify(item.metadata)));
  if (item.call) {
    body.push(h("div", { class: "callline" }, callLine(item.call, item), " · ",
      h("a", { href: `#/s/${encodeURIComponent(sid)}/c/${item.seq}`, class: "ctxlink" }, "context sent")));
  }
  if (item.superseded_by) body.push(h("div", { class: "muted" }, `superseded by the branch at #${item.superseded_by}`));
  return h("div", { class: cls, id: "ev-" + item.seq, "data-seq": item.seq },
    h("div", { class: "head" }, h("span", {}, "#" + item.seq), h("span", {}, fmt.time(item.time)), h("span", { class: "kind" }, item.kind.replace("_", " "))),
    body);
}

function eventsPage(sid) {
  const kinds = [...sessionState.kinds].join(",");
  const qs = new URLSearchParams({ offset: String(sessionState.offset), limit: String(PAGE_EVENTS) });
  if (kinds) qs.set("kinds", kinds);
  return api(`sessions/${encodeURIComponent(sid)}/events?${qs}`);
}

async function loadTimeline(sid, box, pagerBox, loaded) {
  const page = loaded || await eventsPage(sid);
  box.replaceChildren(...page.items.map((it) => eventRow(it, sid)));
  if (!page.items.length) box.append(h("p", { class: "muted" }, "No events of these kinds."));
  const last = Math.min(page.offset + page.limit, page.matched);
  const pages = Math.max(1, Math.ceil(page.matched / PAGE_EVENTS));
  const current = Math.floor(page.offset / PAGE_EVENTS) + 1;
  const go = (off) => { sessionState.offset = off; loadTimeline(sid, box, pagerBox); };
  pagerBox.replaceChildren(
    h("button", { disabled: page.offset === 0, onclick: () => go(0) }, "« first"),
    h("button", { class: "ev-prev", disabled: page.offset === 0, onclick: () => go(Math.max(0, page.offset - PAGE_EVENTS)) }, "‹ prev"),
    h("span", { class: "ev-range" }, `events ${fmt.n(page.matched ? page.offset + 1 : 0)}–${fmt.n(last)} of ${fmt.n(page.matched)} · page ${current} of ${pages}`),
    h("button", { class: "ev-next", disabled: last >= page.matched, onclick: () => go(page.offset + PAGE_EVENTS) }, "next ›"),
    h("button", { disabled: last >= page.matched, onclick: () => go((pages - 1) * PAGE_EVENTS) }, "last »"));
}

async function renderSession(sid, contextSeq) {
  setNav("sessions");
  if (sessionState.id !== sid) { sessionState.id = sid; sessionState.offset = 0; sessionState.kinds = new Set(); }
  const gen = routeGen;
  const enc = encodeURIComponent(sid);
  const [head, series, firstPage] = await Promise.all([api(`sessions/${enc}`), api(`sessions/${enc}/calls`),
    eventsPage(sid)]);
  if (gen !== routeGen) return;
  const t = head.totals;
  const cards = [
    card("calls", fmt.n(t.calls), `${fmt.n(t.errors)} errors · ${fmt.n(t.page_faults)} page faults`),
    card("input tokens", fmt.n(t.input_tokens), t.hidden_input_tokens ? `${fmt.n(t.hidden_input_tokens)} in hidden rounds` : null),
    card("output tokens", fmt.n(t.output_tokens), t.reasoning_tokens ? `${fmt.n(t.reasoning_tokens)} reasoning` : null),
    card("cost", t.calls && t.unpriced_calls >= t.calls ? "?" : fmt.cost(t.cost) + (t.unpriced_calls ? "+" : ""), t.unpriced_calls ? `${t.unpriced_calls} calls without a price` : null),
    card("read from cache", fmt.pct(head.cache.read_share), `${fmt.n(head.cache.cache_read_tokens)} tokens · ${fmt.n(head.cache.cache_write_tokens)} written`),
    card("saved by cache", head.cache.cache_read_tokens || head.cache.cache_write_tokens ? fmt.cost(head.cache.saved_cost) : "—", "net of cache writes"),
  ];
  if (head.managed) {
    const m = head.managed;
    cards.push(card("managed calls: app → wire", `${fmt.n(m.app_input_tokens)} → ${fmt.n(m.wire_input_tokens)}`,
      `${fmt.n(m.calls)} calls · ${fmt.pct(m.app_input_tokens ? 1 - m.wire_input_tokens / m.app_input_tokens : 0)} fewer tokens · ${fmt.n(m.cached_tokens)} cached`));
  }
  const meta = h("dl", { class: "meta" },
    h("dt", {}, "time"), h("dd", {}, `${fmt.time(head.created_at)} → ${fmt.time(head.updated_at)} UTC`),
    head.parent_id ? [h("dt", {}, "parent"), h("dd", {}, h("a", { href: "#/s/" + encodeURIComponent(head.parent_id) }, head.parent_id))] : null,
    head.children.length ? [h("dt", {}, "children"), h("dd", {}, head.children.map((c, i) => [i ? ", " : "", h("a", { href: "#/s/" + encodeURIComponent(c) }, c)]))] : null,
    head.system_prompt ? [h("dt", {}, "system prompt"), h("dd", {}, head.system_prompt)] : null,
    Object.keys(head.metadata).length ? [h("dt", {}, "metadata"), h("dd", {}, JSON.stringify(head.metadata))] : null,
    [h("dt", {}, "models"), h("dd", {}, Object.entries(t.models).map(([m, c]) => `${m} (${c})`).join(", ") || "—")],
    head.runs.length ? [h("dt", {}, "runs"), h("dd", {}, head.runs.map((r) => `${r.id} ${r.status}`).join(", "))] : null);
  const chips = h("div", { class: "chips", id: "kinds" }, KINDS.filter((k) => head.kinds[k]).map((k) => {
    const chip = h("span", { class: "chip" + (sessionState.kinds.has(k) ? " on" : ""), "data-kind": k, role: "button", tabindex: 0 }, `${k.replace("_", " ")} ${fmt.n(head.kinds[k])}`);
    chip.addEventListener("click", () => {
      if (sessionState.kinds.has(k)) sessionState.kinds.delete(k); else sessionState.kinds.add(k);
      chip.classList.toggle("on");
      sessionState.offset = 0;
      loadTimeline(sid, timeline, pager);
    });
    return chip;
  }));
  const timeline = h("div", { class: "timeline", id: "timeline" });
  const pager = h("div", { class: "pager", id: "ev-pager" });
  const contextBox = h("div", { id: "context" });
  main().replaceChildren(
    h("h1", {}, head.id),
    meta, h("div", { class: "cards", id: "cards" }, cards),
    h("h2", {}, "Calls"), charts(series),
    contextBox,
    h("h2", {}, `Timeline (${fmt.n(head.events)} events)`), chips, pager, timeline);
  await loadTimeline(sid, timeline, pager, firstPage);
  if (contextSeq !== null) await renderContext(sid, contextSeq, contextBox);
  if (gen !== routeGen) return;
  markReady(contextSeq !== null ? "context" : "session");
}

async function renderContext(sid, seq, box) {
  const ctx = await api(`sessions/${encodeURIComponent(sid)}/context/${seq}`);
  const total = Object.values(ctx.parts).reduce((a, b) => a + b, 0) || 1;
  const bar = h("div", { class: "partsbar", id: "partsbar" }, Object.entries(ctx.parts).filter(([, v]) => v > 0).map(([k, v]) => {
    const seg = h("div", { class: "bg-" + k, title: `${PART_LABELS[k] || k}: ${fmt.n(v)} ${ctx.basis}`, "data-part": k });
    seg.style.width = (100 * v / total).toFixed(2) + "%";
    return seg;
  }));
  const legend = h("div", { class: "legend" }, Object.entries(ctx.parts).map(([k, v]) =>
    h("span", {}, h("span", { class: "sw bg-" + k }), `${PART_LABELS[k] || k} ${fmt.n(v)} ${ctx.basis === "tokens" ? "tokens" : "chars"}`)));
  const figures = [];
  if (ctx.app_input_tokens !== null) figures.push(`app asked to send ${fmt.n(ctx.app_input_tokens)} tokens`);
  if (ctx.wire_input_tokens !== null) figures.push(`sent ${fmt.n(ctx.wire_input_tokens)} (provider count)`);
  if (ctx.cached_tokens) figures.push(`${fmt.n(ctx.cached_tokens)} read from cache`);
  const list = h("div", { class: "ctx" });
  ctx.messages.forEach((m, i) => {
    if (ctx.omitted && i === ctx.omitted_after) list.append(h("p", { class: "muted" }, `… ${fmt.n(ctx.omitted)} earlier messages not shown`));
    list.append(h("div", { class: "m p-" + m.part, "data-part": m.part },
      h("div", { class: "head" }, `${PART_LABELS[m.part] || m.part} · ${m.role}` + (m.seq ? ` · #${m.seq}` : "") + (m.note ? ` · ${m.note}` : "")),
      h("div", { class: "text" }, m.text + (m.clipped ? " …" : ""))));
  });
  box.replaceChildren(h("div", { class: "panel", id: "context-panel" },
    h("a", { class: "close", href: "#/s/" + encodeURIComponent(sid) }, "close"),
    h("h2", {}, `Context sent for the call #${seq}` + (ctx.model ? ` (${ctx.model})` : "")),
    h("div", { class: "muted" }, figures.join(" · ")),
    ctx.managed && ctx.exact ? h("div", { class: "notice" }, "Managed call: the request's messages, rebuilt from the log by the record the call kept of what it sent; the recall region is shown page by page, the turns kept out of the request are greyed.")
      : ctx.exact ? null : h("div", { class: "notice" }, ctx.managed
      ? "Managed call: the part sizes are the context builder's own counts, recorded with the call; the messages are rebuilt from the log (the wire request itself is not stored), so the boundary between recent and left-out turns is estimated."
      : "Rebuilt from the log."),
    bar, legend, list));
  box.scrollIntoView({ block: "start" });
}

// -- totals ---------------------------------------------------------------------------------

function totalsTable(rows, first, id) {
  return h("table", { id }, h("thead", {}, h("tr", {}, [first, "sessions", "calls", "tokens in", "cached", "cache %", "tokens out", "cost", "saved by cache", "errors"].map((c, i) => h("th", { class: i ? "num" : null }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {},
      h("td", {}, r.key), h("td", { class: "num" }, fmt.n(r.sessions)), h("td", { class: "num" }, fmt.n(r.calls)),
      h("td", { class: "num" }, fmt.n(r.input_tokens)), h("td", { class: "num" }, fmt.n(r.cache_read_tokens)),
      h("td", { class: "num" }, r.input_tokens ? fmt.pct(r.cache_read_share) : ""), h("td", { class: "num" }, fmt.n(r.output_tokens)),
      h("td", { class: "num" }, r.calls && r.unpriced_calls >= r.calls ? "?" : fmt.cost(r.cost) + (r.unpriced_calls ? "+" : "")),
      h("td", { class: "num" }, r.cache_read_tokens || r.cache_write_tokens ? fmt.cost(r.cache_saved_cost) : ""),
      h("td", { class: "num" }, fmt.n(r.errors))))));
}

// Counting 10,000 sessions takes the server seconds the first time: what it has counted
// is drawn at once, marked as partial, and asked for again until it is complete.
async function renderTotals() {
  setNav("totals");
  const gen = routeGen;
  for (;;) {
    const report = await api("totals?wait=0.5");
    if (gen !== routeGen) return;
    drawTotals(report);
    if (!report.partial) { markReady("totals"); return; }
    markReady("totals-partial");
  }
}

function drawTotals(report) {
  const days = report.by_day;
  const dayChart = days.length ? chart("Cost by day ($)", [
    { key: "cost", label: "cost", col: days.map((d) => Number(d.cost)), color: "#1f8a5b", stack: true },
  ], days.length, { id: "days", fmt: fmt.cost }) : null;
  main().replaceChildren(
    h("h1", {}, "Totals"),
    h("p", { class: "muted" }, `All sessions in ${report.store}.`),
    report.partial ? h("p", { class: "notice", id: "counting" }, report.of === null
      ? "Reading the list of sessions…"
      : `Counting: ${fmt.n(report.counted)} of ${fmt.n(report.of)} sessions so far; the figures grow until all are read.`) : null,
    h("h2", {}, "By model"), totalsTable([...report.by_model, report.total], "model", "by-model"),
    h("h2", {}, "By day (UTC)"), dayChart, totalsTable([...days, report.total], "day", "by-day"));
}

// -- routing --------------------------------------------------------------------------------

let routeGen = 0;

async function route() {
  const gen = ++routeGen;
  delete document.documentElement.dataset.ready;
  const hash = location.hash.replace(/^#/, "") || "/";
  const parts = hash.split("/").filter(Boolean);
  try {
    if (parts[0] === "totals") await renderTotals();
    else if (parts[0] === "s" && parts[1]) {
      const sid = decodeURIComponent(parts[1]);
      const seq = parts[2] === "c" && parts[3] ? Number(parts[3]) : null;
      await renderSession(sid, seq);
    } else await renderList();
  } catch (err) {
    if (gen === routeGen) showError(err);
  }
}

window.addEventListener("hashchange", route);
route();
