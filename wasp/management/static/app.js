// wasp Manager: the pages of the management site. Plain ES modules, no build step, nothing from
// the internet. Every number comes from /api/*, which the site answers from the admin API.
// Text from the server is only ever put in the page as text (textContent), never as HTML.

import { h, fmtBytes, fmtDuration, table } from "/static/dom.js";
import { pages as configPages } from "/static/config.js";

const POLL_MS = 2000;
let session = null;
let timer = null;
let current = null;

export async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: {}, credentials: "same-origin" };
  if (init.method !== "GET") init.headers["X-CSRF-Token"] = session ? session.csrf : "";
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch("/api/" + path, init);
  if (response.status === 401) { location.href = "/login"; throw new Error("not logged in"); }
  let payload = null;
  try { payload = await response.json(); } catch (e) { payload = { error: `HTTP ${response.status}` }; }
  if (!response.ok) {
    const err = new Error((payload && payload.error) || `HTTP ${response.status}`);
    err.status = response.status; err.payload = payload;
    throw err;
  }
  return payload;
}

export function flash(text, ok = true) {
  const box = document.getElementById("flash");
  box.replaceChildren(h("p", { class: ok ? "ok" : "error", id: "flash-message" }, text));
}

export async function action(path, label, options = {}) {
  flash(`${label}…`);
  try {
    const answer = await api(path, { method: "POST", body: options.body });
    flash((answer && answer.message) || `${label}: done`);
    return answer;
  } catch (e) {
    flash(`${label} failed: ${e.message}`, false);
    if (options.rethrow) throw e;
    return null;
  }
}

function stateCell(state) { return h("span", { class: `state-${state}` }, state); }

// ---------------------------------------------------------------- overview
let last = null;
const overview = {
  title: "Overview",
  async render(main) {
    const s = await api("status");
    const now = performance.now();
    const served = {};
    let total = 0;
    for (const p of s.pools) { served[p.name] = p.served; total += p.served; }
    const rate = (name) => {
      if (!last) return "–";
      const dt = (now - last.at) / 1000;
      const before = name === null ? last.total : last.served[name];
      const after = name === null ? total : served[name];
      if (before === undefined || dt <= 0) return "–";
      return (Math.max(0, after - before) / dt).toFixed(1);
    };
    const srv = s.server;
    const byteRate = (key) => {
      if (!last || last[key] === undefined) return "";
      const dt = (now - last.at) / 1000;
      return dt > 0 ? ` · ${fmtBytes(Math.max(0, srv[key] - last[key]) / dt)}/s` : "";
    };
    main.replaceChildren(
      h("h2", {}, "Server"),
      h("div", { class: "cards" },
        card("State", stateCell(srv.state)), card("Connections", String(srv.connections), "connections"),
        card("Requests/s", rate(null), "rps"), card("Requests served", String(total), "served"),
        card("Bytes sent", fmtBytes(srv.bytes_sent) + byteRate("bytes_sent"), "sent"),
        card("Bytes received", fmtBytes(srv.bytes_received) + byteRate("bytes_received"), "received"),
        card("Uptime", fmtDuration(srv.uptime_s)), card("Cache", `${s.cache.entries} · ${fmtBytes(s.cache.bytes)}`),
        card("Fronts", `${srv.fronts_answering}/${srv.fronts}`), card("Version", `wasp ${srv.version} · pid ${srv.pid}`)),
      h("h3", {}, "Application pools"),
      table(["Pool", "State", "Workers", "Queue", "In flight", "Rejected", "Served", "Requests/s"],
        s.pools.map((p) => [p.name, stateCell(p.state), String(p.workers), num(p.queue), num(p.inflight),
          num(p.rejected), num(p.served), rate(p.name)]), { id: "overview-pools" }),
      h("h3", {}, "Sites"),
      table(["Site", "ID", "State", "Bindings"], s.sites.map((x) => [x.name, String(x.id), stateCell(x.state), x.bindings.join("  ")])),
      h("h3", {}, "Last events"),
      eventsTable(s.events.slice().reverse()),
    );
    last = { at: now, total, served, bytes_sent: srv.bytes_sent, bytes_received: srv.bytes_received };
  },
  refresh: POLL_MS,
};

