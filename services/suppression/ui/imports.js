// Upload a file to the imports API, then follow the job: a progress bar fed by the job's
// progress, a summary at the end, and the rejected rows to download.

import { BASE, failure, getJson, headers } from "./api.js";
import { download } from "./download.js";
import { guarded, say, showError } from "./notice.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 250;
const ENDED = ["done", "failed", "cancelled"];
const STATE_LABEL = { uploading: "Uploading", queued: "Waiting for a worker",
                      running: "Importing", done: "Done", failed: "Failed",
                      cancelled: "Cancelled" };

function contentType(file) {
  return /\.(ndjson|jsonl)$/i.test(file.name) ? "application/x-ndjson" : "text/csv";
}

function bar(phase, value, text) {
  const progress = $("import-progress");
  progress.dataset.phase = phase;
  progress.value = value;
  $("import-label").textContent = text;
}

// XMLHttpRequest rather than fetch: it reports upload progress, which matters for big files.
function upload(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${BASE}/imports`);
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader("Content-Type", contentType(file));
    xhr.upload.addEventListener("progress", (ev) => {
      if (ev.lengthComputable) {
        bar("upload", ev.loaded / ev.total, `Uploading ${file.name}`);
        $("import-state").textContent = `${Math.round((100 * ev.loaded) / ev.total)}% sent`;
      }
    });
    xhr.addEventListener("load", async () => {
      const resp = new Response(xhr.responseText || null, {
        status: xhr.status, headers: { "Retry-After": xhr.getResponseHeader("Retry-After") || "" },
      });
      if (xhr.status === 202) resolve(JSON.parse(xhr.responseText).results);
      else reject(await failure(resp));
    });
    const lost = () => reject(new Error(
      "The upload did not reach the server. Check your connection and try again."));
    xhr.addEventListener("error", lost);
    xhr.addEventListener("abort", lost);
    xhr.send(file);
  });
}

function summarise(job) {
  const dl = $("import-summary");
  dl.replaceChildren();
  for (const [name, value] of [["Rows read", job.rows_read], ["Rows written", job.rows_written],
                               ["Rows rejected", job.rows_rejected]]) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = Number(value).toLocaleString();
    dd.dataset.name = name.toLowerCase().replace(" ", "_");
    dl.append(dt, dd);
  }
  dl.hidden = false;
}

function describe(job) {
  const pct = Math.round(job.progress * 100);
  const label = STATE_LABEL[job.state] || job.state;
  return job.state === "running"
    ? `${label}: ${pct}%, ${Number(job.rows_read).toLocaleString()} rows read`
    : label;
}

const wait = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

async function follow(id, name) {
  for (;;) {
    let job;
    try {
      job = (await getJson(`${BASE}/imports/${id}`)).results;
    } catch (err) {
      // The job goes on without us: wait out a rate limit, a restart or a lost network.
      const transient = err.status === 0 || err.status === 429 || err.status >= 500;
      if (!transient) throw err;
      say(`${err.message} Still following import ${id}…`);
      await wait(Math.max(1, err.retryAfter || 2) * 1000);
      continue;
    }
    bar("import", job.progress, `Import ${id} of ${name}`);
    $("import-state").textContent = describe(job);
    if (ENDED.includes(job.state)) return job;
    await wait(POLL_MS);
  }
}

export function setUp({ onDone }) {
  let lastJob = null;
  $("import-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = $("import-file").files[0];
    if (!file) return;
    const submit = $("import-form").querySelector("button[type=submit]");
    submit.disabled = true;
    $("import-job").hidden = false;
    $("import-summary").hidden = true;
    $("import-rejects").hidden = true;
    $("import-state").textContent = "";
    bar("upload", 0, `Uploading ${file.name}`);
    guarded(async () => {
      try {
        const job = await upload(file);
        lastJob = await follow(job.id, file.name);
        summarise(lastJob);
        if (lastJob.state === "failed") {
          showError(`The import failed: ${lastJob.error || "no reason given"}.`);
        }
        $("import-rejects").hidden = !(lastJob.rows_rejected > 0);
        say(`Import ${lastJob.id}: ${describe(lastJob)}.`);
        onDone();
      } finally {
        submit.disabled = false;
      }
    });
  });
  $("import-rejects").addEventListener("click", () => guarded(async () => {
    await download(`${BASE}/imports/${lastJob.id}/rejects`, `import-${lastJob.id}-rejects.csv`,
                   say);
  }));
}
