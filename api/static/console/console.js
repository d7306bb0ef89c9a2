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
    const response = await fetch(options.root ? path : API + path, { method: options.method || "GET", headers, body: options.body });
    if (response.status === 401 && token) {
      showSignIn("Your session has ended: sign in again.");
      throw new HttpError(401, {});
    }
    if (!response.ok && !(options.accept || []).includes(response.status)) {
      throw new HttpError(response.status, await response.json().catch(() => ({})));
    }
    if (response.status === 204) return null;
    const type = response.headers.get("content-type") || "";
    return type.includes("json") ? response.json() : response.text();
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined || text === "" ? "—" : String(text);
    row.appendChild(td);
    return td;
  }

  function actions(row, ...buttons) {
    const td = document.createElement("td");
    for (const b of buttons) if (b) td.append(b, " ");
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
  const query = (params) => new URLSearchParams(params).toString();

  // A list read page by page: the first page replaces the rows, "More" adds the next one.
  function pager(tableId, moreId, fetchPage, render, emptyId) {
    let cursor = null;
    const body = $(tableId).tBodies[0];
    async function load(next) {
      const page = await fetchPage(next ? cursor : null);
      if (!next) body.replaceChildren();
      for (const item of page.items) render(body.insertRow(), item);
      cursor = page.next_cursor;
      $(moreId).hidden = !cursor;
      if (emptyId) $(emptyId).hidden = body.rows.length > 0;
    }
    $(moreId).addEventListener("click", () => load(true).catch((error) => notice(error.message)));
    return () => load(false);
  }

  // Names instead of bare ids: who a user id is, asked once per id.
  const names = new Map();
  async function learnNames(ids) {
    const unknown = [...new Set(ids)].filter((id) => id !== null && !names.has(id));
    if (!unknown.length) return;
    const found = await call("/admin/users?" + query([...unknown.map((id) => ["id", id]), ["limit", 100]]));
    for (const user of found.items) names.set(user.id, user.full_name || user.email || `#${user.id}`);
    for (const id of unknown) if (!names.has(id)) names.set(id, `#${id}`);
  }
  const nameOf = (id) => (id === null || id === undefined ? "—" : names.get(id) || `#${id}`);

  // -- overview ---------------------------------------------------------------------------
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
    const ready = await call("/health/ready", { root: true, accept: [503] });
    const waited = ready.jobs ? ready.jobs.oldest_due_seconds : null;
    $("backlog").textContent = waited === null ? "The database does not answer."
      : waited > 60 ? `The oldest due job has waited ${Math.round(waited)} s: is a worker running (make worker)?`
      : "Background jobs: nothing is waiting.";
    $("backlog").className = waited === null || waited > 60 ? "warning" : "muted";
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

  // -- campaigns --------------------------------------------------------------------------
  // datetime-local inputs are read and written as UTC.
  const fromInput = (value) => (value ? value + ":00Z" : null);
  const toInput = (iso) => (iso ? new Date(iso).toISOString().slice(0, 16) : "");
  const numberOr = (id, empty) => ($(id).value === "" ? empty : Number($(id).value));

  function rulesText(rules) {
    const parts = [`${rules.referrer_points}+${rules.friend_points} pts`];
    if (rules.referrer_percent) parts.push(`+${rules.referrer_percent}%`);
    if (rules.hold_days) parts.push(`${rules.hold_days}-day hold`);
    if (rules.cap) parts.push(`cap ${rules.cap.rewards}/${rules.cap.days} d`);
    if (rules.credit_window_days) parts.push(`qualify within ${rules.credit_window_days} d`);
    if (rules.milestones.length) parts.push("milestones " + rules.milestones.map((m) => `${m.qualified}:${m.points}`).join(", "));
    if (rules.qualifying_events.join() !== "*") parts.push("events " + rules.qualifying_events.join(", "));
    if (rules.min_amount !== null) parts.push(`from ${rules.min_amount}`);
    if (rules.telegram) parts.push(`chat ${rules.telegram.chat_id}, stay ${rules.telegram.qualify_after_days} d`);
    return parts.join(" · ");
  }

  // A campaign's chat as the bot last checked it: what the operator must fix, in words.
  function chatText(chat) {
    if (!chat) return "";
    const name = chat.title ? `${chat.title} (${chat.chat_id})` : String(chat.chat_id);
    if (chat.ready) return `Chat ${name}: the bot can invite people.`;
    if (chat.status === "unchecked") return `Chat ${name}: not checked yet (the bot checks it when it runs).`;
    const why = chat.status === "not_admin"
      ? "make the bot an administrator with the right to invite users"
      : "add the bot to the chat as an administrator";
    return `Chat ${name} is not ready: ${chat.problem || chat.status}. Fix: ${why}.`;
  }

  let editingCampaign = null;
  function editCampaign(campaign) {
    editingCampaign = campaign;
    const rules = campaign ? campaign.rules : null;
    $("campaign-form-title").textContent = campaign ? `Edit ${campaign.name}` : "New campaign";
    $("campaign-save").textContent = campaign ? "Save campaign" : "Start campaign";
    $("campaign-key").value = campaign ? campaign.key : "";
    $("campaign-key").disabled = !!campaign;
    $("campaign-name").value = campaign ? campaign.name : "";
    $("campaign-starts").value = campaign ? toInput(campaign.starts_at) : "";
    $("campaign-ends").value = campaign ? toInput(campaign.ends_at) : "";
    $("rule-referrer-points").value = rules ? rules.referrer_points : "";
    $("rule-friend-points").value = rules ? rules.friend_points : "";
    $("rule-percent").value = rules ? rules.referrer_percent : 0;
    $("rule-hold").value = rules ? rules.hold_days : 0;
    $("rule-cap-rewards").value = rules && rules.cap ? rules.cap.rewards : "";
    $("rule-cap-days").value = rules && rules.cap ? rules.cap.days : "";
    $("rule-window").value = rules && rules.credit_window_days ? rules.credit_window_days : "";
    $("rule-min-amount").value = rules && rules.min_amount !== null ? rules.min_amount : "";
    $("rule-events").value = rules ? rules.qualifying_events.join(", ") : "*";
    $("rule-milestones").value = rules ? rules.milestones.map((m) => `${m.qualified}:${m.points}`).join(", ") : "";
    $("rule-chat").value = rules && rules.telegram ? rules.telegram.chat_id : "";
    $("rule-stay").value = rules && rules.telegram ? rules.telegram.qualify_after_days : 0;
    $("rule-join-requests").checked = !!(rules && rules.telegram && rules.telegram.join_requests);
    $("campaign-error").textContent = "";
    $("campaign-form").hidden = false;
  }

  function formRules() {
    const rules = {
      referrer_percent: numberOr("rule-percent", 0),
      hold_days: numberOr("rule-hold", 0),
      qualifying_events: $("rule-events").value.split(",").map((e) => e.trim()).filter(Boolean),
      credit_window_days: numberOr("rule-window", null),
      min_amount: numberOr("rule-min-amount", null),
      milestones: $("rule-milestones").value.split(",").map((m) => m.trim()).filter(Boolean).map((m) => {
        const [qualified, points] = m.split(":").map((n) => Number(n.trim()));
        return { qualified, points };
      }),
    };
    if ($("rule-referrer-points").value !== "") rules.referrer_points = Number($("rule-referrer-points").value);
    if ($("rule-friend-points").value !== "") rules.friend_points = Number($("rule-friend-points").value);
    if ($("rule-cap-rewards").value !== "") {
      rules.cap = { rewards: Number($("rule-cap-rewards").value), days: numberOr("rule-cap-days", 30) };
    }
    if ($("rule-chat").value !== "") {
      rules.telegram = {
        chat_id: Number($("rule-chat").value),
        qualify_after_days: numberOr("rule-stay", 0),
        join_requests: $("rule-join-requests").checked,
      };
    }
    if (editingCampaign) rules.review = editingCampaign.rules.review;  // not on the form: kept
    return rules;
  }

  async function loadCampaigns() {
    const list = await call("/campaigns");
    const body = $("campaign-list").tBodies[0];
    body.replaceChildren();
    for (const campaign of list.items) {
      const row = body.insertRow();
      row.dataset.campaign = campaign.key;
      cell(row, `${campaign.name} (${campaign.key})`);
      cell(row, campaign.status);
      cell(row, `${campaign.starts_at ? when(campaign.starts_at) : "from the start"} → ${campaign.ends_at ? when(campaign.ends_at) : "no end"}`);
      cell(row, rulesText(campaign.rules) + (campaign.telegram_chat && !campaign.telegram_chat.ready ? " · chat not ready" : ""));
      actions(row, button("Open", () => openCampaign(campaign.key)), button("Edit", async () => editCampaign(campaign), "quiet"));
    }
  }

  // A queue of held referrals (`filter()`: more of the query), decided with two buttons.
  function reviewQueue(tableId, moreId, emptyId, filter, afterDecision) {
    return pager(tableId, moreId, async (cursor) => {
      const page = await call("/admin/referrals?" + query({ status: "pending_review", ...filter(), limit: 50, ...(cursor ? { cursor } : {}) }));
      await learnNames(page.items.map((item) => item.referrer_id));
      return page;
    }, (row, item) => {
      row.dataset.referral = item.id;
      cell(row, `${item.full_name || ""} ${item.email || ""}`.trim() || `#${item.id}`);
      cell(row, `${nameOf(item.referrer_id)} (${item.referral_code})`);
      cell(row, item.review_reasons.join(", "));
      const decide = (verb) => async () => { await call(`/admin/referrals/${item.id}/${verb}`, { method: "POST" }); await afterDecision(); };
      actions(row, button("Approve", decide("approve")), button("Reject", decide("reject"), "danger"));
    }, emptyId);
  }

  let openCampaignKey = null;
  const loadCampaignQueue = reviewQueue("campaign-queue", "campaign-queue-more", "campaign-queue-empty",
    () => ({ campaign: openCampaignKey }), async () => { await openCampaign(openCampaignKey); await loadQueue(); });

  async function openCampaign(key) {
    const campaign = await call(`/campaigns/${encodeURIComponent(key)}`);
    openCampaignKey = campaign.key;
    $("campaign-title").textContent = `${campaign.name} — ${campaign.status}`;
    const patch = async (changes) => {
      await call(`/campaigns/${encodeURIComponent(campaign.key)}`, { method: "PATCH", json: changes });
      await loadCampaigns(); await openCampaign(campaign.key); await loadAudit();
    };
    const buttons = [button("Edit rules", async () => editCampaign(campaign), "quiet")];
    if (campaign.status === "active") buttons.push(button("Pause", () => patch({ status: "paused" })));
    if (campaign.status === "paused") buttons.push(button("Resume", () => patch({ status: "active" })));
    if (campaign.status !== "ended" && campaign.key !== "default") buttons.push(button("End", () => patch({ status: "ended" }), "danger"));
    $("campaign-actions").replaceChildren(...buttons.flatMap((b) => [b, " "]));
    $("campaign-chat").textContent = chatText(campaign.telegram_chat);
    $("campaign-chat").className = campaign.telegram_chat && !campaign.telegram_chat.ready ? "error" : "muted";
    $("campaign-chat").hidden = !campaign.telegram_chat;
    const funnel = await call(`/campaigns/${encodeURIComponent(campaign.key)}/funnel?days=30`);
    const facts = $("funnel");
    facts.replaceChildren();
    for (const [name, label] of [["link_opens", "Link opens"], ["signups", "Sign-ups"], ["qualified", "Qualified"],
                                 ["rewarded", "Rewarded"], ["pending_review", "Under review"], ["rejected", "Rejected"],
                                 ["points_granted", "Points granted"], ["points_revoked", "Points revoked"],
                                 ["k_factor", "k-factor"], ["median_hours_to_qualify", "Median hours to qualify"]]) {
      const box = document.createElement("div");
      const dt = document.createElement("dt"); dt.textContent = label;
      const dd = document.createElement("dd"); dd.id = "funnel-" + name;
      dd.textContent = funnel[name] === null ? "—" : String(funnel[name]);
      box.append(dt, dd);
      facts.appendChild(box);
    }
    const svg = await call(`/campaigns/${encodeURIComponent(campaign.key)}/funnel.svg?days=30`, { headers: { Accept: "image/svg+xml" } });
    const parsed = new DOMParser().parseFromString(svg, "image/svg+xml").documentElement;
    $("funnel-chart").replaceChildren(document.importNode(parsed, true));
    $("campaign-detail").hidden = false;
    await loadCampaignQueue();
  }

  // -- review -----------------------------------------------------------------------------
  const loadQueue = reviewQueue("queue", "queue-more", "queue-empty", () => ({}), () => refresh());

  // -- users ------------------------------------------------------------------------------
  let userQuery = "";
  const loadUsers = pager("user-list", "users-more", (cursor) =>
    call("/admin/users?" + query({ limit: 20, ...(userQuery ? { query: userQuery } : {}), ...(cursor ? { cursor } : {}) })),
  (row, user) => {
    row.dataset.user = user.id;
    cell(row, `${user.full_name || ""} ${user.email || (user.telegram_id ? "Telegram only" : "erased")}`.trim());
    cell(row, when(user.created_at));
    cell(row, user.blocked ? "blocked" : user.is_superuser ? "operator" : "active");
    actions(row, button("Open", () => openUser(user.id)));
  });

  let openUserId = null;
  const loadUserReferrals = pager("user-referrals", "user-referrals-more", (cursor) =>
    call(`/users/${openUserId}/referrals?` + query({ limit: 20, ...(cursor ? { cursor } : {}) })),
  (row, item) => {
    cell(row, `${item.full_name || ""} ${item.email || ""}`.trim() || `#${item.id}`);
    cell(row, item.status); cell(row, when(item.created_at));
  });
  const loadUserRewards = pager("user-rewards", "user-rewards-more", async (cursor) => {
    const page = await call(`/admin/users/${openUserId}/rewards?` + query({ limit: 20, ...(cursor ? { cursor } : {}) }));
    $("user-balance").textContent = String(page.balance);
    $("user-pending").textContent = String(page.pending);
    return page;
  }, (row, reward) => {
    row.dataset.reward = reward.id;
    cell(row, when(reward.created_at)); cell(row, (reward.points > 0 ? "+" : "") + reward.points);
    cell(row, reward.note || reward.reason);
    cell(row, reward.status === "pending" ? `in hold until ${when(reward.available_at)}` : reward.status);
    cell(row, reward.campaign);
  });

  async function openUser(id) {
    const found = await call("/admin/users?" + query({ id: id }));
    const user = found.items[0];
    if (!user) { notice(`No user #${id}.`); return; }
    openUserId = user.id;
    if (user.referrer_id) await learnNames([user.referrer_id]);
    $("user-title").textContent = `${user.full_name || "No name"} (#${user.id})`;
    $("user-email").textContent = user.email || "—";
    $("user-referrer").textContent = user.referrer_id ? nameOf(user.referrer_id) : "nobody";
    $("user-telegram").textContent = user.telegram_id ? "linked" : "not linked";
    const block = $("user-block");
    block.textContent = user.blocked ? "Unblock" : "Block";
    block.className = user.blocked ? "" : "danger";
    block.hidden = user.is_superuser;  // operators are demoted on the command line
    block.onclick = async () => {
      try {
        await call(`/admin/users/${user.id}/${user.blocked ? "unblock" : "block"}`, { method: "POST" });
        await openUser(user.id); await loadUsers(); await loadAudit();
      } catch (error) { if (error.status !== 401) notice(error.message); }
    };
    $("user-detail").hidden = false;
    await Promise.all([loadUserReferrals(), loadUserRewards()]);
  }

  // -- webhooks ---------------------------------------------------------------------------
  const endpointUrls = new Map();
  function editEndpoint(endpoint) {
    $("endpoint-id").value = endpoint ? endpoint.id : "";
    $("endpoint-url").value = endpoint ? endpoint.url : "";
    $("endpoint-events").value = endpoint ? endpoint.events.join(", ") : "*";
    $("endpoint-description").value = endpoint ? endpoint.description || "" : "";
    $("endpoint-save").textContent = endpoint ? "Save endpoint" : "Add endpoint";
    $("endpoint-cancel").hidden = !endpoint;
  }

  async function loadEndpoints() {
    const list = await call("/webhooks");
    const body = $("endpoints").tBodies[0];
    body.replaceChildren();
    for (const endpoint of list.items) {
      endpointUrls.set(endpoint.id, endpoint.url);
      const row = body.insertRow();
      row.dataset.endpoint = endpoint.id;
      if (!endpoint.enabled) row.className = "failed";
      cell(row, `${endpoint.url}${endpoint.description ? " — " + endpoint.description : ""}`);
      cell(row, endpoint.events.join(", "));
      cell(row, endpoint.enabled
        ? (endpoint.consecutive_failures ? `on, ${endpoint.consecutive_failures} failed in a row` : "on")
        : `off${endpoint.disabled_reason ? ": " + endpoint.disabled_reason : ""}`);
      const patch = (changes) => call(`/webhooks/${endpoint.id}`, { method: "PATCH", json: changes });
      actions(row,
        button("Edit", async () => editEndpoint(endpoint), "quiet"),
        button(endpoint.enabled ? "Disable" : "Enable", async () => { await patch({ enabled: !endpoint.enabled }); await loadWebhooks(); }),
        button("Test", async () => { await call(`/webhooks/${endpoint.id}/test`, { method: "POST" }); notice(`A ping is queued to ${endpoint.url}.`); await loadWebhooks(); }),
        button("Rotate secret", async () => {
          const rotated = await call(`/webhooks/${endpoint.id}/rotate-secret`, { method: "POST" });
          $("endpoint-secret").textContent = `New secret of ${endpoint.url}: ${rotated.secret} (the old one signs too until ${when(rotated.previous_secret_until)})`;
          $("endpoint-secret").hidden = false;
          await loadAudit();
        }),
        button("Retry failed", async () => {
          const done = await call(`/webhooks/${endpoint.id}/deliveries/retry-failed`, { method: "POST" });
          notice(`${done.retried} failed deliveries to ${endpoint.url} are queued again.`);
          await loadWebhooks();
        }),
        button("Delete", async () => { await call(`/webhooks/${endpoint.id}`, { method: "DELETE" }); await loadWebhooks(); }, "danger"));
    }
  }

  const loadDeliveries = pager("deliveries", "deliveries-more", (cursor) =>
    call("/admin/deliveries?" + query({ limit: 30, ...(cursor ? { cursor } : {}) })),
  (row, d) => {
    if (d.status === "failed") row.className = "failed";
    for (const value of [d.id, endpointUrls.get(d.endpoint_id) || `#${d.endpoint_id}`, d.event_type, d.status, d.attempt, d.error]) cell(row, value);
    actions(row, d.status === "failed"
      ? button("Retry", async () => { await call(`/admin/deliveries/${d.id}/retry`, { method: "POST" }); await loadDeliveries(); })
      : null);
  });

  async function loadWebhooks() {
    await loadEndpoints();
    await loadDeliveries();
  }

  // -- jobs -------------------------------------------------------------------------------
  const loadJobs = pager("job-list", "jobs-more", (cursor) =>
    call("/admin/jobs?" + query({ status: "failed", limit: 30, ...(cursor ? { cursor } : {}) })),
  (row, job) => {
    row.dataset.job = job.id;
    for (const value of [job.id, job.kind, `${job.attempts}/${job.max_attempts}`, job.last_error, when(job.finished_at)]) cell(row, value);
    actions(row, job.kind === "webhook.delivery"
      ? null  // retried through its delivery, above
      : button("Retry", async () => { await call(`/admin/jobs/${job.id}/retry`, { method: "POST" }); await loadJobs(); await loadAudit(); }));
  }, "jobs-empty");

  // -- keys and audit ---------------------------------------------------------------------
  async function loadKeys() {
    const keys = await call("/api-keys");
    const body = $("keys").tBodies[0];
    body.replaceChildren();
    for (const key of keys.items) {
      const row = body.insertRow();
      cell(row, key.name); cell(row, when(key.created_at)); cell(row, when(key.last_used_at));
      actions(row, button("Delete", async () => { await call(`/api-keys/${key.id}`, { method: "DELETE" }); $("new-key").hidden = true; await loadKeys(); await loadAudit(); }, "danger"));
    }
  }

  const loadAudit = pager("audit", "audit-more", (cursor) =>
    call("/admin/audit?" + query({ limit: 30, ...(cursor ? { cursor } : {}) })),
  (row, entry) => {
    for (const value of [when(entry.created_at), entry.action, entry.target, entry.actor.label]) cell(row, value);
  });

  async function refresh() {
    await Promise.all([loadOverview(), loadCampaigns(), loadTop(), loadQueue(), loadUsers(), loadWebhooks(), loadJobs(), loadKeys(), loadAudit()]);
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

  function submit(id, handler) {
    $(id).addEventListener("submit", async (event) => {
      event.preventDefault();
      try { await handler(); } catch (error) { if (error.status !== 401) notice(error.message); }
    });
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

  submit("key-form", async () => {
    const created = await call("/api-keys", { method: "POST", json: { name: $("key-name").value } });
    $("new-key").textContent = `New key (shown only now): ${created.key}`;
    $("new-key").hidden = false;
    $("key-name").value = "";
    await loadKeys();
    await loadAudit();
  });

  submit("user-search", async () => {
    userQuery = $("user-query").value.trim();
    await loadUsers();
  });

  submit("adjust-form", async () => {
    await call(`/admin/users/${openUserId}/rewards`, {
      method: "POST", json: { points: Number($("adjust-points").value), note: $("adjust-note").value },
    });
    $("adjust-points").value = ""; $("adjust-note").value = "";
    await loadUserRewards(); await loadAudit(); await loadOverview();
  });

  submit("endpoint-form", async () => {
    const id = $("endpoint-id").value;
    const body = {
      url: $("endpoint-url").value.trim(),
      events: $("endpoint-events").value.split(",").map((e) => e.trim()).filter(Boolean),
      description: $("endpoint-description").value.trim() || null,
    };
    const saved = await call(id ? `/webhooks/${id}` : "/webhooks", { method: id ? "PATCH" : "POST", json: body });
    if (!id) {
      $("endpoint-secret").textContent = `Signing secret of ${saved.url} (keep it for verifying): ${saved.secret}`;
      $("endpoint-secret").hidden = false;
    }
    editEndpoint(null);
    await loadWebhooks(); await loadAudit();
  });
  $("endpoint-cancel").addEventListener("click", () => editEndpoint(null));

  $("campaign-new").addEventListener("click", () => editCampaign(null));
  $("campaign-cancel").addEventListener("click", () => { $("campaign-form").hidden = true; });
  $("campaign-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("campaign-error").textContent = "";
    const body = {
      name: $("campaign-name").value.trim(),
      starts_at: fromInput($("campaign-starts").value),
      ends_at: fromInput($("campaign-ends").value),
      rules: formRules(),
    };
    try {
      const saved = editingCampaign
        ? await call(`/campaigns/${encodeURIComponent(editingCampaign.key)}`, { method: "PATCH", json: body })
        : await call("/campaigns", { method: "POST", json: { key: $("campaign-key").value.trim(), ...body } });
      $("campaign-form").hidden = true;
      editingCampaign = null;
      await loadCampaigns(); await openCampaign(saved.key); await loadAudit();
    } catch (error) {
      if (error.status === 401) return;
      // A 422 names the field: "rules.cap.days: rules.cap.days must be …".
      const first = error.body && error.body.errors && error.body.errors[0];
      $("campaign-error").textContent = first ? `${first.loc.slice(1).join(".")}: ${first.msg}` : error.message;
    }
  });

  submit("refund-form", async () => {
    const id = $("refund-id").value.trim();
    const done = await call(`/conversions/${encodeURIComponent(id)}/refund`, {
      method: "POST", json: { reason: $("refund-reason").value.trim() || null },
    });
    const points = (rewards) => rewards.reduce((sum, r) => sum + r.points, 0);
    $("refund-result").textContent = `Refunded ${done.conversion.external_id}: ${done.revoked.length} rewards in hold revoked (${points(done.revoked)} points), ${done.kept.length} already available kept (${points(done.kept)} points).`;
    $("refund-result").hidden = false;
    $("refund-id").value = ""; $("refund-reason").value = "";
    if (openCampaignKey) await openCampaign(openCampaignKey);
    if (openUserId) await loadUserRewards();
    await loadOverview();
  });

  $("sign-out").addEventListener("click", () => showSignIn("Signed out."));
  start();
})();
