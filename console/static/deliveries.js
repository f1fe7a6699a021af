// deliveries.js: the outbox (GET /v3/deliveries?status=&after=&limit=, one
// page at a time), or one session's deliveries, or one conversation's
// (…&session=&source=&ref=, from #/deliveries?session=…), with each
// delivery's recorded attempts (GET /v3/deliveries/{id}/attempts) and retry
// of one delivery or of every dead one (POST /v3/deliveries/{id}/retry).
// Admin only.
import { get, post, q, el, fmtTime, errorText, flash } from "./api.js";

const LIMIT = 50;

export async function show(main) {
  // The filter comes from the route's query: #/deliveries?session=…
  const from = new URLSearchParams(location.hash.split("?")[1] || "");
  const cursors = [""];
  const initial = from.get("status") === "any" ? "" : from.get("status") || "dead";
  const status = el("select", { id: "delivery-status", "aria-label": "status" },
    ...["dead", "pending", "delivered", ""].map((s) => el("option", { value: s, selected: s === initial }, s || "any")));
  const session = el("input", { id: "delivery-session", placeholder: "session id", value: from.get("session") || "", size: 24 });
  const source = el("input", { id: "delivery-source", placeholder: "source", value: from.get("source") || "", size: 8 });
  const ref = el("input", { id: "delivery-ref", placeholder: "conversation ref", value: from.get("ref") || "", size: 24 });
  const body = el("tbody", { id: "deliveries-body" });
  const prev = el("button", { type: "button" }, "Previous");
  const next = el("button", { type: "button" }, "Next");
  const refresh = el("button", { type: "button", id: "refresh" }, "Refresh");
  const retryAll = el("button", { type: "button", id: "retry-all" }, "Retry all dead");
  const note = el("span", { class: "muted", id: "deliveries-status" });
  const filter = el("form", { class: "toolbar", id: "delivery-filter" },
    el("label", {}, "Status ", status), session, source, ref, el("button", { type: "submit" }, "Filter"), refresh, retryAll);
  main.append(el("h2", {}, "Deliveries"), filter,
    el("table", {}, el("thead", {}, el("tr", {}, ...["Delivery", "Session", "To", "Status", "Attempts", "Last error", "Updated", ""].map((h) => el("th", {}, h)))), body),
    el("div", { class: "toolbar" }, prev, next, note));
  let page = { deliveries: [] };
  const params = () => ({ status: status.value, session: session.value.trim(), source: source.value.trim(), ref: ref.value.trim() });

  const load = async () => {
    try {
      page = await get("/v3/deliveries" + q({ ...params(), after: cursors[cursors.length - 1], limit: LIMIT }));
    } catch (e) { note.textContent = errorText(e); body.replaceChildren(); return; }
    body.replaceChildren(...page.deliveries.flatMap(row));
    note.textContent = `page ${cursors.length}: ${page.deliveries.length} deliveries`;
    prev.disabled = cursors.length < 2;
    next.disabled = !page.next_after;
  };

  // row is a delivery's row and the row its attempts open into.
  const row = (d) => {
    const retry = el("button", { type: "button", class: "retry", "data-id": d.id }, "Retry");
    retry.addEventListener("click", async () => {
      try { await post(`/v3/deliveries/${encodeURIComponent(d.id)}/retry`); flash("Retrying " + d.id); setTimeout(load, 500); } catch (e) { flash(errorText(e)); }
    });
    const detail = el("tr", { class: "attempts", hidden: true }, el("td", { colSpan: 8 }));
    const toggle = el("button", { type: "button", class: "show-attempts", "data-id": d.id, title: "recorded attempts" }, String(d.attempts));
    toggle.addEventListener("click", async () => {
      detail.hidden = !detail.hidden;
      if (!detail.hidden) detail.firstChild.replaceChildren(await attempts(d));
    });
    return [el("tr", { "data-id": d.id },
      el("td", {}, el("code", {}, d.id)),
      el("td", {}, el("a", { href: "#/sessions/" + encodeURIComponent(d.session_id) }, d.session_id), ` #${d.seq}`),
      el("td", {}, `${d.to.source} ${d.to.ref}`),
      el("td", {}, el("span", { class: "state status-" + d.status }, d.status)),
      el("td", {}, toggle),
      // A delivered delivery's last error is that of an earlier attempt.
      d.status === "delivered" ? el("td", { class: "muted" }, d.last_error ? "earlier: " + d.last_error : "") : el("td", { class: "error" }, d.last_error || ""),
      el("td", {}, fmtTime(d.updated_at)),
      el("td", {}, d.status === "delivered" ? null : retry)), detail];
  };

  filter.addEventListener("submit", (ev) => {
    ev.preventDefault();
    cursors.length = 1;
    history.replaceState(null, "", "#/deliveries" + q({ ...params(), status: status.value || "any" }));
    load();
  });
  status.addEventListener("change", () => { cursors.length = 1; load(); });
  refresh.addEventListener("click", load);
  next.addEventListener("click", () => { cursors.push(page.next_after); load(); });
  prev.addEventListener("click", () => { cursors.pop(); load(); });
  retryAll.addEventListener("click", async () => {
    // Walk the dead deliveries page by page; a retried one stops being
    // dead, so the cursor moves on past what was retried.
    let after = "", n = 0;
    try {
      for (;;) {
        const p = await get("/v3/deliveries" + q({ ...params(), status: "dead", after, limit: 500 }));
        for (const d of p.deliveries) { await post(`/v3/deliveries/${encodeURIComponent(d.id)}/retry`); n++; }
        if (!p.next_after) break;
        after = p.next_after;
      }
      flash(`Retried ${n} dead deliveries`);
    } catch (e) { flash(errorText(e)); }
    load();
  });
  await load();
}

// attempts is the table of d's recorded attempts, newest first. A delivery
// that went out at its first attempt has none recorded: its row says when.
async function attempts(d) {
  let list;
  try {
    list = (await get(`/v3/deliveries/${encodeURIComponent(d.id)}/attempts` + q({ limit: 100 }))).attempts;
  } catch (e) { return el("p", { class: "error" }, errorText(e)); }
  if (!list.length) {
    return el("p", { class: "muted" }, d.status === "delivered" ? `Delivered at its first attempt, ${fmtTime(d.updated_at)}.` : "No attempt recorded yet.");
  }
  return el("table", { class: "attempt-list" },
    el("thead", {}, el("tr", {}, ...["#", "At", "Status", "Latency", "Error", "Response"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...list.map((a) => el("tr", { "data-attempt": a.attempt },
      el("td", {}, String(a.attempt)),
      el("td", {}, fmtTime(a.at)),
      el("td", { class: a.error ? "error" : "" }, (a.error ? "failed" : "ok") + (a.status_code ? ` (${a.status_code})` : "")),
      el("td", {}, `${Math.round(a.latency_ns / 1e6)} ms`),
      el("td", { class: "error" }, a.error || ""),
      el("td", {}, a.response ? el("code", {}, a.response) : "")))));
}
