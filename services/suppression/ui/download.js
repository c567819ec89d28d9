// Downloads that need the Authorization header, so a plain link will not do: read the
// answer as a stream (showing how much has come), then hand it to the browser as a file.
// Where the browser can write a chosen file (the File System Access API), the stream goes
// to disk as it arrives, so a list of any size never sits in memory.

import { request } from "./api.js";

function human(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// onProgress(text) is told how much has come so far.
export async function download(path, filename, onProgress, { toDisk = false } = {}) {
  let writable = null;
  if (toDisk && window.showSaveFilePicker) {
    const handle = await window.showSaveFilePicker({ suggestedName: filename });
    writable = await handle.createWritable();
  }
  const resp = await request("GET", path);
  const reader = resp.body.getReader();
  const chunks = [];
  let received = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.byteLength;
      if (writable) await writable.write(value); else chunks.push(value);
      onProgress(`Downloading ${filename}: ${human(received)} so far…`);
    }
  } catch (err) {
    if (writable) await writable.abort();
    throw err;
  }
  if (writable) {
    await writable.close();
  } else {
    saveBlob(new Blob(chunks, { type: resp.headers.get("Content-Type") || "text/csv" }),
             filename);
  }
  onProgress(`Downloaded ${filename} (${human(received)}).`);
  return received;
}
