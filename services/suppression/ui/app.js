// The page: sign-in, what the key may do, the account scope, the summary; the sections
// (search, entry, imports) wire themselves up in their own modules.

import { ApiError, BASE, getJson, request, session } from "./api.js";
import * as entry from "./entry.js";
import * as imports from "./imports.js";
import { clearError, guarded, say, showError } from "./notice.js";
import * as search from "./search.js";

const $ = (id) => document.getElementById(id);
const SUMMARY = [["total", "Total"], ["manually_added", "Manually Added"],
  ["spam_complaint", "Spam Complaint"], ["list_unsubscribe", "List Unsubscribe"],
  ["bounce_rule", "Bounce Rule"], ["unsubscribe_link", "Unsubscribe Link"],
  ["compliance", "Compliance"]];

let editor = null;

async function showSummary() {
  const { results } = await getJson(`${BASE}/summary`);
  const dl = $("summary");
  dl.replaceChildren();
  for (const [key, label] of SUMMARY) {
    const div = document.createElement("div");
    div.dataset.source = key;
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = Number(results[key] || 0).toLocaleString();
    div.append(dt, dd);
    dl.append(div);
  }
}

// What the key may do, found by asking the API questions that change nothing.
async function canManage() {
  // Cancelling import job 0 (there is none): 404 with the manage grant, 403 without.
  try {
    await request("DELETE", `${BASE}/imports/0`, { subaccount: "" });
    return true;
  } catch (err) {
    if (err.status === 403) return false;
    if (err.status === 404) return true;
    throw err;
  }
}

async function isPrimaryKey() {
  // A subaccount's key may not act for the primary account only (403).
  try {
    await request("GET", `${BASE}/summary`, { subaccount: "0" });
    return true;
  } catch (err) {
    if (err.status === 403) return false;
    throw err;
  }
}

function showScope(primary) {
  $("scope-box").hidden = !primary;
  const sub = session.subaccount;
  if (sub === "" || sub === "0") {
    $("scope").value = sub;
    $("sub-box").hidden = true;
  } else {
    $("scope").value = "sub";
    $("sub-box").hidden = false;
    $("subaccount-id").value = sub;
  }
}

function applyScope(value) {
  return guarded(async () => {
    session.setSubaccount(value);
    await Promise.all([showSummary(), search.runSearch()]);
    say(value === "" ? "Showing the primary account and all subaccounts."
      : value === "0" ? "Showing the primary account only." : `Showing subaccount ${value}.`);
  });
}

async function enter() {
  const [manage, primary] = await Promise.all([canManage(), isPrimaryKey()]);
  document.body.classList.toggle("view-only", !manage);
  for (const el of document.querySelectorAll(".manage")) {
    el.disabled = !manage;
    if (!manage) el.title = "Your API key can view but not change entries.";
  }
  $("import-file").disabled = !manage;
  editor.setCanManage(manage);
  $("key-kind").textContent = `${manage ? "Manage" : "View only"} · `
    + `${primary ? "primary account key" : "subaccount key"}`;
  showScope(primary);
  $("sign-in").hidden = true;
  $("signed-in").hidden = false;
  $("account").hidden = false;
  await Promise.all([showSummary(), search.runSearch()]);
}

function showSignIn() {
  $("signed-in").hidden = true;
  $("account").hidden = true;
  $("sign-in").hidden = false;
  $("api-key").value = "";
  $("api-key").focus();
}

async function signIn(key) {
  session.signIn(key);
  try {
    await showSummary();  // the key works, or says why not
  } catch (err) {
    session.signOut();
    if (err instanceof ApiError && err.status === 401) {
      throw new ApiError(401, "That API key was not accepted: check that it is complete, "
        + `not expired and not revoked.${err.apiMessage ? ` (The server said: ${err.apiMessage}.)` : ""}`);
    }
    if (err instanceof ApiError && err.status === 403) {
      throw new ApiError(403, "That API key may not use suppression lists: it needs the "
        + "suppression_lists/view or suppression_lists/manage grant.");
    }
    throw err;
  }
  await enter();
  say("Signed in.");
  $("main").focus();
}

function setUp() {
  editor = entry.setUp({
    onChange: (text) => guarded(async () => {
      await Promise.all([showSummary(), search.refresh()]);
      say(text);
      $("result-count").focus();
    }),
  });
  search.setUp((found, opener) => editor.open(found, opener));
  imports.setUp({ onDone: () => guarded(() => Promise.all([showSummary(), search.refresh()])) });
  $("add").addEventListener("click", (ev) => editor.open(null, ev.currentTarget));
  $("sign-in-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(() => signIn($("api-key").value));
  });
  $("sign-out").addEventListener("click", () => {
    session.signOut();
    clearError();
    say("Signed out.");
    showSignIn();
  });
  $("scope").addEventListener("change", () => {
    const value = $("scope").value;
    $("sub-box").hidden = value !== "sub";
    if (value === "sub") $("subaccount-id").focus(); else applyScope(value);
  });
  const useSub = () => {
    const id = $("subaccount-id").value.trim();
    if (!/^[1-9]\d*$/.test(id)) {
      showError(new Error("Enter a subaccount id: a whole number from 1."));
      $("subaccount-id").focus();
      return;
    }
    applyScope(id);
  };
  $("sub-apply").addEventListener("click", useSub);
  $("subaccount-id").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { ev.preventDefault(); useSub(); }
  });
  if ("showSaveFilePicker" in window) $("to-disk-box").hidden = false;
}

// Never a blank page: whatever escapes is said in words.
window.addEventListener("unhandledrejection", (ev) => showError(ev.reason));
window.addEventListener("error", (ev) => showError(ev.error || ev.message));

setUp();
if (session.key) {
  guarded(async () => {
    try {
      await enter();
    } catch (err) {
      if (err.status === 401) session.signOut();
      showSignIn();
      throw err;
    }
  });
} else {
  showSignIn();
}
