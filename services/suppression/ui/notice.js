// One place for what the page tells the user: errors (role=alert) and progress (role=status).

const box = () => document.getElementById("message");
const status = () => document.getElementById("status");

export function showError(err) {
  const el = box();
  el.textContent = err && err.message ? err.message : String(err);
  el.hidden = false;
}

export function clearError() {
  const el = box();
  el.hidden = true;
  el.textContent = "";
}

export function say(text) {
  status().textContent = text;
}

// Run an action; any failure becomes a readable message instead of a dead page.
export async function guarded(action) {
  try {
    clearError();
    return await action();
  } catch (err) {
    if (err && err.name === "AbortError") return undefined;
    showError(err);
    return undefined;
  }
}
