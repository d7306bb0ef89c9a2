// The account pages: the mailed links (confirm an address, choose a new password) and
// /account (sign in, see your code and link, connect Telegram). Every value is set as text.
"use strict";
(function () {
  const API = "/api/v1";

  // /verify-email: opening the link confirms, by a POST from the page (never a GET side
  // effect); without script the button does the same.
  const verify = document.getElementById("verify-form");
  if (verify && verify.hasAttribute("data-autosubmit")) verify.submit();

  // /reset-password: the new password twice, compared before it is sent.
  const reset = document.getElementById("reset-form");
  if (reset) {
    reset.addEventListener("submit", (event) => {
      const first = document.getElementById("new_password").value;
      const second = document.getElementById("repeat_password").value;
      if (first !== second) {
        event.preventDefault();
        document.getElementById("reset-error").textContent = reset.dataset.mismatch;
      }
    });
  }

  // /account
  const signin = document.getElementById("signin-form");
  if (!signin) return;
  const KEY = "account-token";
  const $ = (id) => document.getElementById(id);

  async function call(method, path, token) {
    const response = await fetch(API + path, {
      method: method,
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
    });
    if (response.status === 401) throw new Error("signed-out");
    return response;
  }

  async function show(token) {
    const me = await (await call("GET", "/users/me", token)).json();
    $("hello").textContent = $("hello").dataset.template.replace("{name}", me.full_name || me.email);
    const code = await call("GET", "/referral-codes/me", token);
    if (code.status === 200) {
      const body = await code.json();
      $("my-code").textContent = body.code;
      $("my-expiry").textContent = new Date(body.expires_at).toLocaleString();
      $("my-page").href = "/r/" + encodeURIComponent(body.code);
      $("my-page").textContent = location.origin + "/r/" + body.code;
      $("share").hidden = false;
      $("new-code").hidden = true;
    } else {
      $("my-code").textContent = $("new-code").dataset.none;
      $("share").hidden = true;
      $("new-code").hidden = false;
    }
    const stats = await (await call("GET", "/users/me/referral-stats", token)).json();
    $("my-referrals").textContent = String(stats.referrals);
    const telegram = $("link-telegram");
    if (telegram) telegram.hidden = me.telegram_id !== null;
    $("signin").hidden = true;
    $("me").hidden = false;
  }

  async function start(token) {
    try {
      await show(token);
    } catch (error) {
      sessionStorage.removeItem(KEY);
      $("me").hidden = true;
      $("signin").hidden = false;
    }
  }

  signin.addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").textContent = "";
    const response = await fetch(API + "/auth/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({ username: $("email").value.trim(), password: $("password").value }),
    });
    if (response.status !== 200) {
      const problem = await response.json().catch(() => ({}));
      const which = problem.code === "account_blocked" ? "blocked"
        : problem.code === "rate_limited" ? "busy" : "failed";
      $("signin-error").textContent = signin.dataset[which];
      return;
    }
    const token = (await response.json()).access_token;
    sessionStorage.setItem(KEY, token);
    await start(token);
  });

  $("forgot").addEventListener("click", async (event) => {
    event.preventDefault();
    const email = $("email").value.trim();
    if (!email) { $("email").focus(); return; }
    await fetch(API + "/auth/password-reset", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: email }),
    });
    $("signin-error").textContent = $("forgot").dataset.sent;
  });

  $("new-code").addEventListener("click", async () => {
    const token = sessionStorage.getItem(KEY);
    const expires = new Date(Date.now() + 30 * 86400 * 1000).toISOString();
    const response = await fetch(API + "/referral-codes", {
      method: "POST",
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
      body: JSON.stringify({ expires_at: expires }),
    });
    if (response.status !== 201) {
      const problem = await response.json().catch(() => ({}));
      $("me-error").textContent = problem.detail || "";
    }
    await start(token);
  });

  const telegram = $("link-telegram");
  if (telegram) {
    telegram.addEventListener("click", async (event) => {
      event.preventDefault();
      const response = await call("POST", "/users/me/telegram-link", sessionStorage.getItem(KEY));
      const body = await response.json().catch(() => ({}));
      if (response.status === 201) location.href = body.url;
      else $("me-error").textContent = body.detail || "";
    });
  }

  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });

  const kept = sessionStorage.getItem(KEY);
  if (kept) start(kept);
})();
