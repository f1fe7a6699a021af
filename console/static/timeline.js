// timeline.js: one session's log. It shows the newest page of records
// (GET …/messages?after=&limit=, never the whole log), loads earlier pages on
// request, and follows new records live over the session's event stream
// (GET …/stream, Server-Sent Events, with the cookie). The steer box posts
// a message with a fresh idempotency key per submit; the conversations
// panel lists where the session talks and resumes paused conversations.
import { get, post, q, el, fmtTime, errorText, flash, isAdmin } from "./api.js";
import { render } from "./markdown.js";
import { conversationURL, where } from "./links.js";

const PAGE = 100;

/** newKey returns a random idempotency key (works outside secure contexts too). */
function newKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return "console-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export async function show(main, [id], session) {
  const base = "/v3/sessions/" + encodeURIComponent(id);
  const sess = await get(base);
  const list = el("ol", { class: "timeline", id: "timeline" });
  const earlier = el("button", { type: "button", id: "earlier" }, "Load earlier");
  const raw = el("input", { type: "checkbox", id: "raw-toggle" });
  const live = el("span", { class: "muted", id: "live" }, "connecting…");
  const text = el("textarea", { id: "steer-text", placeholder: "Steer the session: Markdown text", required: true });
  const steerStatus = el("span", { class: "muted", id: "steer-status" });
  const steer = el("form", { class: "steer panel", id: "steer" },
    el("h3", {}, "Steer"), text, el("div", { class: "toolbar" }, el("button", { class: "primary", type: "submit" }, "Send"), steerStatus));
  const convs = el("div", { id: "conversations" });
  const stateTag = el("span", { class: "state state-" + sess.state, id: "session-state" }, sess.state);
  main.append(
    el("h2", {}, "Session ", el("code", {}, id), " ", stateTag,
      isAdmin(session) ? el("a", { class: "deliveries-link", id: "session-deliveries", href: "#/deliveries" + q({ session: id, status: "any" }) }, " deliveries") : null),
    el("p", { class: "muted" }, Object.entries(sess.metadata || {}).map(([k, v]) => `${k}=${v}`).join("  ")),
    el("div", { class: "columns" },
      el("div", {},
        el("div", { class: "toolbar" }, earlier, el("label", {}, raw, " show raw"), live),
        list, steer),
      el("div", {}, el("div", { class: "panel" }, el("h3", {}, "Conversations"), convs))));

  const records = []; // shown, in seq order
  let first = 0; // lowest seq shown (0: none yet)
  let last = 0; // highest seq shown

  const item = (rec) => {
    const env = rec.envelope || {};
    const actor = env.actor || {};
    const who = actor.display || actor.id || env.source || "";
    let content;
    if (raw.checked) {
      content = el("pre", { class: "raw" }, JSON.stringify(env.raw ?? null, null, 2));
    } else {
      content = env.kind === "system" ? el("p", { class: "muted" }, env.text) : render(env.text);
    }
    return el("li", { class: "record " + rec.direction, "data-seq": String(rec.seq) },
      el("div", { class: "meta" }, `#${rec.seq} · ${rec.direction} · ${env.kind || ""} · ${who} · ${fmtTime(env.ts || rec.stored_at)}`),
      content);
  };
  const redraw = () => list.replaceChildren(...records.map(item));
  raw.addEventListener("change", redraw);

  const read = async (after, limit) => (await get(base + "/messages" + q({ after, limit }))).messages;

  const start = Math.max(0, sess.last_seq - PAGE);
  const recs = await read(start, PAGE);
  records.push(...recs);
  if (recs.length) { first = recs[0].seq; last = recs[recs.length - 1].seq; } else { first = start + 1; last = start; }
  redraw();
  earlier.hidden = first <= 1;
  earlier.addEventListener("click", async () => {
    const after = Math.max(0, first - 1 - PAGE);
    try {
      const older = await read(after, first - 1 - after);
      records.unshift(...older);
      list.prepend(...older.map(item));
      if (older.length) first = older[0].seq;
      earlier.hidden = first <= 1 || !older.length;
    } catch (e) { flash(errorText(e)); }
  });

  // The session's state is not in its log: it is read again (at most every
  // half second) after records arrive.
  let stateTimer = 0;
  const showState = (state) => {
    stateTag.textContent = state;
    stateTag.className = "state state-" + state;
  };
  const refreshState = () => {
    if (stateTimer) return;
    stateTimer = setTimeout(async () => {
      stateTimer = 0;
      try { showState((await get(base)).state); } catch { /* shown at the next record */ }
    }, 500);
  };

  // Live: the stream starts after the newest record shown.
  const es = new EventSource(base + "/stream" + q({ after: last }));
  es.onopen = () => { live.textContent = "live"; };
  es.onerror = () => {
    // The browser reconnects by itself (from the last event id) unless the
    // gateway refused the stream.
    live.textContent = es.readyState === EventSource.CLOSED ? "disconnected; reload the page" : "reconnecting…";
  };
  es.onmessage = (ev) => {
    let rec;
    try { rec = JSON.parse(ev.data); } catch { return; }
    if (rec.seq <= last) return;
    last = rec.seq;
    records.push(rec);
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    list.append(item(rec));
    refreshState();
    if (atBottom) list.lastElementChild.scrollIntoView({ block: "end" });
  };

  // A new idempotency key for each message; a submit of the same text after
  // a failure (which may have reached the gateway) reuses the key, so that
  // it cannot send the message twice.
  let pending = null; // {text, key} of a failed submit
  steer.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!pending || pending.text !== text.value) pending = { text: text.value, key: newKey() };
    const body = { text: pending.text, idempotency_key: pending.key };
    steerStatus.textContent = "sending…";
    try {
      const r = await post(base + "/messages", body);
      text.value = "";
      pending = null;
      steerStatus.textContent = `sent as #${r.message.seq}`;
      showState(r.session.state);
    } catch (e) {
      steerStatus.textContent = errorText(e);
    }
  });

  const loadConvs = async () => {
    let bs;
    try {
      bs = (await get(base + "/conversations")).conversations;
    } catch (e) {
      convs.replaceChildren(el("p", { class: "muted" }, errorText(e)));
      return;
    }
    if (!bs.length) { convs.replaceChildren(el("p", { class: "muted" }, "No conversation is bound to this session.")); return; }
    convs.replaceChildren(...bs.map((b) => {
      const url = conversationURL(b.conversation);
      const paused = b.paused_until && new Date(b.paused_until) > new Date();
      const resume = el("button", { type: "button", class: "resume", "data-id": b.id }, "Resume");
      resume.addEventListener("click", async () => {
        try { await post(`${base}/conversations/${encodeURIComponent(b.id)}/resume`); flash("Resumed " + b.id); loadConvs(); } catch (e) { flash(errorText(e)); }
      });
      return el("div", { class: "conversation", "data-id": b.id },
        el("div", {}, el("strong", {}, b.conversation.source), " ",
          url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, b.conversation.ref) : el("code", {}, b.conversation.ref)),
        el("div", { class: "muted" }, where(b.conversation), b.route ? ` · route ${b.route}` : ""),
        isAdmin(session) ? el("a", { class: "deliveries-link", href: "#/deliveries" + q({ session: id, source: b.conversation.source, ref: b.conversation.ref, status: "any" }) }, "deliveries") : null,
        paused ? el("div", { class: "error paused" }, `paused until ${fmtTime(b.paused_until)}: ${b.paused_reason || ""} `, resume) : null);
    }));
  };
  await loadConvs();
  if (!isAdmin(session)) steer.append(el("p", { class: "muted" }, "Steer tokens may send messages; binding conversations needs admin."));
  return () => { es.close(); clearTimeout(stateTimer); };
}
