// The login page: POST /api/v1/session, then on to the page the user asked for (if their role
// may open it) or their role's home page.
"use strict";

(() => {
  const RANK = { employee: 0, operator: 1, admin: 2 };
  const PAGES = { "/console": "operator", "/admin": "admin", "/me": "employee" };
  const HOME = { admin: "/admin", operator: "/console", employee: "/me" };

  function landing(role) {
    const wanted = new URLSearchParams(location.search).get("next");
    if (wanted && PAGES[wanted] && RANK[role] >= RANK[PAGES[wanted]]) return wanted;
    return HOME[role] || "/me";
  }

  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  const button = document.getElementById("login-button");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      const s = await V.api("POST", "/session", {
        username: form.username.value, password: form.password.value,
      });
      location.assign(landing(s.user.role));
    } catch (err) {
      error.textContent = err.status === 401 ? "Wrong username or password." : err.message;
      error.hidden = false;
      form.password.select();
    } finally {
      button.disabled = false;
    }
  });
})();
