// Asking: the answer streams in over server-sent events (fetch + a stream reader, since
// EventSource cannot send the Authorization header); each [n] opens its source. "Retrieve only"
// shows the ranked chunks with every score, for debugging retrieval.
//
// A source's full text: retrieve mode returns it (`content`). In answer mode the console asks
// once more in retrieve mode, restricted to the source's document (`document_ids`), and shows
// the chunk with the same id; if that chunk is not among the results, the snippet is shown
// and the dialog says so.

import { call, describe, json, serverEvents } from "./api.js";
import { announce, byId, fields, h, replace, show, valueText } from "./dom.js";

const MARKER = /\[(\d+)\]/g;
let getProject = () => null;
let running = null;
let lastQuestion = "";
let lastProject = null;

export function bindAsk(projectOf) {
  getProject = projectOf;
  byId("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    ask();
  });
  byId("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      ask();
    }
  });
  byId("chunk-close").addEventListener("click", () => byId("chunk").close());
  byId("chunk-document").addEventListener("click", () => byId("chunk").close());
}

export function resetAsk() {
  running?.abort();
  byId("question").value = "";
  byId("ask-state").textContent = "";
  replace(byId("answer"));
  show(byId("answer"), false);
  show(byId("results-title"), false);
  replace(byId("results"));
}

async function ask() {
  const question = byId("question").value.trim();
  const project = getProject();
  const state = byId("ask-state");
  if (!question) {
    state.textContent = "Type a question first.";
    byId("question").focus();
    return;
  }
  const topK = Math.min(50, Math.max(1, Number(byId("top-k").value) || 5));
  const retrieveOnly = byId("retrieve-only").checked;
  running?.abort();
  running = new AbortController();
  lastQuestion = question;
  lastProject = project;
  const answer = byId("answer");
  replace(answer);
  show(answer, !retrieveOnly);
  replace(byId("results"));
  show(byId("results-title"), false);
  byId("ask-button").disabled = true;
  state.textContent = retrieveOnly ? "Retrieving…" : "Thinking…";
  try {
    if (retrieveOnly) {
      const result = await json("POST", `/v1/projects/${project}/query`, {
        body: { question, mode: "retrieve", top_k: topK },
        signal: running.signal,
      });
      showResults(result.citations, true);
      state.textContent = result.citations.length
        ? `${result.citations.length} chunks, best first (${result.latency_ms} ms).`
        : "No chunk matched this question.";
    } else {
      await streamAnswer(project, question, topK, answer, state, running.signal);
    }
  } catch (error) {
    if (error.name !== "AbortError") state.textContent = describe(error);
  } finally {
    byId("ask-button").disabled = false;
  }
}

async function streamAnswer(project, question, topK, answer, state, signal) {
  const response = await call("POST", `/v1/projects/${project}/query`, {
    body: { question, top_k: topK, stream: true },
    accept: "text/event-stream",
    signal,
  });
  const live = document.createTextNode("");
  answer.append(live);
  answer.setAttribute("aria-busy", "true");
  try {
    for await (const { event, data } of serverEvents(response)) {
      if (event === "delta") live.appendData(data.text);
      else if (event === "done") {
        renderAnswer(answer, data.answer || "", data.citations);
        showResults(data.citations, false);
        state.textContent = data.used_rag
          ? `Answered in ${data.latency_ms} ms from ${data.citations.length} source${data.citations.length === 1 ? "" : "s"}.`
          : "No document matched this question.";
        announce("Answer complete");
      } else if (event === "error") {
        state.textContent = `The answer stopped: ${data.error.message}.`;
      }
    }
  } finally {
    answer.removeAttribute("aria-busy");
  }
}

/** The answer as text, each [n] a button that opens source n. */
function renderAnswer(answer, text, citations) {
  const bySource = new Map(citations.map((c) => [c.source, c]));
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    const citation = bySource.get(Number(match[1]));
    if (!citation) continue;
    parts.push(text.slice(last, match.index));
    parts.push(
      h(
        "button",
        {
          type: "button",
          class: "cite",
          "aria-label": `Source ${citation.source}: ${citation.title}`,
          on: { click: () => openChunk(citation, false) },
        },
        `[${citation.source}]`,
      ),
    );
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  replace(answer, parts);
}

function scoreText(value) {
  return value === null || value === undefined ? "n/a" : Number(value).toFixed(4);
}

function showResults(citations, retrieved) {
  const title = byId("results-title");
  title.textContent = retrieved ? "Ranked chunks" : "Sources";
  show(title, citations.length > 0);
  replace(
    byId("results"),
    citations.map((c) =>
      h(
        "li",
        { class: "result", value: String(retrieved ? c.rank : c.source) },
        h(
          "p",
          { class: "result-head" },
          h("span", { class: "marker" }, retrieved ? `#${c.rank}` : `[${c.source}]`),
          h("span", { class: "result-title" }, c.title),
          c.location ? h("span", { class: "location" }, c.location) : null,
        ),
        h(
          "p",
          { class: "scores" },
          `score ${scoreText(c.score)} · rrf ${scoreText(c.rrf_score)} · rerank ${scoreText(c.rerank_score)}`,
        ),
        h("p", { class: "snippet" }, c.snippet),
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            "aria-label": `Open ${retrieved ? `chunk ${c.rank}` : `source ${c.source}`}: ${c.title}`,
            on: { click: () => openChunk(c, retrieved) },
          },
          "Open",
        ),
      ),
    ),
  );
}

async function openChunk(citation, hasContent) {
  const dialog = byId("chunk");
  byId("chunk-title").textContent = citation.title;
  byId("chunk-location").textContent = [
    citation.location || (citation.page_start ? `page ${citation.page_start}` : ""),
    `rank ${citation.rank}`,
  ]
    .filter(Boolean)
    .join(" · ");
  fields(byId("chunk-scores"), [
    ["Score (cosine)", scoreText(citation.score)],
    ["RRF score (vector + full text)", scoreText(citation.rrf_score)],
    ["Rerank score", citation.rerank_score === null ? "not reranked" : scoreText(citation.rerank_score)],
  ]);
  const attributes = Object.entries(citation.attributes || {});
  fields(
    byId("chunk-attributes"),
    attributes.length ? attributes.map(([k, v]) => [k, valueText(v)]) : [["Attributes", "none"]],
  );
  byId("chunk-document").setAttribute("href", `#document/${citation.document_id}`);
  const text = byId("chunk-text");
  const state = byId("chunk-state");
  if (!dialog.open) dialog.showModal();
  if (hasContent && citation.content) {
    text.textContent = citation.content;
    state.textContent = "";
    return;
  }
  text.textContent = citation.snippet;
  state.textContent = "Loading the chunk's full text…";
  try {
    const again = await json("POST", `/v1/projects/${lastProject}/query`, {
      body: { question: lastQuestion, mode: "retrieve", top_k: 50, document_ids: [citation.document_id] },
    });
    const same = again.citations.find((c) => c.chunk_id === citation.chunk_id);
    if (same?.content) {
      text.textContent = same.content;
      state.textContent = "";
    } else {
      state.textContent = "The full text is not available; this is the snippet.";
    }
  } catch (error) {
    state.textContent = `${describe(error)} This is the snippet.`;
  }
}
