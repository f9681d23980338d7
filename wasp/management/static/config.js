// Configuration pages: the pool settings editor, new pools and applications, and the
// configuration history with diffs and rollback. Changes go to /api/config/changes (the admin
// API's POST /config/changes: validated, written to wasp.toml with comments kept, applied, kept
// in the history); the editor checks each value as it is typed with /api/validate/pool, which
// runs the server's own loader over the pool's settings.

import { h, table } from "/static/dom.js";
import { api, action, flash, show } from "/static/app.js";

// ---------------------------------------------------------------- value <-> text
function durationText(seconds) {
  const s = Number(seconds);
  if (!s) return "0s";
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) if (s % size === 0) return `${s / size}${unit}`;
  return `${s}s`;
}

function toText(field, value) {
  if (value === null || value === undefined) return "";
  switch (field.kind) {
    case "duration": return durationText(value);
    case "list": case "set": return value.join(", ");
    case "dict": return Object.entries(value).map(([k, v]) => `${k}=${v}`).join("\n");
    case "bool": return value ? "true" : "false";
    default: return String(value);
  }
}

// The TOML value of a field's text, or throws with what is wrong (checked before the server).
function fromText(field, text) {
  const t = text.trim();
  switch (field.kind) {
    case "bool": return t === "true";
    case "int": {
      if (!/^-?\d+$/.test(t)) throw new Error("a whole number");
      const n = Number(t);
      if (field.min !== null && n < field.min) throw new Error(`at least ${field.min}`);
      if (field.max !== null && n > field.max) throw new Error(`at most ${field.max}`);
      return n;
    }
    case "float": if (!/^-?\d+(\.\d+)?$/.test(t)) throw new Error("a number"); return Number(t);
    case "duration": case "size": return /^\d+$/.test(t) ? Number(t) : t;
    case "list": case "set": return t ? t.split(",").map((x) => x.trim()).filter(Boolean) : [];
    case "dict": {
      const out = {};
      for (const line of t.split("\n").map((x) => x.trim()).filter(Boolean)) {
        const i = line.indexOf("=");
        if (i < 1) throw new Error(`"${line}" is not NAME=VALUE`);
        out[line.slice(0, i)] = line.slice(i + 1);
      }
      return out;
    }
    default: return text;
  }
}

function setPath(table_, path, value) {
  const keys = path.split(".");
  let at = table_;
  for (const k of keys.slice(0, -1)) at = at[k] = at[k] || {};
  at[keys[keys.length - 1]] = value;
}

function getPath(obj, path) {
  return path.split(".").reduce((o, k) => (o === undefined || o === null ? undefined : o[k]), obj);
}

// ---------------------------------------------------------------- the pool editor
const editor = {
  title: "Pool settings",
  async render(main, [name]) {
    const [pool, form] = await Promise.all([api(`pools/${encodeURIComponent(name)}`), api("forms/pool")]);
    const inputs = [];
    const grid = h("div", { class: "editor", id: "pool-editor" });
    for (const field of form) {
      const initial = toText(field, getPath(pool.settings, field.path));
      let input;
      if (field.kind === "bool") {
        input = h("input", { type: "checkbox" });
        input.checked = initial === "true";
      } else if (field.kind === "enum") {
        input = h("select", {}, ...field.choices.map((c) => h("option", { value: c, selected: c === initial ? "" : undefined }, c)));
      } else if (field.kind === "dict") {
        input = h("textarea", { rows: "2", cols: "40", value: initial });
      } else {
        input = h("input", { value: initial, size: "28", spellcheck: "false" });
      }
      input.dataset.path = field.path;
      input.disabled = pool.builtin;
      const error = h("span", { class: "field-error", "data-error-for": field.path });
      const text = () => (field.kind === "bool" ? (input.checked ? "true" : "false") : input.value);
      inputs.push({ field, input, error, initial, text });
      input.addEventListener(field.kind === "bool" || field.kind === "enum" ? "change" : "input", () => check());
      grid.append(h("label", { for: `f-${field.path}` }, field.path), h("div", {}, input, " ", error));
      input.id = `f-${field.path}`;
      if (field.doc) grid.append(h("div", { class: "doc" }, field.doc));
    }
    const save = h("button", { class: "primary", id: "save", disabled: true, onclick: () => submit() }, "Save and apply");
    const status = h("p", { id: "editor-status", class: "muted" });
    main.replaceChildren(h("h2", {}, `Application pool "${name}": settings`),
      pool.builtin ? h("p", { class: "muted" }, "The management site's own pool: it is built from [management], not wasp.toml.") : "",
      h("p", { class: "muted" }, "Values as in wasp.toml: durations \"90s\", \"20m\", \"29h\"; sizes \"512MB\". Every value is checked as you type; saving writes wasp.toml (comments kept), applies it (this pool recycles) and keeps it in the configuration history."),
      grid, h("p", {}, save, " ", h("a", { href: "#/pools" }, "Back to the pools")), status);

    let seq = 0;
    let timer = null;
    function changed() {
      const edits = [];
      let local = 0;
      for (const x of inputs) {
        x.input.classList.remove("invalid");
        x.error.textContent = "";
        if (x.text() === x.initial) continue;
        try {
          edits.push({ op: "set", path: x.field.path, value: fromText(x.field, x.text()) });
        } catch (e) {
          local++;
          x.input.classList.add("invalid");
          x.error.textContent = `must be ${e.message}`;
        }
      }
      return { edits, local };
    }
    function check() {
      const { edits, local } = changed();
      save.disabled = true;
      status.textContent = edits.length || local ? "Checking…" : "No change.";
      clearTimeout(timer);
      if (local || !edits.length) { if (local) status.textContent = "Fix the marked values."; return; }
      const mine = ++seq;
      timer = setTimeout(async () => {
        const table_ = {};
        for (const e of edits) setPath(table_, e.path, e.value);
        let answer;
        try { answer = await api("validate/pool", { method: "POST", body: table_ }); } catch (e) { status.textContent = e.message; return; }
        if (mine !== seq) return;
        for (const p of answer.problems) {
          const x = inputs.find((i) => i.field.path === p.path) || inputs.find((i) => p.path.startsWith(i.field.path));
          if (x) { x.input.classList.add("invalid"); x.error.textContent = p.message; }
        }
        save.disabled = answer.problems.length > 0;
        status.textContent = answer.problems.length ? `${answer.problems.length} problem(s): nothing can be saved until they are fixed.`
          : `${edits.length} change(s), valid. Save to apply.`;
      }, 200);
    }
    async function submit() {
      const { edits } = changed();
      if (!edits.length) return;
      save.disabled = true;
      try {
        const answer = await action("config/changes", `Change pool "${name}"`, { body: { target: { pool: name }, edits }, rethrow: true });
        status.replaceChildren(`Applied (history ${answer.history}).`, h("pre", { id: "change-diff" }, answer.diff || ""));
        for (const x of inputs) x.initial = x.text();
      } catch (e) {
        const problems = (e.payload && e.payload.problems) || [];
        status.replaceChildren(h("span", { class: "error", id: "save-error" }, e.message), h("pre", {}, problems.join("\n")));
      }
    }
  },
};

