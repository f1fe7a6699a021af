// webhooks.js: outbound webhook destinations (/v3/webhooks): create (the
// secret is shown once), disable/enable (PATCH), rotate the secret (shown
// once), replay events since a time, and each destination's recent
// delivery attempts. Admin only.
import { get, post, patch, q, el, fmtTime, errorText, flash } from "./api.js";

export async function show(main) {
  const url = el("input", { id: "webhook-url", type: "url", placeholder: "https://example.com/hook", required: true });
  const desc = el("input", { id: "webhook-description", placeholder: "description" });
  const secretBox = el("div", { id: "secret-box" });
  const list = el("tbody", { id: "webhooks-body" });
  const detail = el("div", { id: "webhook-detail" });
  const form = el("form", { class: "toolbar", id: "webhook-create" }, url, desc, el("button", { type: "submit", class: "primary" }, "Add destination"));
  main.append(el("h2", {}, "Webhooks"), form, secretBox,
    el("table", {}, el("thead", {}, el("tr", {}, ...["Destination", "URL", "State", "Failing since", ""].map((h) => el("th", {}, h)))), list),
    detail);

  const showSecret = (what, secret) => secretBox.replaceChildren(el("div", { class: "panel" },
    el("p", {}, what + " It is shown only this once; copy it now:"), el("div", { class: "secret", id: "secret" }, secret)));

  const load = async () => {
    let hooks;
    try { hooks = (await get("/v3/webhooks")).webhooks; } catch (e) { list.replaceChildren(el("tr", {}, el("td", { class: "error" }, errorText(e)))); return; }
    list.replaceChildren(...hooks.map((h) => {
      const toggle = el("button", { type: "button", class: "toggle" }, h.disabled ? "Enable" : "Disable");
      toggle.addEventListener("click", async () => {
        try { await patch(`/v3/webhooks/${encodeURIComponent(h.id)}`, { disabled: !h.disabled }); load(); } catch (e) { flash(errorText(e)); }
      });
      const rotate = el("button", { type: "button", class: "rotate" }, "Rotate secret");
      rotate.addEventListener("click", async () => {
        try {
          const r = await post(`/v3/webhooks/${encodeURIComponent(h.id)}/rotate-secret`);
          showSecret(`New secret of ${h.id}; the old one keeps signing until ${fmtTime(r.previous_expires)}.`, r.secret);
        } catch (e) { flash(errorText(e)); }
      });
      const attempts = el("button", { type: "button", class: "attempts" }, "Deliveries");
      attempts.addEventListener("click", () => showAttempts(h));
      return el("tr", { "data-id": h.id },
        el("td", {}, el("code", {}, h.id), h.description ? el("div", { class: "muted" }, h.description) : null),
        el("td", {}, h.url),
        el("td", {}, h.disabled ? el("span", { class: "state status-dead" }, "disabled " + (h.disabled_reason || "")) : el("span", { class: "state status-delivered" }, "enabled")),
        el("td", {}, fmtTime(h.failing_since)),
        el("td", {}, toggle, " ", rotate, " ", attempts));
    }));
  };

  const showAttempts = async (h) => {
    const since = el("input", { type: "datetime-local", id: "replay-since" });
    const replay = el("form", { class: "toolbar" }, el("label", {}, "Replay events since ", since), el("button", { type: "submit" }, "Replay"));
    replay.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!since.value) return;
      try {
        const r = await post(`/v3/webhooks/${encodeURIComponent(h.id)}/replay` + q({ since: new Date(since.value).toISOString() }));
        flash(`Enqueued ${r.enqueued} events`);
      } catch (e) { flash(errorText(e)); }
    });
    let page;
    try { page = await get(`/v3/webhooks/${encodeURIComponent(h.id)}/deliveries` + q({ limit: 50 })); } catch (e) { detail.replaceChildren(el("p", { class: "error" }, errorText(e))); return; }
    detail.replaceChildren(el("div", { class: "panel" }, el("h3", {}, "Deliveries to ", el("code", {}, h.id)), replay,
      el("table", {}, el("thead", {}, el("tr", {}, ...["At", "Event", "Session", "Attempt", "Status", "Latency", "Error"].map((x) => el("th", {}, x)))),
        el("tbody", {}, ...page.attempts.map((a) => el("tr", {},
          el("td", {}, fmtTime(a.at)), el("td", {}, a.event_id), el("td", {}, a.session_id, ` #${a.seq}`), el("td", {}, String(a.attempt)),
          el("td", {}, String(a.status_code || "-")), el("td", {}, `${Math.round(a.latency_ns / 1e6)} ms`), el("td", { class: "error" }, a.error || "")))))));
  };

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await post("/v3/webhooks", { url: url.value, description: desc.value || undefined });
      showSecret(`Destination ${r.id} created.`, r.secret);
      url.value = ""; desc.value = "";
      load();
    } catch (e) { flash(errorText(e)); }
  });
  await load();
}
