// api.js: requests to the gateway's /v3 API with the console's session
// cookie (sent by the browser) and CSRF token (kept here, in memory only),
// and a small DOM builder that never parses HTML.

let csrf = "";

/** setCSRF keeps the session's CSRF token for state-changing requests. */
export function setCSRF(token) { csrf = token || ""; }

/** APIError is a non-2xx answer: status, the JSON error's code and message. */
export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * request sends method path with body (JSON) and returns the parsed JSON
 * answer (null when empty); it throws APIError on an error status.
 */
export async function request(method, path, body, headers = {}) {
  const opts = { method, headers: { ...headers }, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") opts.headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!r.ok) {
    const e = (data && data.error) || {};
    // The session has ended (expired, logged out elsewhere, token revoked):
    // the app goes back to the login form.
    if (r.status === 401 && !path.startsWith("/console/")) window.dispatchEvent(new Event("console:unauthorized"));
    throw new APIError(r.status, e.code || "http_" + r.status, e.message || String(text || r.statusText));
  }
  return data;
}

export const get = (path) => request("GET", path);
export const post = (path, body, headers) => request("POST", path, body, headers);
export const patch = (path, body) => request("PATCH", path, body);

/** q builds a query string from the non-empty values of params. */
export function q(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, String(v));
  const s = u.toString();
  return s ? "?" + s : "";
}

/**
 * el makes an element: attrs are properties ("class" and "data-*" become
 * attributes, "on*" functions listeners); children are nodes or strings,
 * which become text, never markup.
 */
export function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") n.className = v;
    else if (k.startsWith("data-") || k === "role" || k.startsWith("aria-")) n.setAttribute(k, v);
    else if (k.startsWith("on") && typeof v === "function") n.addEventListener(k.slice(2), v);
    else n[k] = v;
  }
  append(n, children);
  return n;
}

function append(n, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** fmtTime shows an RFC 3339 time in the browser's zone. */
export function fmtTime(s) {
  if (!s) return "";
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString();
}

let flashTimer = 0;
/** flash shows a short message in the corner. */
export function flash(msg) {
  const f = document.getElementById("flash");
  f.textContent = msg;
  f.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { f.hidden = true; }, 4000);
}

/** errorText is what an error looks like on a page. */
export function errorText(e) {
  return e instanceof APIError ? `${e.message} (${e.status} ${e.code})` : String(e && e.message || e);
}

/** isAdmin reports whether the console session's token has scope admin. */
export function isAdmin(session) { return (session.scopes || []).includes("admin"); }
