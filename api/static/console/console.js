// The operator console: signs in through /api/v1/auth/token, keeps the token in
// sessionStorage only, and talks to the operator endpoints as any client would. Every value
// reaches the page through textContent: nothing the API says is parsed as HTML.
"use strict";
(function () {
  const API = "/api/v1";
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem("console-token");

  function notice(text) {
    $("notice").textContent = text;
    $("notice").hidden = !text;
  }

  function showSignIn(message) {
    token = null;
    sessionStorage.removeItem("console-token");
    $("console").hidden = true;
    $("sign-out").hidden = true;
    $("sign-in").hidden = false;
    notice(message || "");
  }

  class HttpError extends Error {
    constructor(status, body) { super(body.detail || "HTTP " + status); this.status = status; this.body = body; }
  }

  async function call(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (token) headers.Authorization = "Bearer " + token;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(options.json);
    }
    const response = await fetch(API + path, { method: options.method || "GET", headers, body: options.body });
    if (response.status === 401 && token) {
      showSignIn("Your session has ended: sign in again.");
      throw new HttpError(401, {});
    }
    if (!response.ok) throw new HttpError(response.status, await response.json().catch(() => ({})));
    if (response.status === 204 || response.status === 202) return null;
    const type = response.headers.get("content-type") || "";
    return type.includes("json") ? response.json() : response.text();
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "—" : String(text);
    row.appendChild(td);
    return td;
  }

  function button(label, onClick, kind) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (kind) b.className = kind;
    b.addEventListener("click", async () => {
      b.disabled = true;
      try { await onClick(); } catch (error) { if (error.status !== 401) notice(error.message); }
      finally { b.disabled = false; }
    });
    return b;
  }

  const when = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "—");

  async function loadOverview() {
    const stats = await call("/admin/stats?days=30");
    const totals = $("totals");
    totals.replaceChildren();
    for (const [key, label] of [["users", "Users"], ["referred", "Referred"], ["pending_review", "Under review"],
                                ["qualified", "Qualified"], ["rewards_points", "Reward points"]]) {
      const box = document.createElement("div");
      const dt = document.createElement("dt"); dt.textContent = label;
      const dd = document.createElement("dd"); dd.textContent = stats.totals[key]; dd.id = "total-" + key;
      box.append(dt, dd);
      totals.appendChild(box);
    }
    const svg = await call("/admin/stats/chart.svg?days=30", { headers: { Accept: "image/svg+xml" } });
    const parsed = new DOMParser().parseFromString(svg, "image/svg+xml").documentElement;
    $("chart").replaceChildren(document.importNode(parsed, true));
  }

  async function loadTop() {
    const board = await call("/leaderboard?days=30&limit=10");
    const list = $("top");
    list.replaceChildren();
    for (const item of board.items) {
      const li = document.createElement("li");
      li.textContent = `${item.referrer.full_name || "#" + item.referrer.id} — ${item.referrals}`;
      list.appendChild(li);
    }
    if (!board.items.length) list.replaceChildren(Object.assign(document.createElement("p"), { textContent: "No approved referrals yet.", className: "muted" }));
  }

  async function loadQueue() {
    const page = await call("/admin/referrals?status=pending_review&limit=50");
    const body = $("queue").tBodies[0];
    body.replaceChildren();
    for (const item of page.items) {
      const row = body.insertRow();
      row.dataset.referral = item.id;
      cell(row, `#${item.id} ${item.full_name || ""} ${item.email || ""}`.trim());
      cell(row, `#${item.referrer_id} (${item.referral_code})`);
      cell(row, item.review_reasons.join(", "));
      const actions = cell(row, "");
      actions.textContent = "";
      actions.append(
        button("Approve", async () => { await call(`/admin/referrals/${item.id}/approve`, { method: "POST" }); await refresh(); }),
        " ",
        button("Reject", async () => { await call(`/admin/referrals/${item.id}/reject`, { method: "POST" }); await refresh(); }, "danger"),
      );
    }
    $("queue-empty").hidden = page.items.length > 0;
  }

  async function loadDeliveries() {
    const failed = await call("/admin/deliveries?status=failed&limit=50");
    const recent = await call("/admin/deliveries?limit=50");
    const seen = new Set(failed.items.map((d) => d.id));
    const body = $("deliveries").tBodies[0];
    body.replaceChildren();
    for (const d of [...failed.items, ...recent.items.filter((d) => !seen.has(d.id))]) {
      const row = body.insertRow();
      if (d.status === "failed") row.className = "failed";
      for (const value of [d.id, d.endpoint_id, d.event_type, d.status, d.attempt, d.error]) cell(row, value);
      const actions = cell(row, "");
      actions.textContent = "";
      if (d.status === "failed") {
        actions.append(button("Retry", async () => { await call(`/admin/deliveries/${d.id}/retry`, { method: "POST" }); await loadDeliveries(); }));
      }
    }
  }

  async function loadKeys() {
    const keys = await call("/api-keys");
    const body = $("keys").tBodies[0];
    body.replaceChildren();
    for (const key of keys.items) {
      const row = body.insertRow();
      cell(row, key.name); cell(row, when(key.created_at)); cell(row, when(key.last_used_at));
      const actions = cell(row, "");
      actions.textContent = "";
      actions.append(button("Delete", async () => { await call(`/api-keys/${key.id}`, { method: "DELETE" }); $("new-key").hidden = true; await loadKeys(); await loadAudit(); }, "danger"));
    }
  }

  async function loadAudit() {
    const page = await call("/admin/audit?limit=30");
    const body = $("audit").tBodies[0];
    body.replaceChildren();
    for (const entry of page.items) {
      const row = body.insertRow();
      const who = entry.actor.user_id ? `user #${entry.actor.user_id}` : entry.actor.api_key_id ? `key #${entry.actor.api_key_id}` : "—";
      for (const value of [when(entry.created_at), entry.action, entry.target, who]) cell(row, value);
    }
  }

  async function refresh() {
    await Promise.all([loadOverview(), loadTop(), loadQueue(), loadDeliveries(), loadKeys(), loadAudit()]);
  }

  async function start() {
    if (!token) { showSignIn(); return; }
    try {
      await call("/admin/stats?days=1");
    } catch (error) {
      if (error.status === 403) {
        showSignIn("Operators only: this account is not an operator.");
      } else if (error.status !== 401) {
        showSignIn(error.message);
      }
      return;
    }
    $("sign-in").hidden = true;
    $("console").hidden = false;
    $("sign-out").hidden = false;
    notice("");
    try { await refresh(); } catch (error) { if (error.status !== 401) notice(error.message); }
  }

  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("sign-in-error").textContent = "";
    const form = new URLSearchParams({ username: $("username").value, password: $("password").value });
    const response = await fetch(API + "/auth/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: form,
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      $("sign-in-error").textContent = body.detail || "Could not sign in.";
      return;
    }
    token = body.access_token;
    sessionStorage.setItem("console-token", token);
    await start();
  });

  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await call("/api-keys", { method: "POST", json: { name: $("key-name").value } });
      $("new-key").textContent = `New key (shown only now): ${created.key}`;
      $("new-key").hidden = false;
      $("key-name").value = "";
      await loadKeys();
      await loadAudit();
    } catch (error) { if (error.status !== 401) notice(error.message); }
  });

  $("sign-out").addEventListener("click", () => showSignIn("Signed out."));
  start();
})();
