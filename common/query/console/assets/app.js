// The console: sign in with an API key, pick a project, then Documents, Ask and Usage views
// (the URL's #fragment names the view, never anything secret).

import { describe, json, listen, session } from "./api.js";
import { bindAsk, resetAsk } from "./ask.js";
import { bindDocuments, loadDocuments, showDocument } from "./documents.js";
import { byId, h, replace, show } from "./dom.js";
import { bindUploads, loadFormats, resetUploads } from "./uploads.js";
import { loadUsage } from "./usage.js";

const PROJECT_ITEM = "ai-infra.console.project";
const VIEWS = ["documents", "ask", "usage"];
let signedIn = false;

function project() {
  return byId("project").value || null;
}

function alertMessage(message) {
  const alert = byId("alert");
  alert.textContent = message || "";
  show(alert, Boolean(message));
}

function showRate(limits) {
  const rate = byId("rate");
  const parts = [];
  if (limits.limit !== null) parts.push(`${limits.limit} requests per ${limits.window ?? 60} s`);
  if (limits.remaining !== null) parts.push(`${limits.remaining} left`);
  if (limits.reset !== null) parts.push(`resets in ${limits.reset} s`);
  rate.textContent = `Rate limit: ${parts.join(", ")}`;
  rate.classList.toggle("low", limits.remaining !== null && limits.remaining <= 5);
}

async function signIn(key) {
  const error = byId("signin-error");
  const button = byId("sign-in");
  const state = byId("signin-state");
  error.textContent = "";
  state.textContent = "Signing in…";
  button.disabled = true;
  try {
    const listing = await json("GET", "/v1/projects", { key });
    session.save(key);
    byId("api-key").value = "";
    enter(listing.projects);
  } catch (problem) {
    if (!signedIn) {
      error.textContent = describe(problem);
      byId("api-key").focus();
    }
  } finally {
    button.disabled = false;
    state.textContent = "";
  }
}

function enter(projects) {
  signedIn = true;
  alertMessage("");
  const select = byId("project");
  replace(
    select,
    projects.map((p) =>
      h("option", { value: p.id }, `${p.name} · ${p.documents.total} doc${p.documents.total === 1 ? "" : "s"}`),
    ),
  );
  const remembered = sessionStorage.getItem(PROJECT_ITEM);
  if (projects.some((p) => p.id === remembered)) select.value = remembered;
  show(byId("view-signin"), false);
  show(byId("session"), true);
  show(byId("tabs"), true);
  if (!projects.length) {
    alertMessage("Your team has no projects yet: an operator creates one with `ai-infra projects create`.");
  }
  if (!VIEWS.includes(location.hash.slice(1)) && !location.hash.startsWith("#document/")) {
    location.replace("#documents");
  }
  route();
  byId("main").focus();
}

/** Forget the key and everything shown; back to the sign-in form (`problem`: why, as an error). */
function signOut({ problem = "", note = "" } = {}) {
  signedIn = false;
  session.forget();
  resetUploads();
  resetAsk();
  replace(byId("documents"));
  replace(byId("usage-charts"));
  replace(byId("usage-totals"));
  replace(byId("project"));
  byId("rate").textContent = "";
  show(byId("document-detail"), false);
  show(byId("session"), false);
  show(byId("tabs"), false);
  for (const view of VIEWS) show(byId(`view-${view}`), false);
  show(byId("view-signin"), true);
  byId("signin-error").textContent = problem;
  byId("signin-state").textContent = note;
  alertMessage("");
  history.replaceState(null, "", location.pathname);
  byId("api-key").focus();
}

function route() {
  if (!signedIn) return;
  const hash = location.hash.slice(1);
  const documentId = hash.startsWith("document/") ? hash.slice("document/".length) : null;
  const view = documentId ? "documents" : VIEWS.includes(hash) ? hash : "documents";
  for (const name of VIEWS) show(byId(`view-${name}`), name === view);
  for (const link of byId("tabs").querySelectorAll("a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!project()) return;
  if (view === "documents") {
    loadDocuments(project());
    if (documentId) showDocument(documentId);
  } else if (view === "usage") loadUsage();
  document.title = `${view[0].toUpperCase()}${view.slice(1)} · ai-infra console`;
}

function init() {
  listen("rate", showRate);
  listen("unauthorized", (error) => {
    if (signedIn) signOut({ problem: describe(error) });
  });
  byId("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = byId("api-key").value.trim();
    if (!key) {
      byId("signin-error").textContent = "Paste an API key first.";
      byId("api-key").focus();
      return;
    }
    signIn(key);
  });
  byId("sign-out").addEventListener("click", () =>
    signOut({ note: "You are signed out; this tab forgot the key." }),
  );
  byId("project").addEventListener("change", () => {
    sessionStorage.setItem(PROJECT_ITEM, project());
    resetUploads();
    resetAsk();
    show(byId("document-detail"), false);
    route();
  });
  window.addEventListener("hashchange", route);
  bindDocuments();
  bindUploads(() => (project() ? { project: project(), onSettled: () => loadDocuments(project()) } : null));
  bindAsk(project);
  loadFormats();

  const field = byId("api-key");
  field.disabled = false;
  byId("sign-in").disabled = false;
  if (session.key) signIn(session.key);
  else field.focus();
  performance.mark("console-interactive");
}

init();
