// One entry: add, view, edit (type, list, description) and delete with a confirmation.
// A write goes to the entry's own subaccount (X-MSYS-SUBACCOUNT), whatever scope the list
// is shown in, so editing a subaccount's entry never writes a copy to the primary account.

import { BASE, request, session } from "./api.js";

const $ = (id) => document.getElementById(id);
const COMPLIANCE_WHY = "This entry's source is Compliance: it was added to keep sending "
  + "within the law and the terms of service, so it cannot be deleted or changed here.";
const VIEW_ONLY_WHY = "Your API key can view entries but not change them "
  + "(it has suppression_lists/view, not suppression_lists/manage).";

const state = { entry: null, opener: null, canManage: true, onChange: null };

function recipientPath(recipient) {
  return `${BASE}/${encodeURIComponent(recipient)}`;
}

function body(type, listId, description) {
  const out = { type, description };
  if (listId) out.list_id = listId;
  return out;
}

async function remove(entry) {
  // list_id= (empty) deletes the account-level entry only; the body names the one type.
  const path = `${recipientPath(entry.recipient)}?list_id=${encodeURIComponent(entry.list_id || "")}`;
  await request("DELETE", path, { body: { type: entry.type }, subaccount: entry.subaccount_id });
}

function meta(entry) {
  const dl = $("entry-meta");
  dl.replaceChildren();
  if (!entry) return;
  const rows = [["Source", entry.source],
    ["Subaccount", entry.subaccount_id ? String(entry.subaccount_id) : "Primary account"],
    ["Created", new Date(entry.created).toLocaleString()],
    ["Updated", new Date(entry.updated).toLocaleString()]];
  for (const [name, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dl.append(dt, dd);
  }
}

function note(text) {
  $("entry-note").textContent = text;
  $("entry-note").hidden = !text;
}

function entryError(err) {
  $("entry-error").textContent = err ? err.message : "";
  $("entry-error").hidden = !err;
}

function open(entry, opener) {
  state.entry = entry;
  state.opener = opener || document.activeElement;
  const adding = !entry;
  const compliance = !adding && entry.source === "Compliance";
  const locked = compliance || !state.canManage;
  $("entry-title").textContent = adding ? "Add an entry" : entry.recipient;
  $("e-recipient").value = adding ? "" : entry.recipient;
  $("e-recipient").readOnly = !adding;
  $("e-type").value = adding ? "non_transactional" : entry.type;
  $("e-list").value = adding ? "" : entry.list_id || "";
  $("e-description").value = adding ? "" : entry.description || "";
  for (const id of ["e-type", "e-list", "e-description"]) $(id).disabled = locked;
  $("entry-save").disabled = locked;
  $("entry-delete").hidden = adding;
  $("entry-delete").disabled = locked;
  const why = compliance ? COMPLIANCE_WHY : !state.canManage ? VIEW_ONLY_WHY : "";
  note(why || (adding ? `Adds to ${scopeName()}.` : "Changing the type or the list replaces "
    + "the entry with a new one (its source becomes Manually Added)."));
  if (why) {
    $("entry-delete").setAttribute("aria-describedby", "entry-note");
    $("entry-save").setAttribute("aria-describedby", "entry-note");
  } else {
    $("entry-delete").removeAttribute("aria-describedby");
    $("entry-save").removeAttribute("aria-describedby");
  }
  meta(entry);
  entryError(null);
  $("entry-dialog").showModal();
  (adding ? $("e-recipient") : locked ? $("entry-close") : $("e-description")).focus();
}

function scopeName() {
  const sub = session.subaccount;
  return sub === "" || sub === "0" ? "the primary account" : `subaccount ${sub}`;
}

function close() {
  $("entry-dialog").close();
}

async function save() {
  const entry = state.entry;
  const recipient = $("e-recipient").value.trim();
  const type = $("e-type").value;
  const listId = $("e-list").value.trim();
  const description = $("e-description").value;
  const sub = entry ? entry.subaccount_id : undefined;
  await request("PUT", recipientPath(recipient), { body: body(type, listId, description),
                                                   subaccount: sub });
  if (entry && (entry.type !== type || (entry.list_id || "") !== listId)) await remove(entry);
  close();
  state.onChange(entry ? `Saved ${recipient}.` : `Added ${recipient}.`);
}

function confirmDelete() {
  const entry = state.entry;
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent = `${entry.recipient} (${entry.type.replace("_", "-")}, `
    + `${entry.list_id ? `list ${entry.list_id}` : "whole account"}) will no longer be `
    + "suppressed. This cannot be undone.";
  dialog.returnValue = "";
  dialog.showModal();
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "delete") { $("entry-delete").focus(); return; }
    try {
      await remove(entry);
      close();
      state.onChange(`Deleted ${entry.recipient} (${entry.type.replace("_", "-")}).`);
    } catch (err) {
      entryError(err);
      $("entry-delete").focus();
    }
  }, { once: true });
}

export function setUp({ onChange }) {
  state.onChange = onChange;
  $("entry-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!$("entry-form").reportValidity()) return;
    try {
      await save();
    } catch (err) {
      entryError(err);
    }
  });
  $("entry-close").addEventListener("click", close);
  $("entry-delete").addEventListener("click", confirmDelete);
  $("entry-dialog").addEventListener("close", () => {
    const opener = state.opener;
    if (!opener) return;
    if (opener.isConnected) { opener.focus(); return; }
    // The results were drawn again while the dialog was open (a search that finished
    // late): focus the same row's button in the new table, not the page.
    const label = opener.getAttribute("aria-label");
    const same = label && [...document.querySelectorAll("#results button")]
      .find((b) => b.getAttribute("aria-label") === label);
    if (same) same.focus();
  });
  return { open, setCanManage: (yes) => { state.canManage = yes; } };
}
