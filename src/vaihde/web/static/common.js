// What every vaihde page shares: the API client (session cookie + CSRF header), a DOM builder
// that only ever sets text (never HTML: caller names are untrusted), and time formatting.
"use strict";

const V = (() => {
  const API = "/api/v1";
  let csrf = "";
  let user = null;

  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || `HTTP ${status}`);
      this.status = status;
      this.code = e.code || "http_error";
      this.field = e.field || null;
      this.body = body;
    }
  }

  // method, path under /api/v1, optional JSON body (or {text, type} for raw bodies).
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    let payload;
    if (body !== undefined) {
      if (body && body.raw !== undefined) {
        headers["Content-Type"] = body.type;
        payload = body.raw;
      } else {
        headers["Content-Type"] = "application/json";
        payload = JSON.stringify(body);
      }
    }
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf;
    const resp = await fetch(API + path, {
      method, headers, body: payload, credentials: "same-origin", cache: "no-store",
    });
    let data = null;
    const type = resp.headers.get("Content-Type") || "";
    if (resp.status !== 204 && type.includes("json")) data = await resp.json();
    if (resp.status === 401 && path !== "/session") toLogin();
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  // Once: every request of a page whose session ended answers 401 (the console's stream, its
  // board and directory at once), and a second navigation would abort the first.
  let leaving = false;
  function toLogin() {
    if (leaving) return;
    leaving = true;
    location.assign("/login?next=" + encodeURIComponent(location.pathname));
  }

  // Who is logged in and the CSRF token for changes; sends to /login if nobody is.
  async function whoami() {
    try {
      const s = await api("GET", "/session");
      csrf = s.csrf_token || "";
      user = s.user;
      return s.user;
    } catch (err) {
      if (err.status === 401) toLogin();
      throw err;
    }
  }

  async function logout() {
    try { await api("DELETE", "/session"); } finally { location.assign("/login"); }
  }

  // el("li", {cls: "call", data: {id}, text: "..."}, child, "text", ...): strings become text
  // nodes; there is deliberately no way to pass HTML.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    const p = props || {};
    if (p.cls) node.className = p.cls;
    if (p.text !== undefined && p.text !== null) node.textContent = String(p.text);
    if (p.title) node.title = String(p.title);
    if (p.data) for (const [k, v] of Object.entries(p.data)) node.dataset[k] = String(v);
    if (p.attrs) for (const [k, v] of Object.entries(p.attrs)) node.setAttribute(k, String(v));
    if (p.on) for (const [k, v] of Object.entries(p.on)) node.addEventListener(k, v);
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  // 75 → "1:15", 3700 → "1:01:40"
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
  }

  // An ISO time as "14.00" today, "Tue 14.00" this week, else "3.6. 14.00".
  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return "";
    const now = new Date();
    const hm = `${d.getHours()}.${pad(d.getMinutes())}`;
    if (d.toDateString() === now.toDateString()) return hm;
    const days = (d - now) / 86400000;
    if (days > -1 && days < 6) {
      return d.toLocaleDateString("en-GB", { weekday: "short" }) + " " + hm;
    }
    return `${d.getDate()}.${d.getMonth() + 1}. ${hm}`;
  }

  // An ISO time as the value of an <input type=datetime-local> (the browser's zone).
  function localInput(iso) {
    const d = new Date(iso || "");
    if (isNaN(d)) return "";
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  const STATES = {
    available: "available", on_call: "on a call", busy: "busy", meeting: "in a meeting",
    video_conference: "in a video call", away: "away", vacation: "on vacation",
    sick: "sick", off_work: "off work",
  };
  function stateLabel(state) { return STATES[state] || String(state || "unknown"); }

  // Accent-insensitive folding for client-side matching (team names).
  function fold(s) {
    return String(s || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  function wireHeader() {
    const who = document.getElementById("whoami");
    if (who && user) who.textContent = `${user.display_name || user.username} (${user.role})`;
    const out = document.getElementById("logout");
    if (out) out.addEventListener("click", logout);
  }

  return {
    api, whoami, logout, el, duration, when, localInput, stateLabel, fold, wireHeader, ApiError,
    STATES,
    get user() { return user; },
  };
})();