function num(v) { return v === undefined || v === null ? "–" : String(v); }
function card(key, value, id) {
  return h("div", { class: "card", id: id ? `card-${id}` : undefined }, h("div", { class: "k" }, key), h("div", { class: "v" }, value));
}

// ---------------------------------------------------------------- sites
const sitesPage = {
  title: "Sites",
  async render(main) {
    const [sites, apps] = await Promise.all([api("sites"), api("apps")]);
    const rows = sites.map((s) => [s.name, String(s.id), stateCell(s.state), h("div", {}, ...s.bindings.map((b) => h("div", {}, b))),
      h("div", {}, ...apps.filter((a) => a.site_id === s.id).map((a) => h("div", {}, `${a.path} → ${a.pool}${a.app ? ` (${a.app})` : ""}`))),
      h("div", {},
        h("button", { onclick: () => action(`sites/${encodeURIComponent(s.name)}/start`, `Start site "${s.name}"`).then(() => show()) }, "Start"), " ",
        h("button", { onclick: () => action(`sites/${encodeURIComponent(s.name)}/stop`, `Stop site "${s.name}"`).then(() => show()) }, "Stop"))]);
    main.replaceChildren(h("h2", {}, "Sites"),
      table(["Site", "ID", "State", "Bindings", "Applications", "Actions"], rows, { id: "sites-table" }),
      ...(configPages.siteTools ? [configPages.siteTools(sites)] : []));
  },
};

// ---------------------------------------------------------------- pools
const poolsPage = {
  title: "Application Pools",
  async render(main) {
    const [pools, workers] = await Promise.all([api("pools"), api("wp")]);
    const rows = pools.map((p) => {
      const pids = workers.filter((w) => w.pool === p.name).map((w) => w.pid);
      const verb = (v, label) => h("button", { "data-pool": p.name, "data-verb": v, onclick: async (ev) => {
        ev.target.disabled = true;
        await action(`pools/${encodeURIComponent(p.name)}/${v}`, `${label} "${p.name}"`);
        show();
      } }, label);
      return [p.name, stateCell(p.state), String(p.workers), h("span", { class: "pids" }, pids.join(" ")),
        num(p.queue), p.start_mode, p.recycle === "ok" ? "ok" : h("span", { class: "bad" }, p.recycle),
        h("div", {}, verb("start", "Start"), " ", verb("stop", "Stop"), " ", verb("recycle", "Recycle"),
          ...(configPages.poolEditorLink ? [" ", configPages.poolEditorLink(p.name)] : []))];
    });
    main.replaceChildren(h("h2", {}, "Application Pools"),
      table(["Pool", "State", "Workers", "PIDs", "Queue", "Start mode", "Recycling", "Actions"], rows, { id: "pools-table" }),
      ...(configPages.poolTools ? [configPages.poolTools()] : []));
  },
  refresh: POLL_MS * 2,
};

// ---------------------------------------------------------------- workers
const workersPage = {
  title: "Worker Processes",
  async render(main) {
    const [workers, requests] = await Promise.all([api("wp"), api("requests").catch(() => [])]);
    const stacks = main.querySelector("#stacks");
    const blocks = [h("h2", {}, "Worker Processes"),
      table(["PID", "Pool", "State", "Uptime", "Requests", "Memory (RSS)", ""], workers.map((w) => [String(w.pid), w.pool,
        stateCell(w.state), fmtDuration(w.uptime_s), String(w.requests), fmtBytes(w.rss),
        h("button", { "data-stacks": String(w.pid), onclick: () => dumpStacks(w.pid) }, "Thread stacks")]), { id: "workers-table" }),
      h("h3", {}, "Requests in flight"),
      requests.length ? table(["Pool", "Worker", "Method", "URL", "Stage", "Module", "Elapsed", "Client"], requests.map((r) => [
        r.pool, String(workerPid(workers, r.worker_id)), r.method, r.url, r.stage, r.module || "", `${r.elapsed_ms} ms`,
        (r.client || []).join(":")]), { id: "requests-table" }) : h("p", { class: "muted" }, "No request is in flight."),
      stacks || h("div", { id: "stacks" })];
    main.replaceChildren(...blocks);
  },
  refresh: POLL_MS,
};

