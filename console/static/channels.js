// channels.js: the channels' health, last message in and last catch-ups,
// as GET /readyz reports them (the last message as the replica serving the
// page saw it), refreshed every few seconds; an admin can run a channel's
// catch-up now (POST /v3/channels/{name}/catch-up).
import { get, post, el, fmtTime, errorText, flash, isAdmin } from "./api.js";

export async function show(main, params, session) {
  const catchUp = (name) => {
    const btn = el("button", { type: "button", class: "catch-up", "data-channel": name }, "Catch up now");
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      try {
        const r = await post(`/v3/channels/${encodeURIComponent(name)}/catch-up`);
        flash(`${name}: caught up, ${r.new ?? 0} new of ${r.found ?? 0} found`);
      } catch (e) { flash(`${name}: ${errorText(e)}`); }
      btn.disabled = false;
      load();
    });
    return btn;
  };
  const out = el("div", { id: "channels" });
  main.append(el("h2", {}, "Channels"), out);
  const load = async () => {
    let r;
    try { r = await get("/readyz"); } catch (e) { out.replaceChildren(el("p", { class: "error" }, errorText(e))); return; }
    const names = [...new Set([...Object.keys(r.channels || {}), ...Object.keys(r.catch_up || {})])].sort();
    const last = r.last_event || {};
    out.replaceChildren(
      el("p", {}, "Gateway: ", el("span", { class: "state", id: "ready-status" }, r.status)),
      names.length ? el("table", {}, el("thead", {}, el("tr", {}, ...["Channel", "Health", "Last message in", "Last catch-up", "Trigger", "Took", "Result", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...names.map((n) => {
          const c = (r.catch_up || {})[n];
          const health = (r.channels || {})[n] || "";
          return el("tr", { "data-channel": n }, el("td", {}, n),
            el("td", { class: health === "ok" ? "" : "error" }, health),
            el("td", { class: "last-event" }, last[n] ? fmtTime(last[n]) : "none since start"),
            el("td", {}, c ? fmtTime(c.at) : "never"), el("td", {}, c ? c.trigger : ""), el("td", {}, c ? c.took : ""),
            el("td", { class: c && c.error ? "error" : "muted" }, c ? (c.error || `${c.scopes} places looked at, ${c.found} found, ${c.new} new`) : ""),
            el("td", {}, isAdmin(session) ? catchUp(n) : null));
        }))) : el("p", { class: "muted" }, "No channel is configured."));
  };
  await load();
  const t = setInterval(load, 5000);
  return () => clearInterval(t);
}
