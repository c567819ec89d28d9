// Search: the form's filters -> the API's query, the results table, cursor paging from the
// answer's links, and the CSV download with the same filters.

import { BASE, getJson, query } from "./api.js";
import { download } from "./download.js";
import { guarded, say } from "./notice.js";

const $ = (id) => document.getElementById(id);
const TYPE_LABEL = { transactional: "Transactional", non_transactional: "Non-transactional" };

// datetime-local (the user's local time) -> ISO-8601 in UTC, as the API wants.
function isoOf(value) {
  return value ? new Date(value).toISOString().replace(/\.\d{3}Z$/, "Z") : "";
}

export function filters() {
  const form = $("search-form");
  const data = new FormData(form);
  const q = (data.get("q") || "").trim();
  const out = {
    types: data.getAll("types").join(","),
    sources: data.getAll("sources").join(","),
    list_id: (data.get("list_id") || "").trim(),
    description: data.get("description") || "",
    description_strict: data.get("description_strict") ? "true" : "",
    from: isoOf(data.get("from")),
    to: isoOf(data.get("to")),
    sort: data.get("sort"),
  };
  if (!out.description) out.description_strict = "";
  return { q, recipient: q.includes("@") ? q : "", domain: q.includes("@") ? "" : q, out,
           perPage: data.get("per_page") };
}

const state = { pages: [], current: null, onOpen: null, seq: 0 };

function cell(row, label, text, className) {
  const td = document.createElement("td");
  td.dataset.label = label;
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

function render(answer) {
  const body = $("results").querySelector("tbody");
  body.replaceChildren();
  for (const entry of answer.results) {
    const tr = document.createElement("tr");
    const who = document.createElement("td");
    who.dataset.label = "Recipient";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = entry.recipient;
    open.setAttribute("aria-label", `View ${entry.recipient}, ${TYPE_LABEL[entry.type]}`
      + (entry.list_id ? `, list ${entry.list_id}` : ""));
    open.addEventListener("click", () => state.onOpen(entry, open));
    who.append(open);
    tr.append(who);
    cell(tr, "Type", TYPE_LABEL[entry.type] || entry.type);
    cell(tr, "Source", entry.source, entry.source === "Compliance" ? "compliance" : "");
    cell(tr, "List", entry.list_id || "(account)");
    cell(tr, "Description", entry.description || "");
    cell(tr, "Subaccount", entry.subaccount_id ? String(entry.subaccount_id) : "Primary");
    cell(tr, "Updated", new Date(entry.updated).toLocaleString());
    const act = cell(tr, "Actions", "");
    const edit = document.createElement("button");
    edit.type = "button";
    edit.textContent = "Open";
    edit.setAttribute("aria-label", `Open ${entry.recipient}`);
    edit.addEventListener("click", () => state.onOpen(entry, edit));
    act.append(edit);
    body.append(tr);
  }
  const total = answer.total_count ?? answer.results.length;
  const page = state.pages.length;
  const per = Number($("f-per-page").value);
  const first = total ? (page - 1) * per + 1 : 0;
  const last = (page - 1) * per + answer.results.length;
  $("result-count").textContent = total
    ? `${total.toLocaleString()} ${total === 1 ? "entry matches" : "entries match"}; `
      + `showing ${first.toLocaleString()}–${last.toLocaleString()}.`
    : "No entries match.";
  $("results").hidden = answer.results.length === 0;
  const next = (answer.links || []).find((l) => l.rel === "next");
  state.next = next ? next.href : null;
  $("next-page").hidden = !next;
  $("prev-page").hidden = page <= 1;
  $("first-page").hidden = page <= 2;
}

async function load(href) {
  try {
    return await getJson(href);
  } catch (err) {
    if (err.status === 404 && href.startsWith(`${BASE}/`) && href.includes("@")) {
      return { results: [], links: [], total_count: 0 };  // that recipient has no entry
    }
    throw err;
  }
}

// Only the latest search is shown: an older answer that arrives late is dropped.
async function show(href) {
  const section = $("results").closest("section");
  const seq = ++state.seq;
  section.setAttribute("aria-busy", "true");
  try {
    const answer = await load(href);
    if (seq !== state.seq) return;
    state.current = href;
    render(answer);
  } finally {
    if (seq === state.seq) section.setAttribute("aria-busy", "false");
  }
}

export function firstHref() {
  const f = filters();
  if (f.recipient) {
    return `${BASE}/${encodeURIComponent(f.recipient)}`
      + query({ types: f.out.types, cursor: "initial", per_page: f.perPage });
  }
  return BASE + query({ ...f.out, domain: f.domain, cursor: "initial", per_page: f.perPage });
}

export function runSearch() {
  return guarded(async () => {
    const href = firstHref();
    state.pages = [href];
    await show(href);
  });
}

// After a write: the same page again, so the user sees the change in place.
export function refresh() {
  return guarded(async () => {
    if (state.current) await show(state.current); else await runSearch();
  });
}

function exportHref() {
  const f = filters();
  if (f.recipient) {
    throw new Error("Download works with a domain or the other filters, not one recipient. "
      + "Clear the recipient, or enter its domain.");
  }
  return `${BASE}/export` + query({ format: "csv", ...f.out, domain: f.domain });
}

export function setUp(onOpen) {
  state.onOpen = onOpen;
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); runSearch(); });
  $("search-form").addEventListener("reset", () => setTimeout(runSearch));
  $("next-page").addEventListener("click", () => guarded(async () => {
    if (!state.next) return;
    state.pages.push(state.next);
    await show(state.next);
    $("result-count").focus();
  }));
  $("prev-page").addEventListener("click", () => guarded(async () => {
    state.pages.pop();
    await show(state.pages[state.pages.length - 1]);
  }));
  $("first-page").addEventListener("click", () => guarded(async () => {
    state.pages = [state.pages[0]];
    await show(state.pages[0]);
  }));
  $("download").addEventListener("click", () => guarded(async () => {
    const button = $("download");
    button.disabled = true;
    try {
      await download(exportHref(), "suppression-list.csv", say,
                     { toDisk: $("to-disk") && $("to-disk").checked });
    } finally {
      button.disabled = false;
    }
  }));
}