function workerPid(workers, id) {
  const w = workers.find((x) => x.worker_id === id);
  return w ? w.pid : "";
}

async function dumpStacks(pid) {
  const answer = await action(`wp/${pid}/stacks`, `Thread stacks of ${pid}`);
  if (!answer) return;
  const box = document.getElementById("stacks");
  if (box) box.replaceChildren(h("h3", {}, `Thread stacks of worker ${pid} (pool ${answer.pool})`), h("pre", { id: "stacks-text" }, answer.stacks));
}

// ---------------------------------------------------------------- events
const eventsFilter = { level: "", id: "", pool: "", text: "" };
const eventsPage = {
  title: "Events",
  async render(main) {
    const events = (await api("events", {})).slice().reverse();
    const pools = [...new Set(events.map((e) => e.pool).filter(Boolean))].sort();
    const shown = events.filter((e) => (!eventsFilter.level || e.level === eventsFilter.level)
      && (!eventsFilter.id || String(e.id) === eventsFilter.id.trim())
      && (!eventsFilter.pool || e.pool === eventsFilter.pool)
      && (!eventsFilter.text || e.message.toLowerCase().includes(eventsFilter.text.toLowerCase())));
    const filters = main.querySelector(".filters") || h("div", { class: "filters" },
      filterSelect("Level", "level", ["", "Information", "Warning", "Error"]),
      filterInput("Event id", "id"), filterSelect("Pool", "pool", ["", ...pools]), filterInput("Text", "text"));
    main.replaceChildren(h("h2", {}, "Events"), filters, h("p", { class: "muted" }, `${shown.length} of ${events.length} events`),
      eventsTable(shown, "events-table"));
  },
  refresh: POLL_MS * 2,
};

function filterInput(label, key) {
  return h("label", {}, label, h("input", { value: eventsFilter[key], "data-filter": key, oninput: (ev) => { eventsFilter[key] = ev.target.value; show(); } }));
}
function filterSelect(label, key, options) {
  return h("label", {}, label, h("select", { "data-filter": key, onchange: (ev) => { eventsFilter[key] = ev.target.value; show(); } },
    ...options.map((o) => h("option", { value: o, selected: o === eventsFilter[key] ? "" : undefined }, o || "(any)"))));
}

function eventsTable(events, id) {
  return table(["Time", "Level", "Id", "Pool", "Message"], events.map((e) => [e.time.replace("T", " ").replace("Z", ""),
    h("span", { class: e.level === "Error" ? "bad" : e.level === "Warning" ? "warn" : "" }, e.level), String(e.id), e.pool || "", e.message]), { id });
}

// ---------------------------------------------------------------- logs
const logsState = { kind: "access", site: "", lines: "200" };
const logsPage = {
  title: "Logs",
  async render(main) {
    const sites = await api("sites");
    if (!logsState.site && sites.length) logsState.site = String(sites[0].id);
    const query = new URLSearchParams({ kind: logsState.kind, lines: logsState.lines });
    if (logsState.kind === "access") query.set("site", logsState.site);
    const log = await api("logs?" + query.toString());
    const controls = h("div", { class: "filters" },
      h("label", {}, "Log", h("select", { id: "log-kind", onchange: (ev) => { logsState.kind = ev.target.value; show(); } },
        h("option", { value: "access", selected: logsState.kind === "access" ? "" : undefined }, "Access log (W3C)"),
        h("option", { value: "httperr", selected: logsState.kind === "httperr" ? "" : undefined }, "HTTPERR"))),
      h("label", {}, "Site", h("select", { id: "log-site", disabled: logsState.kind !== "access" ? "" : undefined, onchange: (ev) => { logsState.site = ev.target.value; show(); } },
        ...sites.map((s) => h("option", { value: String(s.id), selected: String(s.id) === logsState.site ? "" : undefined }, `${s.name} (W3SVC${s.id})`)))),
      h("label", {}, "Lines", h("select", { onchange: (ev) => { logsState.lines = ev.target.value; show(); } },
        ...["50", "200", "1000"].map((n) => h("option", { value: n, selected: n === logsState.lines ? "" : undefined }, n)))));
    main.replaceChildren(h("h2", {}, "Logs"), controls, h("p", { class: "muted" }, log.file || "No log file yet."), w3cTable(log.lines));
  },
  refresh: POLL_MS * 3,
};

