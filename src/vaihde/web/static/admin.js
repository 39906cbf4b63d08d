// The admin editor: the company file in a textarea with line numbers; Check lists every problem
// with its line, Diff shows what would change, Apply is offered only after a diff of exactly
// the text being applied (the API applies all or nothing). Read views of employees, menus and
// hours from the applied configuration. With several companies, a picker chooses whose file is
// edited: every request then names it (?company=ID) and nothing touches the others.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const text = $("yaml");
  const gutter = $("gutter");
  let diffed = null; // the text the last diff was shown for
  let marked = new Map(); // line → problem text
  let lineCount = 0;
  let company = null; // the company edited (several companies); null: the only one

  // A path with the chosen company's ?company= (none while the service has one company).
  function forCompany(path) {
    return company === null ? path : `${path}?company=${encodeURIComponent(company)}`;
  }

  function state(msg, bad = false) {
    $("editor-state").textContent = msg;
    $("editor-state").classList.toggle("bad", bad);
  }

  function renderGutter() {
    const n = text.value.split("\n").length;
    if (n !== lineCount) {
      lineCount = n;
      const spans = [];
      for (let i = 1; i <= n; i++) spans.push(V.el("span", { data: { line: i }, text: i }));
      gutter.replaceChildren(...spans);
    }
    for (const span of gutter.querySelectorAll(".bad")) {
      span.classList.remove("bad");
      span.removeAttribute("title");
    }
    for (const [line, why] of marked) {
      const span = gutter.children[line - 1];
      if (span) { span.classList.add("bad"); span.title = why; }
    }
    gutter.scrollTop = text.scrollTop;
  }

  function goToLine(line) {
    const lines = text.value.split("\n");
    const i = Math.max(1, Math.min(line, lines.length)) - 1;
    let start = 0;
    for (let k = 0; k < i; k++) start += lines[k].length + 1;
    text.focus();
    text.setSelectionRange(start, start + lines[i].length);
    const lh = parseFloat(getComputedStyle(text).lineHeight) || 18;
    text.scrollTop = Math.max(0, i * lh - text.clientHeight / 3);
    renderGutter();
  }

  function showProblems(title, problems, warnings) {
    $("result-title").textContent = title;
    $("diff-text").hidden = true;
    marked = new Map();
    const items = [];
    for (const [kind, list] of [["problem", problems || []], ["warning", warnings || []]]) {
      for (const p of list) {
        if (p.line) marked.set(p.line, p.text);
        const where = p.line ? `line ${p.line}` : "";
        const li = V.el("li", { cls: kind, data: p.line ? { line: p.line } : {} },
          where ? V.el("a", { cls: "goto", attrs: { href: "#" }, text: where }) : null,
          where ? ": " : "", p.field ? V.el("code", { text: p.field }) : null,
          p.field ? ": " : "", p.message);
        if (p.line) {
          li.addEventListener("click", (event) => { event.preventDefault(); goToLine(p.line); });
        }
        items.push(li);
      }
    }
    $("problems").replaceChildren(...items);
    renderGutter();
  }

  function yamlBody() { return { raw: text.value, type: "application/yaml" }; }

  function problemsOf(err) {
    return (err.body && err.body.error && err.body.error.problems) || null;
  }

  async function check() {
    state("checking…");
    try {
      const r = await V.api("POST", forCompany("/config/check"), yamlBody());
      if (r.ok) {
        const c = r.counts;
        showProblems("No problems", [], r.warnings);
        $("result-summary").textContent = `${r.company}: ${c.employees} employees, ${c.teams} ` +
          `teams, ${c.menus} menus, ${c.numbers} numbers.` +
          (r.warnings.length ? ` ${r.warnings.length} warning(s).` : "") + " Diff next.";
        state("valid");
      } else {
        showProblems(`${r.problems.length} problem(s)`, r.problems, r.warnings);
        $("result-summary").textContent = "Nothing can be applied until these are fixed. " +
          "Click a problem to go to its line.";
        state(`${r.problems.length} problem(s)`, true);
      }
    } catch (err) {
      state("check failed: " + err.message, true);
    }
  }

  async function diff() {
    state("comparing…");
    const sent = text.value;
    try {
      const r = await V.api("POST", forCompany("/config/diff"), yamlBody());
      showProblems(r.changes.length ? `${r.changes.length} change(s)` : "No changes", [], []);
      const pre = $("diff-text");
      pre.replaceChildren(...r.text.split("\n").map((line) => {
        const m = line.trim().charAt(0);
        const cls = m === "+" ? "add" : m === "-" ? "del" : m === "~" ? "chg" : "";
        return V.el("span", { cls, text: line + "\n" });
      }));
      pre.hidden = false;
      $("result-summary").textContent = r.changes.length
        ? "This is what Apply will change. Apply is enabled for exactly this text."
        : "The file matches what is applied: nothing to apply.";
      diffed = r.changes.length ? sent : null;
      $("apply").disabled = diffed === null || text.value !== diffed;
      state(r.changes.length ? "diff shown: Apply when ready" : "no changes");
    } catch (err) {
      const problems = problemsOf(err);
      if (problems) {
        showProblems(`${problems.length} problem(s)`, problems, []);
        $("result-summary").textContent = "Fix these first: nothing to compare.";
      }
      diffed = null;
      $("apply").disabled = true;
      state("diff failed: " + err.message, true);
    }
  }

  async function apply() {
    if (diffed === null || text.value !== diffed) {
      $("apply").disabled = true;
      state("show the diff of this text first", true);
      return;
    }
    $("apply").disabled = true;
    state("applying…");
    try {
      const r = await V.api("POST", forCompany("/config/apply"), yamlBody());
      diffed = null;
      $("result-title").textContent = r.applied ? `Applied: version ${r.version}` : "Nothing to apply";
      $("result-summary").textContent = r.applied
        ? "The service uses it now: callers, routing and the console directory."
        : "The file matched what was already applied.";
      state(r.applied ? `applied as version ${r.version}` : "nothing changed");
      if (r.applied) $("version").textContent = `version ${r.version}`;
      views.loaded = false;
    } catch (err) {
      const problems = problemsOf(err);
      if (problems) showProblems(`Not applied: ${problems.length} problem(s)`, problems, []);
      state("not applied: " + err.message, true);
    }
  }

  async function reload() {
    state("loading…");
    const resp = await fetch(forCompany("/admin/company.yaml"), { credentials: "same-origin",
      cache: "no-store" });
    if (resp.status === 404) {
      text.value = "";
      state("no configuration has been applied yet: write one and apply it");
    } else if (!resp.ok) {
      state(`could not load the applied configuration (HTTP ${resp.status})`, true);
      return;
    } else {
      text.value = await resp.text();
      const v = resp.headers.get("X-Config-Version");
      $("version").textContent = v ? `version ${v}` : "";
      state("applied version loaded");
    }
    diffed = null;
    $("apply").disabled = true;
    marked = new Map();
    renderGutter();
  }

  text.addEventListener("input", () => {
    if (diffed !== null && text.value !== diffed) {
      $("apply").disabled = true;
      state("changed since the diff: Diff again before applying");
    }
    renderGutter();
  });
  text.addEventListener("scroll", () => { gutter.scrollTop = text.scrollTop; });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Tab" && !event.ctrlKey && !event.altKey) {
      // YAML is indented with spaces; Tab inserts two instead of leaving the editor.
      event.preventDefault();
      text.setRangeText("  ", text.selectionStart, text.selectionEnd, "end");
      text.dispatchEvent(new Event("input"));
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      check();
    }
  });
  $("check").addEventListener("click", check);
  $("diff").addEventListener("click", diff);
  $("apply").addEventListener("click", apply);
  $("reload").addEventListener("click", reload);

  // --- read views --------------------------------------------------------------------------

  const views = { loaded: false, doc: null };

  function table(headings, rowsData) {
    return V.el("table", { cls: "data" },
      V.el("thead", {}, V.el("tr", {}, ...headings.map((h) => V.el("th", { text: h })))),
      V.el("tbody", {}, ...rowsData.map((r) => V.el("tr", {},
        ...r.map((cell) => V.el("td", { text: cell ?? "" }))))));
  }

  function describe(option) {
    if (option === null || typeof option !== "object") return String(option);
    return Object.entries(option).map(([k, v]) =>
      `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  }

  function renderViews(doc) {
    const emps = Object.entries(doc.employees || {});
    $("view-employees").replaceChildren(V.el("h2", { text: `Employees (${emps.length})` }),
      table(["id", "name", "extension", "devices", "numbers", "delegates"], emps.map(([id, e]) =>
        [id, e.name, e.extension || "", (e.devices || []).map(describe).join("; "),
          (e.numbers || []).join(", "), (e.delegates || []).join(", ")])));
    const menus = Object.entries(doc.menus || {});
    $("view-menus").replaceChildren(V.el("h2", { text: `Menus (${menus.length})` }),
      ...menus.map(([id, m]) => V.el("div", { cls: "menu" }, V.el("h3", { text: id }),
        table(["key", "does"], Object.entries(m.options || {}).map(([k, o]) =>
          [k, describe(o)])))));
    const hours = doc.hours || {};
    const days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    $("view-hours").replaceChildren(V.el("h2", { text: "Opening hours" }),
      table(["day", "open"], days.map((d) => [d, hours[d] || "closed"])),
      V.el("h3", { text: "Holidays and exceptions" }),
      table(["date", "hours"], Object.entries({ ...(hours.holidays || {}),
        ...(hours.exceptions || {}) }).map(([d, v]) => [d, describe(v)])));
  }

  // What vaihde itself says to callers (the company file's texts are in the menus).
  async function showPhrases() {
    const resp = await fetch("/admin/phrases.json", { credentials: "same-origin" });
    if (!resp.ok) throw new Error(`could not load the phrases (HTTP ${resp.status})`);
    const got = await resp.json();
    $("view-phrases").replaceChildren(
      V.el("h2", { text: `What vaihde says to callers (${got.phrases.length} phrases)` }),
      table(["key", ...got.languages], got.phrases.map((p) =>
        [p.key, ...got.languages.map((l) => p[l])])),
      V.el("h3", { text: "Recordings (Asterisk's core sounds, in the caller's language)" }),
      table(["sound", "played"], got.recordings.map((r) => [r.sound, r.when])));
    views.phrases = true;
  }

  async function show(view) {
    for (const b of document.querySelectorAll(".tab")) {
      b.setAttribute("aria-pressed", String(b.dataset.view === view));
    }
    for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + view;
    $("result").hidden = view !== "editor";
    if (view === "phrases") {
      if (!views.phrases) {
        try {
          await showPhrases();
        } catch (err) {
          $("view-phrases").replaceChildren(V.el("p", { cls: "error", text: err.message }));
        }
      }
    } else if (view !== "editor" && !views.loaded) {
      try {
        renderViews((await V.api("GET", forCompany("/config"))).document);
        views.loaded = true;
      } catch (err) {
        $("view-" + view).replaceChildren(V.el("p", { cls: "error", text: err.message }));
      }
    }
  }
  for (const b of document.querySelectorAll(".tab")) {
    b.addEventListener("click", () => show(b.dataset.view));
  }

  // Several companies: the picker (the first company is chosen first); one: no picker.
  async function loadCompanies() {
    const got = await V.api("GET", "/config/companies");
    if (got.companies.length < 2) return;
    const picker = $("company");
    picker.replaceChildren(...got.companies.map((c) =>
      V.el("option", { attrs: { value: c.id }, text: `${c.name} (${c.id})` })));
    company = got.companies[0].id;
    picker.value = company;
    $("company-picker").hidden = false;
    picker.addEventListener("change", async () => {
      company = picker.value;
      views.loaded = false;
      $("problems").replaceChildren();
      $("diff-text").hidden = true;
      $("result-title").textContent = "Check, diff, apply";
      await reload();
    });
  }

  (async () => {
    await V.whoami();
    V.wireHeader();
    try {
      await loadCompanies();
    } catch (err) {
      state("could not list the companies: " + err.message, true);
    }
    await reload();
  })();
})();