// ---------------------------------------------------------------- new pool / application
function poolTools() {
  const name = h("input", { id: "new-pool-name", placeholder: "name", size: "20" });
  const mode = h("select", { id: "new-pool-mode" }, h("option", { value: "on_demand" }, "on_demand"), h("option", { value: "always_running" }, "always_running"));
  return h("form", { id: "new-pool", class: "filters", onsubmit: async (ev) => {
    ev.preventDefault();
    const answer = await action("config/changes", `Add pool "${name.value}"`,
      { body: { edits: [{ op: "add", path: "pools", value: { name: name.value.trim(), start_mode: mode.value } }] } });
    if (answer) { name.value = ""; show(); }
  } }, h("h3", {}, "New application pool"), h("label", {}, "Name", name), h("label", {}, "Start mode", mode),
  h("button", { type: "submit", class: "primary", id: "new-pool-add" }, "Add pool"));
}

function siteTools(sites) {
  const site = h("select", { id: "new-app-site" }, ...sites.filter((s) => s.name !== "Management Service").map((s) => h("option", { value: s.name }, s.name)));
  const path = h("input", { id: "new-app-path", placeholder: "/api", size: "12" });
  const pool = h("input", { id: "new-app-pool", placeholder: "pool", size: "14" });
  const app = h("input", { id: "new-app-app", placeholder: "module:app", size: "18" });
  const physical = h("input", { id: "new-app-physical", placeholder: "folder (optional)", size: "18" });
  const pythonPath = h("input", { id: "new-app-python-path", placeholder: "python_path, comma separated", size: "24" });
  return h("form", { id: "new-app", class: "filters", onsubmit: async (ev) => {
    ev.preventDefault();
    const value = { path: path.value.trim(), pool: pool.value.trim() };
    if (app.value.trim()) value.app = app.value.trim();
    if (physical.value.trim()) value.physical_path = physical.value.trim();
    if (pythonPath.value.trim()) value.python_path = pythonPath.value.split(",").map((x) => x.trim()).filter(Boolean);
    const answer = await action("config/changes", `Add application "${value.path}"`,
      { body: { target: { site: site.value }, edits: [{ op: "add", path: "applications", value }] } });
    if (answer) show();
  } }, h("h3", {}, "New application"), h("label", {}, "Site", site), h("label", {}, "Path", path), h("label", {}, "Pool", pool),
  h("label", {}, "App", app), h("label", {}, "Physical path", physical), h("label", {}, "Python path", pythonPath),
  h("button", { type: "submit", class: "primary", id: "new-app-add" }, "Add application"));
}

// ---------------------------------------------------------------- history
const historyPage = {
  title: "Configuration History",
  async render(main) {
    const entries = (await api("config/history")).slice().reverse();
    const diff = (text) => h("pre", { class: "diff" }, ...(text || "").split("\n").map((line) =>
      h("span", { class: line.startsWith("+") && !line.startsWith("+++") ? "diff-add" : line.startsWith("-") && !line.startsWith("---") ? "diff-del" : "" }, line + "\n")));
    main.replaceChildren(h("h2", {}, "Configuration History"),
      h("p", { class: "muted" }, "Every applied change keeps the file as it was written (IIS's configHistory). Restoring one writes it back, validated and applied like a change, and is itself kept."),
      entries.length ? table(["#", "Time", "User", "Change", ""], entries.map((e) => [String(e.number), (e.time || "").replace("T", " "), e.user || "",
        h("details", {}, h("summary", {}, e.what || "(snapshot)"), diff(e.diff)),
        h("button", { "data-restore": String(e.number), onclick: async () => {
          if (await action(`config/history/${e.number}/restore`, `Restore history ${e.number}`)) show();
        } }, "Restore this version")]), { id: "history-table" }) : h("p", { class: "muted" }, "No change has been made through wasp yet."));
  },
};

function poolEditorLink(name) {
  return name === "WMSvc" ? "" : h("a", { href: `#/pool/${encodeURIComponent(name)}`, "data-edit": name }, "Settings");
}

export const pages = { routes: { pool: editor, history: historyPage }, poolTools, siteTools, poolEditorLink };
