// The landing page's sign-up form: registers through the API with the page's code and shows
// each error code of the API as a sentence next to the field it concerns.
"use strict";
(function () {
  const form = document.getElementById("signup-form");
  if (!form) return;
  const fields = ["full_name", "email", "password"];
  // Which field an error code is about (the rest are shown under the form).
  const FIELD_OF = {
    email_taken: "email", email_undeliverable: "email", rate_limited: "form",
    referral_code_invalid: "form", referral_code_expired: "form", referral_code_deleted: "form",
    referral_code_exhausted: "form",
  };
  const message = (code) =>
    form.dataset["error" + code.split("_").map((w) => w[0].toUpperCase() + w.slice(1)).join("")] ||
    form.dataset.errorUnknown;

  function clear() {
    for (const name of [...fields, "form"]) {
      document.getElementById(name + "-error").textContent = "";
      const input = document.getElementById(name);
      if (input) input.removeAttribute("aria-invalid");
    }
  }

  function show(field, text) {
    const target = fields.includes(field) ? field : "form";
    document.getElementById(target + "-error").textContent = text;
    const input = document.getElementById(target);
    if (input) input.setAttribute("aria-invalid", "true");
  }

  // After a sign-up here, the chat is linked to the new account by a one-time link: the
  // referral deep link would make a second account and count a second referral.
  async function offerTelegramLink(email, password) {
    const invite = document.getElementById("telegram-invite");
    if (invite) invite.hidden = true;
    const item = document.getElementById("next-telegram");
    if (!item) return;
    try {
      const signIn = await fetch("/api/v1/auth/token", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
        body: new URLSearchParams({ username: email, password: password }),
      });
      if (!signIn.ok) return;
      const token = (await signIn.json()).access_token;
      const link = await fetch("/api/v1/users/me/telegram-link", {
        method: "POST",
        headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      });
      if (link.status !== 201) return;
      document.getElementById("link-telegram").href = (await link.json()).url;
      item.hidden = false;
    } catch (error) {
      // No link offered: the account page makes one later.
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear();
    const body = { referral_code: form.dataset.code };
    for (const name of fields) {
      const value = document.getElementById(name).value.trim();
      if (value || name !== "full_name") body[name] = name === "password" ? document.getElementById(name).value : value;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      if (response.status === 201) {
        document.getElementById("signup").hidden = true;
        document.getElementById("done").hidden = false;
        await offerTelegramLink(body.email, body.password);
        return;
      }
      const problem = await response.json().catch(() => ({}));
      if (problem.code === "validation_error" && Array.isArray(problem.errors)) {
        for (const error of problem.errors) {
          const field = (error.loc || []).find((part) => fields.includes(part));
          show(field || "form", message("invalid_" + (field || "input")));
        }
      } else {
        show(FIELD_OF[problem.code] || "form", message(problem.code || "unknown"));
      }
    } catch (error) {
      show("form", message("unknown"));
    } finally {
      button.disabled = false;
    }
  });
})();