function w3cTable(lines) {
  let fields = null;
  const rows = [];
  for (const line of lines) {
    if (line.startsWith("#Fields:")) { fields = line.slice(8).trim().split(" "); continue; }
    if (line.startsWith("#")) continue;
    rows.push(line.split(" "));
  }
  if (!fields) return h("pre", { id: "log-text" }, lines.join("\n"));
  return table(fields, rows.reverse(), { id: "log-table" });
}

// ---------------------------------------------------------------- failed request traces
const tracesState = { site: "", status: "", page: 1 };
const tracesPage = {
  title: "Failed Request Traces",
  async render(main) {
    const sites = await api("sites");
    const query = new URLSearchParams({ page: String(tracesState.page) });
    if (tracesState.site) query.set("site", tracesState.site);
    if (tracesState.status) query.set("status", tracesState.status);
    const answer = await api("traces?" + query.toString());
    const pages = Math.max(1, Math.ceil(answer.total / answer.per_page));
    const go = (page) => { tracesState.page = page; show(); };
    const rows = answer.rows.map((t) => [
      h("a", { href: "/trace?" + new URLSearchParams({ site: String(t.site_id), name: t.file }).toString(), class: "trace-link" }, t.url),
      t.statuscode, `${t.time_taken} ms`, t.verb, t.date, t.name, t.apppool, t.failure_reason]);
    main.replaceChildren(
      h("h2", {}, "Failed Request Traces"),
      h("div", { class: "filters" },
        h("label", {}, "Site", h("select", { id: "trace-site", onchange: (ev) => { tracesState.site = ev.target.value; tracesState.page = 1; show(); } },
          h("option", { value: "" }, "All sites"),
          ...sites.map((s) => h("option", { value: String(s.id), selected: String(s.id) === tracesState.site ? "" : undefined }, `${s.name} (W3SVC${s.id})`)))),
        h("label", {}, "Status", h("input", { id: "trace-status", value: tracesState.status, placeholder: "404, 500.19, 5",
          onchange: (ev) => { tracesState.status = ev.target.value.trim(); tracesState.page = 1; show(); } }))),
      answer.rows.length ? table(["URL", "Status", "Time taken", "Verb", "Date", "File", "App pool", "Reason"], rows, { id: "traces" })
        : h("p", { class: "muted", id: "no-traces" }, "No trace files (a site's trace_failed_requests_logging must be enabled and a rule must match)."),
      h("p", { class: "pager" },
        h("button", { id: "traces-prev", disabled: answer.page <= 1 ? "" : undefined, onclick: () => go(answer.page - 1) }, "Newer"),
        ` page ${answer.page} of ${pages} (${answer.total} traces) `,
        h("button", { id: "traces-next", disabled: answer.page >= pages ? "" : undefined, onclick: () => go(answer.page + 1) }, "Older")));
  },
};

// ---------------------------------------------------------------- router
const pages = { overview, sites: sitesPage, pools: poolsPage, workers: workersPage, events: eventsPage, logs: logsPage, traces: tracesPage, ...configPages.routes };

export async function show() {
  const [name, ...args] = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  const page = pages[name] || overview;
  if (page !== current) { last = null; document.getElementById("main").replaceChildren(); }
  current = page;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  document.title = `${page.title} · wasp Manager`;
  clearTimeout(timer);
  const main = document.getElementById("main");
  try {
    await page.render(main, args.map(decodeURIComponent));
  } catch (e) {
    main.replaceChildren(h("p", { class: "error" }, `Could not load ${page.title}: ${e.message}`));
  }
  if (page.refresh) timer = setTimeout(() => { if (current === page) show(); }, page.refresh);
}

async function start() {
  session = await api("session");
  document.getElementById("user").textContent = session.user;
  document.getElementById("logout").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": session.csrf }, credentials: "same-origin" });
    location.href = "/login";
  });
  window.addEventListener("hashchange", () => show());
  show();
}

start();
