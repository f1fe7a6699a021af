// sessions.js: the sessions list, one API page (GET /v3/sessions?after=&limit=,
// or ?order=newest&before=) at a time, so that it stays fast however many
// sessions there are. The API lists sessions in id (creation) order, newest
// first by default here, and filters them by state, route
// and channel (it looks at a bounded number of sessions per page, so a
// filtered page may be short and still have a next one); the text filter
// applies to the page shown, and says so. A session is found by id, or by
// one of its conversations on the server. Each row shows the session's
// conversations, fetched for the rows shown (a few requests at a time).
import { get, post, q, el, fmtTime, errorText } from "./api.js";

const LIMIT = 50;

export async function show(main) {
  const cursors = [""]; // the cursor (after=, or before= newest first) of each page seen, for Previous
  const state = el("select", { id: "state-filter", "aria-label": "state" },
    el("option", { value: "" }, "any state"),
    ...["idle", "running"].map((s) => el("option", { value: s }, s)));
  const route = el("input", { id: "route-filter", type: "search", placeholder: "route", size: 10 });
  const source = el("select", { id: "source-filter", "aria-label": "channel" },
    el("option", { value: "" }, "any channel"),
    ...["slack", "github", "jira", "email"].map((s) => el("option", { value: s }, s)));
  const text = el("input", { id: "text-filter", type: "search", placeholder: "filter this page: id, metadata" });
  const openID = el("input", { id: "open-id", placeholder: "ses_… open by id" });
  // Finding a session by one of its conversations is one lookup on the
  // server (GET /v3/conversations), however many sessions there are.
  const findSource = el("select", { id: "find-source", "aria-label": "channel" },
    ...["slack", "github", "jira", "email"].map((s) => el("option", { value: s }, s)));
  const findRef = el("input", { id: "find-ref", placeholder: "conversation ref, e.g. acme/app#7" });
  const find = el("form", { id: "find-conversation", class: "toolbar" }, "Find by conversation ", findSource, findRef,
    el("button", { type: "submit" }, "Find"));
  find.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const b = await get("/v3/conversations" + q({ source: findSource.value, ref: findRef.value.trim() }));
      location.hash = "#/sessions/" + encodeURIComponent(b.session_id);
    } catch (err) { status.textContent = errorText(err); }
  });
  // Session ids are "ses_" and the hex of a UUIDv7, whose first 48 bits are
  // the creation time in ms, so they sort by creation time: a cursor made
  // of a time alone pages from the sessions created since then (one indexed
  // seek on the server), however many came before.
  const since = el("select", { id: "since", "aria-label": "created since" },
    ...[["newest", "newest first"], ["", "oldest first"], ["3600", "created in the last hour"], ["86400", "in the last day"], ["604800", "in the last week"]]
      .map(([v, label]) => el("option", { value: v }, label)));
  const prev = el("button", { type: "button", id: "prev" }, "Previous");
  const next = el("button", { type: "button", id: "next" }, "Next");
  const refresh = el("button", { type: "button", id: "refresh" }, "Refresh");
  const create = el("button", { type: "button", id: "create-session" }, "New session");
  const status = el("span", { class: "muted", id: "sessions-status" });
  const body = el("tbody", { id: "sessions-body" });
  main.append(
    el("h2", {}, "Sessions"),
    el("div", { class: "toolbar" }, since, state, route, source, text, el("span", { class: "muted" }, "(the text filter applies to the page shown)"),
      el("form", { onsubmit: (e) => { e.preventDefault(); if (openID.value.trim()) location.hash = "#/sessions/" + encodeURIComponent(openID.value.trim()); } }, openID),
      refresh, create),
    find,
    el("table", {}, el("thead", {}, el("tr", {}, ...["Session", "State", "Conversations", "Metadata", "Records", "Updated"].map((h) => el("th", {}, h)))), body),
    el("div", { class: "toolbar" }, prev, next, status),
  );
  let page = { sessions: [], next_after: "" };
  let drawn = 0; // counts draws, so that a late conversations answer is dropped
  const newest = () => since.value === "newest";
  const nextCursor = () => (newest() ? page.next_before : page.next_after);

  const draw = () => {
    const needle = text.value.trim().toLowerCase();
    const shown = page.sessions.filter((s) =>
      !needle || s.id.toLowerCase().includes(needle) || JSON.stringify(s.metadata).toLowerCase().includes(needle));
    const convs = new Map(shown.map((s) => [s.id, el("td", { class: "conversations" })]));
    body.replaceChildren(...shown.map((s) => el("tr", { "data-id": s.id },
      el("td", {}, el("a", { href: "#/sessions/" + encodeURIComponent(s.id) }, s.id)),
      el("td", {}, el("span", { class: "state state-" + s.state }, s.state)),
      convs.get(s.id),
      el("td", { class: "muted" }, Object.entries(s.metadata || {}).map(([k, v]) => `${k}=${v}`).join(" ")),
      el("td", {}, String(s.last_seq)),
      el("td", {}, fmtTime(s.updated_at)))));
    status.textContent = `page ${cursors.length}: ${shown.length} of ${page.sessions.length} shown` +
      (page.sessions.length ? "" : filtered() && nextCursor() ? "; none matched among the sessions looked at: try Next"
        : since.value && !newest() ? "; no session was created in that time" : "");
    prev.disabled = cursors.length < 2;
    next.disabled = !nextCursor();
    fillConversations(convs, ++drawn);
  };
  // fillConversations fetches the conversations of the sessions shown, six
  // at a time, and fills their cells unless the page was drawn again.
  const fillConversations = async (cells, draw) => {
    const ids = [...cells.keys()];
    const worker = async () => {
      for (let id = ids.shift(); id !== undefined && draw === drawn; id = ids.shift()) {
        let bs;
        try { bs = (await get(`/v3/sessions/${encodeURIComponent(id)}/conversations`)).conversations; } catch { continue; }
        if (draw !== drawn) return;
        const shownConvs = bs.slice(0, 3).map((b) => el("div", {}, el("strong", {}, b.conversation.source), " ", b.conversation.ref));
        if (bs.length > 3) shownConvs.push(el("div", { class: "muted" }, `and ${bs.length - 3} more`));
        if (!bs.length) shownConvs.push(el("span", { class: "muted" }, "none"));
        cells.get(id).replaceChildren(...shownConvs);
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
  };
  const load = async () => {
    try {
      const cursor = cursors[cursors.length - 1];
      page = await get("/v3/sessions" + q({ ...(newest() ? { order: "newest", before: cursor } : { after: cursor }), limit: LIMIT,
        state: state.value, route: route.value.trim(), source: source.value }));
      draw();
    } catch (e) {
      status.textContent = errorText(e);
    }
  };
  since.addEventListener("change", () => {
    cursors.length = 0;
    cursors.push(since.value && !newest() ? sinceCursor(Date.now() - Number(since.value) * 1000) : "");
    load();
  });
  const filtered = () => !!(state.value || route.value.trim() || source.value);
  const restart = () => { cursors.length = 1; load(); };
  state.addEventListener("change", restart);
  source.addEventListener("change", restart);
  route.addEventListener("change", restart);
  text.addEventListener("input", draw);
  next.addEventListener("click", () => { cursors.push(nextCursor()); load(); });
  prev.addEventListener("click", () => { cursors.pop(); load(); });
  refresh.addEventListener("click", load);
  create.addEventListener("click", async () => {
    try {
      const s = await post("/v3/sessions", { metadata: { created_by: "console" } });
      location.hash = "#/sessions/" + encodeURIComponent(s.id);
    } catch (e) { status.textContent = errorText(e); }
  });
  await load();
}

/** sinceCursor is the listing cursor before every session created at ms or later. */
export function sinceCursor(ms) {
  return "ses_" + Math.max(0, Math.floor(ms)).toString(16).padStart(12, "0");
}
