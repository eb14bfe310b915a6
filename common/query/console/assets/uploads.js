// Files in: drop or pick files and folders; each gets a signed URL (POST .../uploads) and is
// PUT straight to storage with its own progress bar, then its status is followed live through
// the documents API (polled with back-off) until it is ready or failed.

import { call, describe, json } from "./api.js";
import { announce, byId, h, replace } from "./dom.js";

const FIRST_POLL_MS = 1000;
const MAX_POLL_MS = 10000;
const PATHS_PER_POLL = 100;

let formats = { extensions: {}, types: [] };
let context = null; // { project, onSettled }
const pending = new Map(); // document path -> row
let pollTimer = 0;
let pollDelay = FIRST_POLL_MS;

export async function loadFormats() {
  const response = await fetch("/console/formats.json", { credentials: "omit" });
  if (response.ok) formats = await response.json();
}

/** The media type the API accepts for this file: the browser's when known, else by extension. */
export function contentType(file, name) {
  if (formats.types.includes(file.type)) return file.type;
  const dot = name.lastIndexOf(".");
  const extension = dot >= 0 ? name.slice(dot).toLowerCase() : "";
  return formats.extensions[extension] || file.type || "application/octet-stream";
}

export function bindUploads(getContext) {
  const zone = byId("dropzone");
  const fileInput = byId("file-input");
  const folderInput = byId("folder-input");
  byId("pick-files").addEventListener("click", () => fileInput.click());
  byId("pick-folder").addEventListener("click", () => folderInput.click());
  for (const input of [fileInput, folderInput]) {
    input.addEventListener("change", () => {
      const picked = [...input.files].map((file) => ({
        file,
        path: file.webkitRelativePath || file.name,
      }));
      input.value = "";
      start(getContext(), picked);
    });
  }
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    // Entries must be taken while the event runs: the DataTransfer is emptied afterwards.
    const items = [...(event.dataTransfer.items || [])].filter((item) => item.kind === "file");
    const sources = items.length
      ? items.map((item) => item.webkitGetAsEntry?.() || item.getAsFile())
      : [...event.dataTransfer.files];
    const target = getContext();
    collect(sources).then((files) => start(target, files));
  });
}

async function collect(sources) {
  const files = [];
  for (const source of sources) {
    if (!source) continue;
    if (source instanceof File) files.push({ file: source, path: source.name });
    else await walk(source, files);
  }
  return files;
}

async function walk(entry, files) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    files.push({ file, path: entry.fullPath.replace(/^\/+/, "") || file.name });
    return;
  }
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return;
    for (const child of batch) await walk(child, files);
  }
}

/** Upload each file (a few at a time) into the project that was current when it was dropped. */
function start(target, files) {
  if (!target || !files.length) return;
  context = target;
  const list = byId("uploads");
  const rows = files.map(({ file, path }) => {
    const row = uploadRow(path);
    list.prepend(row.element);
    return { file, path, row };
  });
  announce(`${files.length} file${files.length === 1 ? "" : "s"} uploading`);
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      const item = rows[next++];
      await upload(target.project, item);
    }
  };
  for (let i = 0; i < Math.min(3, rows.length); i++) worker();
}

function uploadRow(path) {
  const progress = h("progress", { max: "100", value: "0", "aria-label": `Upload of ${path}` });
  const status = h("span", { class: "badge uploading" }, "uploading");
  const message = h("p", { class: "message" });
  const element = h(
    "li",
    { class: "upload" },
    h("span", { class: "name" }, path),
    status,
    progress,
    message,
  );
  return {
    element,
    progress,
    set(state, text = "") {
      status.className = `badge ${state}`;
      status.textContent = state;
      replace(message, text);
      if (state !== "uploading") progress.value = 100;
    },
  };
}

async function upload(project, { file, path, row }) {
  let ticket;
  try {
    ticket = await json("POST", `/v1/projects/${project}/uploads`, {
      body: { filename: path, content_type: contentType(file, path), size: file.size },
    });
  } catch (error) {
    row.set("failed", describe(error));
    return;
  }
  try {
    await put(ticket, file, row.progress);
  } catch (error) {
    row.set("failed", error.message);
    return;
  }
  row.set("uploaded", "Stored; waiting for the pipeline.");
  pending.set(ticket.document_path, { row, object: ticket.object });
  schedulePoll(FIRST_POLL_MS);
}

function put(ticket, file, progress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(ticket.method || "PUT", ticket.upload_url);
    for (const [name, value] of Object.entries(ticket.headers)) {
      request.setRequestHeader(name, value);
    }
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) progress.value = Math.round((100 * event.loaded) / event.total);
    });
    request.addEventListener("load", () => {
      if (request.status >= 200 && request.status < 300) resolve();
      else {
        const code = /<Code>([^<]*)<\/Code>/.exec(request.responseText || "");
        reject(new Error(`storage refused the file (${request.status}${code ? ` ${code[1]}` : ""})`));
      }
    });
    request.addEventListener("error", () => reject(new Error("the upload could not reach storage")));
    request.send(file);
  });
}

function schedulePoll(delay) {
  clearTimeout(pollTimer);
  pollDelay = delay;
  pollTimer = setTimeout(poll, pollDelay);
}

/** One look at every pending upload's document; slower while nothing changes. */
async function poll() {
  if (!context || !pending.size) return;
  const paths = [...pending.keys()].slice(0, PATHS_PER_POLL);
  let changed = false;
  try {
    const response = await call("GET", `/v1/projects/${context.project}/documents`, {
      query: {
        limit: String(PATHS_PER_POLL),
        filter: JSON.stringify({ in: { key: "path", value: paths } }),
      },
    });
    const page = await response.json();
    for (const doc of page.documents) {
      const entry = pending.get(doc.attributes.path);
      if (!entry || entry.object !== doc.gcs_uri) continue;
      const message =
        doc.status === "failed"
          ? doc.error_message || "ingestion failed"
          : doc.status === "ready"
            ? `${doc.chunk_count} chunk${doc.chunk_count === 1 ? "" : "s"}${doc.notice ? `; ${doc.notice}` : ""}`
            : "";
      if (entry.status !== doc.status) {
        entry.status = doc.status;
        entry.row.set(doc.status, message);
        changed = true;
      }
      if (doc.status === "ready" || doc.status === "failed") {
        pending.delete(doc.attributes.path);
        announce(`${doc.title}: ${doc.status}`);
      }
    }
    if (changed) context.onSettled?.();
  } catch (error) {
    if (error.status === 401) return;
    for (const entry of pending.values()) entry.row.set(entry.status || "uploaded", describe(error));
    if (error.status === 429 && error.retryAfter) {
      schedulePoll(error.retryAfter * 1000);
      return;
    }
  }
  if (pending.size) schedulePoll(changed ? FIRST_POLL_MS : Math.min(pollDelay * 1.5, MAX_POLL_MS));
}

/** Forget every upload being followed (sign out, another project). */
export function resetUploads() {
  clearTimeout(pollTimer);
  pending.clear();
  context = null;
  replace(byId("uploads"));
}
