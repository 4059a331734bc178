// "Test connection" on provider forms (settings sections with data-test-provider, and the setup
// checklist): the form's current values, saved or not, are tried with one cheap real request to the
// provider (POST /admin/api/test-connection); the answer is shown beside the button. Nothing is saved.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  document.querySelectorAll("form[data-test-provider]").forEach((form) => {
    const button = form.querySelector("button.test-connection");
    const result = form.querySelector(".test-result");
    if (!button || !result) return;
    button.addEventListener("click", async () => {
      const values = {};
      form.querySelectorAll("input[name], select[name], textarea[name]").forEach((el) => {
        if (el.name !== "csrf_token") values[el.name] = el.value;
      });
      button.disabled = true;
      result.className = "test-result hint";
      result.textContent = "Testing…";
      delete result.dataset.status;
      try {
        const response = await fetch("/admin/api/test-connection", {
          method: "POST",
          headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
          credentials: "same-origin",
          body: JSON.stringify({ provider: form.dataset.testProvider, values }),
        });
        const body = await response.json().catch(() => ({}));
        if (!response.ok) {
          result.className = "test-result error";
          result.textContent = (body.error && body.error.message) || body.detail || ("Error " + response.status);
          return;
        }
        result.className = "test-result " + (body.ok ? "ok" : "error");
        result.dataset.status = body.status;
        result.textContent = (body.ok ? "OK: " : "") + body.message;
      } catch (err) {
        result.className = "test-result error";
        result.textContent = "The agent could not be reached (" + err.message + ").";
      } finally {
        button.disabled = false;
      }
    });
  });
})();
