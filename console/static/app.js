// app.js: the console's entry point. It finds out whether the browser holds
// a console session (GET /console/session), shows the login form when not,
// and routes #/… to the pages. Each page module exports
// show(main, params, session) and may return a function that stops what
// it started (an event stream, a timer) when the page is left.
import { request, setCSRF, el, errorText, isAdmin } from "./api.js";
import * as sessions from "./sessions.js";
import * as timeline from "./timeline.js";
import * as deliveries from "./deliveries.js";
import * as webhooks from "./webhooks.js";
import * as channels from "./channels.js";
import * as numbers from "./numbers.js";

const routes = [
  [/^#\/sessions\/([^/]+)$/, timeline],
  [/^#\/deliveries(?:\?.*)?$/, deliveries],
  [/^#\/webhooks$/, webhooks],
  [/^#\/channels$/, channels],
  [/^#\/numbers$/, numbers],
  [/^#\/sessions$/, sessions],
];

let session = null;
let stop = null;
let visits = 0; // counts route changes

const $ = (id) => document.getElementById(id);

async function boot() {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  window.addEventListener("console:unauthorized", () => { if (session) signedOut(); });
  // Leaving the page (or its going into the back-forward cache) closes its
  // event stream: an open stream would hold one of the browser's few
  // connections to the gateway.
  window.addEventListener("pagehide", () => { if (stop) { stop(); stop = null; } });
  window.addEventListener("pageshow", (ev) => { if (ev.persisted) route(); });
  try {
    signedIn(await request("GET", "/console/session"));
  } catch {
    signedOut();
  }
}

function signedIn(s) {
  session = s;
  setCSRF(s.csrf);
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${s.name} (${(s.scopes || []).join(", ")})`;
  // Pages that need scope admin are not offered to a steer token.
  for (const a of document.querySelectorAll("nav a[data-admin]")) a.hidden = !isAdmin(s);
  route();
}

function signedOut() {
  session = null;
  setCSRF("");
  if (stop) { stop(); stop = null; }
  $("main").replaceChildren();
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login").hidden = false;
  $("token").focus();
}

async function login(ev) {
  ev.preventDefault();
  const input = $("token");
  $("login-error").textContent = "";
  try {
    const s = await request("POST", "/console/login", { token: input.value });
    input.value = "";
    signedIn(s);
  } catch (e) {
    $("login-error").textContent = errorText(e);
  }
}

async function logout() {
  try { await request("POST", "/console/logout"); } catch { /* the cookie is gone either way */ }
  signedOut();
}

function route() {
  if (!session) return;
  if (stop) { stop(); stop = null; }
  const hash = location.hash || "#/sessions";
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", hash.startsWith(a.getAttribute("href")));
  }
  // Each visit renders into a view of its own, so that a page still
  // loading when the route changes renders into a detached view, and what
  // it started is stopped as soon as it returns.
  const view = el("div", { class: "view" });
  $("main").replaceChildren(view);
  const visit = ++visits;
  for (const [re, page] of routes) {
    const m = re.exec(hash);
    if (m) {
      const params = m.slice(1).map(decodeURIComponent);
      Promise.resolve(page.show(view, params, session))
        .then((s) => {
          const end = typeof s === "function" ? s : null;
          if (visit === visits) stop = end;
          else if (end) end();
        })
        .catch((e) => {
          if (e.status === 401) signedOut();
          else view.append(el("p", { class: "error" }, errorText(e)));
        });
      return;
    }
  }
  view.append(el("p", { class: "error" }, "No such page: " + hash));
}

boot();
