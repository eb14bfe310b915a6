// The project's documents: a page at a time (the API's cursor), searched by path on the server
// (the `filter` parameter with `stringContains` on the automatic `path` attribute), with
// delete, reprocess and a details panel.

import { call, describe, json } from "./api.js";
import { announce, byId, bytes, fields, h, replace, show, valueText, when } from "./dom.js";

const PAGE_SIZE = 50;
let project = null;
let cursor = null;
let loading = null; // AbortController of the listing in flight
let searchTimer = 0;

export function bindDocuments() {
  byId("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => loadDocuments(project), 250);
  });
  byId("refresh").addEventListener("click", () => loadDocuments(project));
  byId("more").addEventListener("click", () => loadPage(false));
  byId("detail-close").addEventListener("click", () => {
    show(byId("document-detail"), false);
    byId("search").focus();
  });
}

function filterParam() {
  const text = byId("search").value;
  return text ? JSON.stringify({ stringContains: { key: "path", value: text } }) : null;
}

/** The first page of `projectId`'s documents (again). */
export function loadDocuments(projectId) {
  project = projectId;
  cursor = null;
  return loadPage(true);
}

async function loadPage(first) {
  if (!project) return;
  loading?.abort();
  loading = new AbortController();
  const state = byId("documents-state");
  const list = byId("documents");
  const query = { limit: String(PAGE_SIZE) };
  const filter = filterParam();
  if (filter) query.filter = filter;
  if (!first && cursor) query.cursor = cursor;
  state.textContent = "Loading documents…";
  try {
    const page = await json("GET", `/v1/projects/${project}/documents`, {
      query,
      signal: loading.signal,
    });
    if (first) replace(list);
    for (const doc of page.documents) list.append(documentItem(doc));
    cursor = page.next_cursor;
    show(byId("more"), Boolean(cursor));
    const count = list.children.length;
    state.textContent = count
      ? `${count} document${count === 1 ? "" : "s"}${cursor ? " shown; more below" : ""}.`
      : filter
        ? "No document's path contains that text."
        : "No documents yet: drop files above to add some.";
  } catch (error) {
    if (error.name === "AbortError") return;
    state.textContent = describe(error);
  }
}

function documentItem(doc) {
  const path = doc.attributes?.path;
  const problems = [doc.error_message, doc.notice, doc.metadata_error].filter(Boolean);
  const item = h(
    "li",
    { class: "document", "data-id": doc.id },
    h(
      "div",
      { class: "doc-head" },
      h("a", { href: `#document/${doc.id}`, class: "doc-title" }, doc.title),
      h("span", { class: `badge ${doc.status}` }, doc.status),
    ),
    path && path !== doc.title ? h("p", { class: "doc-path" }, path) : null,
    h(
      "p",
      { class: "doc-meta" },
      [
        `${doc.chunk_count} chunk${doc.chunk_count === 1 ? "" : "s"}`,
        bytes(doc.size_bytes),
        `updated ${when(doc.updated_at)}`,
      ]
        .filter(Boolean)
        .join(" · "),
    ),
    problems.map((text) => h("p", { class: doc.error_message === text ? "error" : "notice" }, text)),
    h(
      "p",
      { class: "doc-actions" },
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          "aria-label": `Reprocess ${doc.title}`,
          on: { click: () => reprocess(doc, item) },
        },
        "Reprocess",
      ),
      h(
        "button",
        {
          type: "button",
          class: "danger",
          "aria-label": `Delete ${doc.title}`,
          on: { click: () => remove(doc, item) },
        },
        "Delete",
      ),
    ),
  );
  return item;
}

async function reprocess(doc, item) {
  const state = byId("documents-state");
  try {
    await json("POST", `/v1/documents/${doc.id}/reprocess`);
    const badge = item.querySelector(".badge");
    badge.className = "badge uploaded";
    badge.textContent = "uploaded";
    state.textContent = `${doc.title} is queued again.`;
    announce(state.textContent);
  } catch (error) {
    state.textContent = describe(error);
  }
}

async function remove(doc, item) {
  if (!window.confirm(`Delete "${doc.title}"? Its file and its chunks are removed.`)) return;
  const state = byId("documents-state");
  try {
    await call("DELETE", `/v1/documents/${doc.id}`);
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    state.textContent = `${doc.title} was deleted.`;
    (next?.querySelector("a") || byId("search")).focus();
  } catch (error) {
    state.textContent = describe(error);
  }
}

/** The details panel of one document (GET /v1/documents/{id}), e.g. from a citation. */
export async function showDocument(id) {
  const panel = byId("document-detail");
  const title = byId("detail-title");
  show(panel, true);
  title.textContent = "Loading the document…";
  replace(byId("detail-fields"));
  try {
    const doc = await json("GET", `/v1/documents/${id}`);
    title.textContent = doc.title;
    const job = doc.last_job;
    fields(byId("detail-fields"), [
      ["Status", doc.status],
      ["Error", doc.error_message],
      ["Notice", doc.notice],
      ["Path", doc.attributes?.path],
      ["Type", doc.mime_type],
      ["Size", bytes(doc.size_bytes)],
      ["Chunks", String(doc.chunk_count)],
      ["Source", doc.source_url || doc.source_type],
      ["Stored as", doc.gcs_uri],
      ["Embedding model", doc.embedding_model],
      ["Last job", job ? `${job.status}, attempt ${job.attempts}, ${when(job.finished_at || job.created_at)}` : null],
      ["Metadata error", doc.metadata_error],
      ...Object.entries(doc.attributes || {}).map(([name, value]) => [`Attribute ${name}`, valueText(value)]),
      ["Created", when(doc.created_at)],
      ["Updated", when(doc.updated_at)],
    ]);
  } catch (error) {
    title.textContent = describe(error);
  }
  panel.focus();
}
