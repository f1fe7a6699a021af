// deliveries.js: the outbox (GET /v3/deliveries?status=&after=&limit=, one
// page at a time) with retry of one delivery or of every dead one
// (POST /v3/deliveries/{id}/retry). Admin only.
import { get, post, q, el, fmtTime, errorText, flash } from "./api.js";

const LIMIT = 50;

export async function show(main) {
  const cursors = [""];
  const status = el("select", { id: "delivery-status", "aria-label": "status" },
    ...["dead", "pending", "delivered", ""].map((s) => el("option", { value: s }, s || "any")));
  const body = el("tbody", { id: "deliveries-body" });
  const prev = el("button", { type: "button" }, "Previous");
  const next = el("button", { type: "button" }, "Next");
  const refresh = el("button", { type: "button", id: "refresh" }, "Refresh");
  const retryAll = el("button", { type: "button", id: "retry-all" }, "Retry all dead");
  const note = el("span", { class: "muted", id: "deliveries-status" });
  main.append(el("h2", {}, "Deliveries"),
    el("div", { class: "toolbar" }, el("label", {}, "Status ", status), refresh, retryAll),
    el("table", {}, el("thead", {}, el("tr", {}, ...["Delivery", "Session", "To", "Status", "Attempts", "Last error", "Updated", ""].map((h) => el("th", {}, h)))), body),
    el("div", { class: "toolbar" }, prev, next, note));
  let page = { deliveries: [] };

  const load = async () => {
    try {
      page = await get("/v3/deliveries" + q({ status: status.value, after: cursors[cursors.length - 1], limit: LIMIT }));
    } catch (e) { note.textContent = errorText(e); return; }
    body.replaceChildren(...page.deliveries.map((d) => {
      const retry = el("button", { type: "button", class: "retry", "data-id": d.id }, "Retry");
      retry.addEventListener("click", async () => {
        try { await post(`/v3/deliveries/${encodeURIComponent(d.id)}/retry`); flash("Retrying " + d.id); setTimeout(load, 500); } catch (e) { flash(errorText(e)); }
      });
      return el("tr", { "data-id": d.id },
        el("td", {}, el("code", {}, d.id)),
        el("td", {}, el("a", { href: "#/sessions/" + encodeURIComponent(d.session_id) }, d.session_id), ` #${d.seq}`),
        el("td", {}, `${d.to.source} ${d.to.ref}`),
        el("td", {}, el("span", { class: "state status-" + d.status }, d.status)),
        el("td", {}, String(d.attempts)),
        el("td", { class: "error" }, d.last_error || ""),
        el("td", {}, fmtTime(d.updated_at)),
        el("td", {}, d.status === "delivered" ? null : retry));
    }));
    note.textContent = `page ${cursors.length}: ${page.deliveries.length} deliveries`;
    prev.disabled = cursors.length < 2;
    next.disabled = !page.next_after;
  };
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
        const p = await get("/v3/deliveries" + q({ status: "dead", after, limit: 500 }));
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
