// The public API as the UI calls it: the key the user signed in with, the subaccount they
// chose, and every error turned into a sentence a person can act on.

export const BASE = "/api/v1/suppression-list";
const KEY = "portcullis.key";
const SUBACCOUNT = "portcullis.subaccount";

export const session = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  // "" = no X-MSYS-SUBACCOUNT (primary and every subaccount); "0" = primary only; "N"
  get subaccount() { return sessionStorage.getItem(SUBACCOUNT) || ""; },
  signIn(key) { sessionStorage.setItem(KEY, key.trim()); },
  setSubaccount(value) { sessionStorage.setItem(SUBACCOUNT, value); },
  signOut() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(SUBACCOUNT); },
};

export class ApiError extends Error {
  constructor(status, message, { retryAfter = null, apiMessage = "" } = {}) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
    this.apiMessage = apiMessage;
  }
}

export function headers({ subaccount = session.subaccount, extra = {} } = {}) {
  const out = { Authorization: session.key, ...extra };
  if (subaccount !== "" && subaccount !== null && subaccount !== undefined) {
    out["X-MSYS-SUBACCOUNT"] = String(subaccount);
  }
  return out;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(name, value);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

// The first error of SparkPost's shape, {"errors": [{"message", "description"}]}.
async function apiMessage(resp) {
  try {
    const body = await resp.json();
    const first = body && Array.isArray(body.errors) ? body.errors[0] : null;
    if (!first) return "";
    const { message = "", description = "" } = first;
    return description && description !== message ? `${message}: ${description}` : message;
  } catch {
    return "";
  }
}

export async function failure(resp) {
  const said = await apiMessage(resp);
  const retry = parseInt(resp.headers.get("Retry-After") || "", 10);
  const retryAfter = Number.isFinite(retry) ? retry : null;
  let text;
  if (resp.status === 401) {
    text = "Your API key was not accepted: it may be mistyped, expired or revoked. "
      + `Sign out and sign in with a valid key.${said ? ` (The server said: ${said}.)` : ""}`;
  } else if (resp.status === 403) {
    text = `Your API key may not do this. ${said || "Permission denied."}`;
  } else if (resp.status === 429) {
    text = retryAfter !== null
      ? `Too many requests. Try again in ${retryAfter} second${retryAfter === 1 ? "" : "s"}.`
      : "Too many requests. Wait a moment and try again.";
  } else if (resp.status >= 500) {
    text = `The service is unavailable right now (HTTP ${resp.status}). `
      + "Nothing was lost; try again in a moment.";
  } else {
    text = said || `The request failed (HTTP ${resp.status}).`;
  }
  return new ApiError(resp.status, text, { retryAfter, apiMessage: said });
}

// fetch() that throws ApiError on a network failure or any non-2xx answer.
export async function request(method, path, { body, subaccount, contentType, signal } = {}) {
  const extra = {};
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
    extra["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  } else if (contentType) {
    extra["Content-Type"] = contentType;
  }
  let resp;
  try {
    resp = await fetch(path, { method, body: payload, signal,
                               headers: headers({ subaccount, extra }) });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "Could not reach the server. Check your connection and try again.");
  }
  if (!resp.ok) throw await failure(resp);
  return resp;
}

export async function getJson(path, options) {
  const resp = await request("GET", path, options);
  return resp.json();
}
