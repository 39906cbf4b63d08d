// The operator console: the live board (waiting, active, parked calls) from the console stream,
// the directory with live availability, and keyboard-first actions. Every string that came
// from a caller, an employee or the server is put on the page as text (V.el), never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const LISTS = { waiting: $("waiting"), active: $("active"), parked: $("parked") };
  const LIST_OF = {
    waiting: "waiting", ringing: "waiting", active: "active", transferring: "active",
    parked: "parked",
  };
  const PATHS = {
    direct_number: "direct number", menu_option: "menu option", extension: "extension",
    dial_by_name: "name search", name_search: "name search", operator: "asked for the operator",
  };

  const calls = new Map(); // call id → Call JSON
  const rows = new Map(); // call id → its <li>
  const avail = new Map(); // employee id → availability JSON (live)
  const details = new Map(); // employee id → GET /employees/{id} JSON
  let selectedCall = null;
  let entries = []; // directory rows shown: {kind: "employee"|"team"|"number", id, name, ...}
  let chosen = -1; // index into entries
  let teams = [];
  let searchSeq = 0;
  let searchAll = false; // search every company's directory, not the picked call's
  let pendingHangup = null;
  let attended = null; // id of the call in an attended transfer
  let myName = ""; // the operator's display name: {operator} in a company's answer phrase
  let rotas = []; // GET /oncall: who is on call now on each rota

  // --- status line and connection ----------------------------------------------------------

  let statusTimer = null;
  function status(text, bad = false) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("bad", bad);
    clearTimeout(statusTimer);
    if (!bad) statusTimer = setTimeout(() => { s.textContent = ""; }, 8000);
  }

  // `down`: with several Asterisks, the names of those vaihde has lost.
  const conn = { stream: "connecting", ami: true, down: [] };
  function amiState(ami) {
    conn.ami = !(ami && ami.connected === false);
    conn.down = ami && ami.asterisks ? ami.asterisks.filter((a) => !a.connected)
      .map((a) => a.name) : [];
  }
  function showConnection() {
    const c = $("conn");
    const banner = $("banner");
    const which = conn.down.length ? " " + conn.down.join(", ") : "";
    c.className = "conn " + (conn.stream === "live" ? (conn.ami ? "live" : "degraded")
      : conn.stream);
    c.textContent = conn.stream === "live" ? (conn.ami ? "live" : `Asterisk${which} link down`)
      : conn.stream === "down" ? "disconnected" : "connecting…";
    let text = "";
    if (conn.stream === "down") {
      text = "Disconnected from the vaihde service: the calls shown may be out of date. " +
        "Reconnecting by itself…";
    } else if (!conn.ami && which) {
      text = `vaihde has lost its connection to Asterisk${which} (AMI): calls there still ` +
        "reach people, but they are not on this board and cannot be acted on until it is " +
        "back. Calls on the other Asterisks are shown as usual.";
    } else if (!conn.ami) {
      text = "vaihde has lost its connection to Asterisk (AMI): calls still reach people, but " +
        "this board may be out of date and actions are refused until it is back.";
    }
    banner.textContent = text;
    banner.hidden = !text;
    document.body.classList.toggle("disconnected", conn.stream === "down");
  }

  // --- calls -------------------------------------------------------------------------------

  function since(iso) {
    return V.el("span", { cls: "ticking", data: { since: iso || "" },
      text: iso ? V.duration((Date.now() - Date.parse(iso)) / 1000) : "" });
  }

  function callerBits(c) {
    const caller = c.caller || {};
    const out = [V.el("span", { cls: "number", text: caller.number || "unknown number" })];
    if (caller.name) out.push(V.el("span", { cls: "cid-name", text: caller.name }));
    if (caller.known) {
      const k = caller.known;
      out.push(V.el("span", { cls: "known",
        text: [k.name, k.organisation].filter(Boolean).join(", ") }));
    }
    return out;
  }

  function soughtBits(c) {
    const s = c.sought;
    if (!s) return [];
    const how = [PATHS[s.path] || s.path, s.detail].filter(Boolean).join(": ");
    const out = [V.el("span", { cls: "sought", text: "→ " + (s.name || s.id) }),
      V.el("span", { cls: "path", text: how })];
    const a = c.availability;
    if (a && a.state) {
      out.push(V.el("span", { cls: "state st-" + a.state,
        text: V.stateLabel(a.state) + (a.until ? " until " + V.when(a.until) : "") }));
      if (a.note) out.push(V.el("span", { cls: "note", text: a.note }));
    }
    return out;
  }

  // The company's account profile: its name and answer phrase on every card; its instructions,
  // what to ask and the urgent rules on the picked call's card.
  function profileBits(c) {
    const p = c.profile;
    if (!p) return [];
    const out = [];
    const answer = p.answer ? p.answer.split("{operator}").join(myName) : "";
    out.push(V.el("div", { cls: "line profile-head" },
      V.el("span", { cls: "company", text: p.company }),
      ...(answer ? [V.el("span", { cls: "answer", title: "answer the call with",
        text: `“${answer}”` })] : [])));
    const more = [];
    if (p.instructions) more.push(V.el("p", { cls: "instructions", text: p.instructions }));
    if (p.ask && p.ask.length) {
      more.push(V.el("div", { cls: "ask" }, V.el("span", { cls: "label", text: "Ask: " }),
        V.el("ol", {}, ...p.ask.map((q) => V.el("li", { text: q })))));
    }
    if (p.urgent && p.urgent.length) {
      more.push(V.el("div", { cls: "urgent" }, V.el("span", { cls: "label", text: "Urgent: " }),
        V.el("ul", {}, ...p.urgent.map((u) => V.el("li", {
          text: u.when + (u.contact ? ` → ${u.name || u.contact}` : "") })))));
    }
    if (more.length) out.push(V.el("div", { cls: "profile-more" }, ...more));
    return out;
  }

  function callRow(c) {
    const list = LIST_OF[c.state] || "active";
    const li = rows.get(c.id) || V.el("li", { cls: "call", data: { id: c.id } });
    li.className = "call " + list + (c.bounced ? " bounced" : "") +
      (c.id === selectedCall ? " selected" : "") + (c.state === "ringing" ? " ringing" : "");
    li.dataset.state = c.state;
    const line1 = V.el("div", { cls: "line" });
    const line2 = V.el("div", { cls: "line sub" });
    if (list === "waiting") {
      line1.append(V.el("span", { cls: "pos", text: c.position != null ? c.position : "·" }),
        since(c.since));
    } else {
      line1.append(since(list === "active" ? (c.answered_at || c.since) : c.since));
    }
    line1.append(...callerBits(c));
    if (c.company) {
      // Whose call it is: the operator answers in this company's name.
      line1.append(V.el("span", { cls: "company", title: "company " + c.company.id,
        text: c.company.name }));
    }
    if (c.dialled) {
      // Which company number (or whose direct number) the caller dialled.
      line1.append(V.el("span", { cls: "dialled", title: "dialled " + c.dialled.number,
        text: "on " + (c.dialled.label ? `${c.dialled.label} (${c.dialled.number})`
          : c.dialled.number) }));
    }
    if (c.earlier && (c.earlier.today || c.earlier.last_30_days)) {
      line1.append(V.el("span", { cls: "earlier", title: "earlier contacts from this number",
        text: `earlier: ${c.earlier.today} today, ${c.earlier.last_30_days} in 30 d` }));
    }
    if (c.asterisk) {
      line1.append(V.el("span", { cls: "asterisk", title: "the Asterisk that holds this call",
        text: c.asterisk }));
    }
    if (c.state === "ringing") line1.append(V.el("span", { cls: "badge", text: "ringing you" }));
    if (c.transfer) {
      const t = c.transfer;
      line1.append(V.el("span", { cls: "badge transfer", text: `${t.mode === "attended"
        ? "attended transfer" : "transferring"} to ${t.name || t.target}` +
        (t.mode === "attended" ? (t.answered ? " — answered: C complete, X cancel"
          : " — ringing: X cancel") : "") }));
    } else if (c.state === "transferring") {
      line1.append(V.el("span", { cls: "badge transfer", text: "transferring" }));
    }
    if (c.parking) {
      line1.append(V.el("span", { cls: "badge", text: "parked at " +
        (c.parking.space || c.parking) }));
    }
    line2.append(...soughtBits(c));
    if (c.what_happened) line2.append(V.el("span", { cls: "what", text: c.what_happened }));
    if (list !== "waiting" && c.parties && c.parties.length) {
      line2.append(V.el("span", { cls: "parties",
        text: "with " + c.parties.map((p) => p.name || p.number || p.channel).join(", ") }));
    }
    const kids = [line1, line2, ...profileBits(c)];
    const recent = (c.earlier && c.earlier.recent) || [];
    if (recent.length) {
      // The caller's last calls, on the picked call's card: when, whom, how it ended.
      kids.push(V.el("ol", { cls: "history", attrs: { "aria-label": "Earlier calls" } },
        ...recent.map((r) => V.el("li", {},
          V.el("span", { cls: "when", text: V.when(r.at) }),
          V.el("span", { cls: "whom", text: r.sought ? "→ " + r.sought.name : "→ (no choice)" }),
          V.el("span", { cls: "ended", text: r.ended || r.outcome })))));
    }
    if (c.bounced) {
      const b = c.bounced;
      kids.unshift(V.el("div", { cls: "bounce", text: `Bounced back from ${b.target}` +
        (b.why ? ` (${b.why})` : "") + (b.by ? ` — transferred by ${b.by}` : "") }));
    }
    li.replaceChildren(...kids);
    return li;
  }

  function sortKey(c) {
    const position = c.position != null ? c.position : 1e9;
    // Several Asterisks (calls name theirs): positions are each one's own, so the line is by
    // waiting time, as "answer next" takes it.
    if (c.asterisk) return [Date.parse(c.since) || 0, position, c.id];
    return [position, Date.parse(c.since) || 0, c.id];
  }

  function before(a, b) {
    const ka = sortKey(a), kb = sortKey(b);
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] < kb[i] ? -1 : 1;
    return 0;
  }

  // What a row shows besides its queue position: a change of position alone (everyone behind
  // a caller who left moves up) updates one number instead of rebuilding the row.
  function looks(c) {
    return JSON.stringify(Object.assign({}, c, { position: null, story: null }));
  }

  function render(c) {
    const li = rows.get(c.id);
    const look = looks(c);
    if (li && li.look === look) {
      const pos = li.querySelector(".pos");
      if (pos) pos.textContent = c.position != null ? c.position : "·";
      return;
    }
    const row = callRow(c);
    row.look = look;
    rows.set(c.id, row);
  }

  // Events are applied to the data as they come; the page is brought up to date once per burst
  // (the stream's messages of one burst are queued as separate tasks before this one runs).
  const pending = new Map(); // call id → Call, or null when it is gone
  let flushQueued = false;
  function later(id, c) {
    pending.set(id, c);
    if (!flushQueued) {
      flushQueued = true;
      setTimeout(flush, 0);
    }
  }

  function flush() {
    flushQueued = false;
    const selIndex = navigable().indexOf(selectedCall);
    for (const [id, c] of pending) {
      if (c !== null) {
        render(c);
      } else if (rows.has(id)) {
        rows.get(id).remove();
        rows.delete(id);
      }
    }
    pending.clear();
    // Each list in its order; a row that changed lists moves with insertBefore.
    for (const [name, list] of Object.entries(LISTS)) {
      const want = [...calls.values()].filter((c) => (LIST_OF[c.state] || "active") === name)
        .sort(before).map((c) => rows.get(c.id));
      want.forEach((li, i) => {
        if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
      });
    }
    if (selectedCall && !calls.has(selectedCall)) {
      // The picked call went: the one that took its place is picked.
      const order = navigable();
      selectedCall = null;
      select(order.length ? order[Math.min(Math.max(selIndex, 0), order.length - 1)] : null);
    }
    counts();
  }

  function upsert(c) {
    calls.set(c.id, c);
    if (c.transfer && c.transfer.mode === "attended" && V.user &&
        c.transfer.by === V.user.username) attended = c.id;
    else if (attended === c.id) attended = null;
    later(c.id, c);
  }

  function removeCall(id) {
    calls.delete(id);
    if (attended === id) attended = null;
    later(id, null);
  }

  function setBoard(board) {
    const seen = new Set();
    for (const name of ["waiting", "active", "parked"]) {
      for (const c of board[name] || []) { seen.add(c.id); upsert(c); }
    }
    for (const id of [...calls.keys()]) if (!seen.has(id)) removeCall(id);
    amiState(board.ami);
    showConnection();
  }

  function counts() {
    for (const name of Object.keys(LISTS)) $(name + "-count").textContent =
      LISTS[name].children.length;
    $("waiting-empty").hidden = LISTS.waiting.children.length > 0;
    if (!selectedCall && rows.size) select(navigable()[0]);
  }

  function navigable() {
    return [...LISTS.waiting.children, ...LISTS.active.children, ...LISTS.parked.children]
      .map((li) => li.dataset.id);
  }

  function select(id) {
    if (selectedCall && rows.get(selectedCall)) rows.get(selectedCall).classList.remove("selected");
    selectedCall = id && calls.has(id) ? id : null;
    const li = selectedCall && rows.get(selectedCall);
    if (li) {
      li.classList.add("selected");
      li.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    const order = navigable();
    if (!order.length) return;
    const i = order.indexOf(selectedCall);
    select(order[Math.min(order.length - 1, Math.max(0, i < 0 ? 0 : i + step))]);
  }

  setInterval(() => {
    const now = Date.now();
    for (const span of document.querySelectorAll(".ticking")) {
      const t = Date.parse(span.dataset.since);
      if (t) span.textContent = V.duration((now - t) / 1000);
    }
  }, 1000);

  // --- the stream --------------------------------------------------------------------------

  let source = null;
  let retryMs = 1000;
  function connect() {
    source = new EventSource("/api/v1/console/stream");
    const on = (name, fn) => source.addEventListener(name, (e) => {
      try { fn(JSON.parse(e.data)); } catch (err) { console.error(name, err); }
    });
    on("board", (b) => { conn.stream = "live"; retryMs = 1000; setBoard(b); });
    on("call", upsert);
    on("gone", (g) => removeCall(g.id));
    on("positions", (moved) => {
      for (const [id, position] of Object.entries(moved)) {
        const c = calls.get(id);
        if (c) upsert(Object.assign({}, c, { position }));
      }
    });
    on("ami", (a) => { amiState(a); showConnection(); });
    on("availability", (a) => {
      const id = a.employee || a.employee_id;
      if (!id) return;
      avail.set(id, Object.assign({}, avail.get(id) || {}, a));
      refreshPerson(id);
      if (rotas.some((r) => r.people.some((p) => p.id === id))) showRotas();
    });
    source.onopen = () => { conn.stream = "live"; showConnection(); };
    source.onerror = () => {
      conn.stream = "down";
      showConnection();
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (the server answered with an error, e.g. after a restart or
        // when the session ended): check the session, then try again with a backoff.
        source.close();
        setTimeout(async () => {
          try {
            const me = await V.whoami();
            // No longer an operator (the stream was ended for it): go to the user's own page.
            if (me && me.role !== "operator" && me.role !== "admin") {
              location.assign("/");
              return;
            }
          } catch (err) {
            if (err.status === 401) return;  // whoami is taking the page to /login
          }
          connect();
        }, retryMs);
        retryMs = Math.min(retryMs * 2, 10000);
      }
    };
  }

  // --- directory ---------------------------------------------------------------------------

  // Whether each phone can ring now (from Asterisk); mobiles are never known.
  const REACH = { reachable: "reachable", in_use: "in use", unreachable: "unreachable" };

  function availabilityOf(id, fallback) {
    return avail.get(id) || fallback || null;
  }

  function stateBits(a) {
    if (!a) return [];
    const out = [V.el("span", { cls: "state st-" + a.state,
      text: V.stateLabel(a.state) + (a.until ? " until " + V.when(a.until) : "") })];
    if (a.on_call && a.state !== "on_call") out.push(V.el("span", { cls: "badge oncall",
      text: "on a call" }));
    if (a.note_for_callers) out.push(V.el("span", { cls: "note", title: "note for callers",
      text: "“" + a.note_for_callers + "”" }));
    if (a.internal_note) out.push(V.el("span", { cls: "internal", title: "internal note",
      text: a.internal_note }));
    return out;
  }

  // Why a search found someone who is not named so: their title or the topic they answer for.
  function foundBy(e) {
    const out = [];
    const matched = e.matched || [];
    if (e.title && (matched.includes("title") || e.kind === "employee")) {
      out.push(V.el("span", { cls: "title", text: e.title }));
    }
    if (matched.includes("topic") && e.topics && e.topics.length) {
      out.push(V.el("span", { cls: "topics", title: "answers for",
        text: "answers for: " + e.topics.join(", ") }));
    }
    return out;
  }

  function personRow(e, i) {
    const li = V.el("li", { cls: "entry " + e.kind + (i === chosen ? " chosen" : ""),
      data: { kind: e.kind, id: e.id, index: i } });
    if (e.kind === "employee") {
      li.append(V.el("span", { cls: "name", text: e.name }),
        V.el("span", { cls: "ext", text: e.extension || "" }),
        V.el("span", { cls: "teams", text: (e.teams || []).join(", ") }),
        ...foundBy(e),
        ...stateBits(availabilityOf(e.id, e.availability)));
    } else if (e.kind === "team") {
      li.append(V.el("span", { cls: "name", text: e.name }),
        V.el("span", { cls: "teams", text: `team · ${(e.members || []).length} people` }),
        ...foundBy(e));
    } else {
      li.append(V.el("span", { cls: "name", text: e.id }),
        V.el("span", { cls: "teams", text: "number (T transfers there)" }));
    }
    li.addEventListener("click", () => choose(i));
    return li;
  }

  function renderEntries() {
    $("people").replaceChildren(...entries.map(personRow));
    renderPerson();
  }

  function refreshPerson(id) {
    entries.forEach((e, i) => {
      if (e.kind === "employee" && e.id === id) {
        const old = $("people").children[i];
        if (old) old.replaceWith(personRow(e, i));
      }
    });
    const e = entries[chosen];
    if (e && e.kind === "employee" && e.id === id) renderPerson();
  }

  function choose(i) {
    const list = $("people");
    if (list.children[chosen]) list.children[chosen].classList.remove("chosen");
    chosen = entries.length ? Math.max(0, Math.min(entries.length - 1, i)) : -1;
    if (list.children[chosen]) {
      list.children[chosen].classList.add("chosen");
      list.children[chosen].scrollIntoView({ block: "nearest" });
    }
    renderPerson();
  }

  async function loadDetails(id) {
    try {
      const d = await V.api("GET", "/employees/" + encodeURIComponent(id));
      details.set(id, d);
      if (d.availability) avail.set(id, Object.assign({}, avail.get(id) || {}, d.availability));
      const e = entries[chosen];
      if (e && e.id === id) renderPerson();
    } catch (err) { /* the row still shows what the search returned */ }
  }

  function renderPerson() {
    const box = $("person");
    const e = entries[chosen];
    if (!e) { box.replaceChildren(); return; }
    if (e.kind !== "employee") {
      box.replaceChildren(V.el("h3", { text: e.kind === "team" ? e.name : e.id },
        e.title ? V.el("span", { cls: "muted", text: " · " + e.title }) : null),
        e.kind === "team" ? V.el("p", { cls: "muted", text: "Team members: " +
          (e.members || []).join(", ") }) : null,
        e.topics && e.topics.length ? V.el("p", {}, V.el("span", { cls: "label",
          text: "Answers for: " }), e.topics.join(", ")) : null);
      return;
    }
    const d = details.get(e.id);
    if (!d) loadDetails(e.id);
    const a = availabilityOf(e.id, e.availability);
    const parts = [V.el("h3", { text: e.name }, d && d.title ? V.el("span",
      { cls: "muted", text: " · " + d.title }) : null)];
    parts.push(V.el("p", { cls: "avail" }, ...stateBits(a),
      a && a.set_by ? V.el("span", { cls: "muted", text: `set by ${a.set_by}` }) : null));
    if (d) {
      if (d.delegates && d.delegates.length) {
        parts.push(V.el("p", {}, V.el("span", { cls: "label", text: "Delegate: " }),
          ...d.delegates.map((g) => V.el("span", { cls: "delegate" }, g.name + " ",
            V.el("span", { cls: "state st-" + g.availability.state,
              text: V.stateLabel(g.availability.state) })))));
      }
      // Live from the stream's availability events when one came, else as loaded.
      const devices = (a && a.devices) || d.devices || [];
      parts.push(V.el("p", {}, V.el("span", { cls: "label", text: "Devices: " }),
        ...devices.map((dev) => V.el("span", { cls: "device reach-" + (dev.reach || "unknown"),
          text: `${dev.kind}: ${dev.dial}` + (REACH[dev.reach] ? " · " + REACH[dev.reach] : "")
        }))));
      const numbers = [d.extension ? "ext " + d.extension : null, ...(d.numbers || [])]
        .filter(Boolean);
      if (numbers.length) parts.push(V.el("p", {}, V.el("span", { cls: "label",
        text: "Numbers: " }), numbers.join(", ")));
      if (d.teams && d.teams.length) parts.push(V.el("p", {}, V.el("span", { cls: "label",
        text: "Teams: " }), d.teams.map((t) => t.name).join(", ")));
    }
    if (e.topics && e.topics.length) parts.push(V.el("p", {}, V.el("span", { cls: "label",
      text: "Answers for: " }), e.topics.join(", ")));
    parts.push(V.el("p", { cls: "hint", text: "T transfer · M message · S set availability" }));
    box.replaceChildren(...parts);
  }

  async function search() {
    const q = $("search").value.trim();
    const seq = ++searchSeq;
    let found = [];
    let teamHits = [];
    try {
      if (!q) {
        const r = await V.api("GET", "/employees");
        found = r.employees.map((e) => ({ kind: "employee", ...e }));
        teamHits = teams.map((t) => ({ kind: "team", ...t }));
      } else {
        // People and teams by name, title or topic ("invoices" finds who answers for them),
        // ranked on one scale by the server.
        // The picked call's company by default; * (searchAll) searches every company's.
        const call = selectedCall && calls.get(selectedCall);
        const company = !searchAll && call && call.company ? call.company.id : "*";
        const r = await V.api("GET", "/directory/search?limit=30&q=" + encodeURIComponent(q) +
          "&company=" + encodeURIComponent(company));
        found = r.hits.map((h) => ({ kind: "employee", id: h.employee_id, name: h.name,
          extension: h.extension, teams: h.teams, title: h.title, topics: h.topics,
          matched: h.matched, score: h.score, availability: h.availability }));
        teamHits = (r.teams || []).map((h) => {
          const known = teams.find((t) => t.id === h.team_id) || {};
          return { kind: "team", id: h.team_id, name: h.name, title: h.title,
            topics: h.topics, matched: h.matched, score: h.score,
            members: known.members || [] };
        });
      }
    } catch (err) {
      if (seq === searchSeq) status("Directory search failed: " + err.message, true);
      return;
    }
    if (seq !== searchSeq) return; // a newer search is on its way
    // Best first; at equal scores people before teams (sort is stable).
    entries = [...found, ...teamHits].sort((a, b) => (b.score || 0) - (a.score || 0));
    if (/^\+?\d{2,20}$/.test(q)) entries.push({ kind: "number", id: q, name: q });
    chosen = entries.length ? 0 : -1;
    renderEntries();
  }

  let searchTimer = null;
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 60);
  });

  // --- actions -----------------------------------------------------------------------------

  function callLabel(c) {
    const caller = c.caller || {};
    return (caller.known && caller.known.name) || caller.name || caller.number || "the call";
  }

  async function act(label, path, body) {
    status(label + "…");
    try {
      const r = await V.api("POST", "/console" + path, body || {});
      status(label + (r && r.space ? ` — parking space ${r.space}` : " — sent"));
      return r;
    } catch (err) {
      status(`${label} failed: ${err.message}`, true);
      return null;
    }
  }

  function picked(states) {
    const c = selectedCall && calls.get(selectedCall);
    if (!c) { status("Pick a call first (↑ ↓)", true); return null; }
    if (states && !states.includes(c.state)) {
      status(`That call is ${c.state}; this does not apply to it`, true);
      return null;
    }
    return c;
  }

  function target() {
    const e = entries[chosen];
    if (!e) return null;
    if (e.kind === "employee") return { to: { employee: e.id }, name: e.name };
    if (e.kind === "team") return { to: { team: e.id }, name: e.name };
    return { to: { number: e.id }, name: e.id };
  }

  const path = (c, rest) => "/calls/" + encodeURIComponent(c.id) + rest;

  const actions = {
    async answerNext() {
      // The answered call becomes the picked one: T, P, H act on it next.
      const r = await act("Answering the next call", "/answer-next");
      if (r && r.call_id && calls.has(r.call_id)) select(r.call_id);
    },
    answer() {
      const c = picked();
      if (!c) return;
      if (c.state === "parked") return actions.retrieve();
      return act("Answering " + callLabel(c), path(c, "/answer"));
    },
    async transfer(mode) {
      const c = picked();
      const t = target();
      if (!c) return;
      if (!t) { status("Choose whom to transfer to: / then type a name", true); return; }
      const r = await act(`${mode === "attended" ? "Attended transfer" : "Transferring"} ` +
        `${callLabel(c)} to ${t.name}`, path(c, "/transfer"), { to: t.to, mode });
      if (r && mode === "attended") attended = c.id;
    },
    complete() {
      const c = calls.get(attended) || picked();
      if (c) act("Completing the transfer", path(c, "/transfer/complete"));
    },
    cancel() {
      const c = calls.get(attended) || picked();
      if (c) act("Cancelling the transfer", path(c, "/transfer/cancel"));
    },
    park() { const c = picked(); if (c) act("Parking " + callLabel(c), path(c, "/park")); },
    retrieve() {
      const c = picked(["parked"]);
      if (c) act("Retrieving " + callLabel(c), path(c, "/retrieve"));
    },
    hangup() {
      const c = picked();
      if (!c) return;
      if (pendingHangup && pendingHangup.id === c.id && Date.now() < pendingHangup.until) {
        pendingHangup = null;
        act("Hanging up " + callLabel(c), path(c, "/hangup"));
      } else {
        pendingHangup = { id: c.id, until: Date.now() + 3000 };
        status(`Press H again to hang up ${callLabel(c)}`);
      }
    },
    message() {
      const e = entries[chosen];
      if (!e || e.kind === "number") { status("Choose a person or team first (/)", true); return; }
      const c = selectedCall && calls.get(selectedCall);
      const f = $("message-form");
      f.dataset.kind = e.kind;
      f.dataset.id = e.id;
      $("message-for").textContent = e.name;
      f.caller_number.value = (c && c.caller && c.caller.number) || "";
      f.caller_name.value = c ? ((c.caller.known && c.caller.known.name) || c.caller.name || "")
        : "";
      f.dataset.call = c ? c.id : "";
      f.text.value = "";
      $("message-error").hidden = true;
      $("message-dialog").showModal();
      f.text.focus();
    },
    availability() {
      const e = entries[chosen];
      if (!e || e.kind !== "employee") { status("Choose a person first (/)", true); return; }
      const f = $("availability-form");
      const a = availabilityOf(e.id, e.availability) || {};
      f.dataset.id = e.id;
      $("availability-for").textContent = e.name;
      f.state.value = a.state && a.state !== "on_call" ? a.state : "available";
      f.until.value = V.localInput(a.until);
      f.note_for_callers.value = a.note_for_callers || "";
      f.internal_note.value = a.internal_note || "";
      $("availability-error").hidden = true;
      $("availability-dialog").showModal();
      f.state.focus();
    },
  };

  for (const [value, label] of Object.entries(V.STATES)) {
    if (value !== "on_call") {
      $("availability-state").append(V.el("option", { attrs: { value }, text: label }));
    }
  }

  for (const d of document.querySelectorAll("dialog")) {
    for (const b of d.querySelectorAll("[data-close]")) b.addEventListener("click", () => d.close());
  }

  $("message-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = event.target;
    const body = { for: { [f.dataset.kind]: f.dataset.id }, text: f.text.value.trim() };
    // Empty fields are left out rather than sent as "" (the API validates what it is given).
    if (f.caller_number.value.trim()) body.caller_number = f.caller_number.value.trim();
    if (f.caller_name.value.trim()) body.caller_name = f.caller_name.value.trim();
    if (f.dataset.call) body.call_id = f.dataset.call;
    try {
      await V.api("POST", "/messages", body);
      $("message-dialog").close();
      status(`Message for ${$("message-for").textContent} saved`);
    } catch (err) {
      $("message-error").textContent = err.message;
      $("message-error").hidden = false;
    }
  });
  $("message-form").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      event.currentTarget.requestSubmit();
    }
  });

  $("availability-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = event.target;
    const body = { state: f.state.value, note_for_callers: f.note_for_callers.value.trim(),
      internal_note: f.internal_note.value.trim() };
    if (f.until.value) body.until = new Date(f.until.value).toISOString();
    try {
      const r = await V.api("PUT", `/employees/${encodeURIComponent(f.dataset.id)}/availability`,
        body);
      avail.set(f.dataset.id, r.availability);
      refreshPerson(f.dataset.id);
      $("availability-dialog").close();
      status(`Availability of ${$("availability-for").textContent} saved`);
    } catch (err) {
      $("availability-error").textContent = err.message;
      $("availability-error").hidden = false;
    }
  });

  // --- keyboard ----------------------------------------------------------------------------

  function onSearchKey(event) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      choose(chosen + (event.key === "ArrowDown" ? 1 : -1));
    } else if (event.key === "Enter") {
      event.preventDefault();
      $("search").blur();
      const e = entries[chosen];
      if (e) status(`Chosen: ${e.name} — T transfers the picked call there`);
    } else if (event.key === "Escape") {
      event.preventDefault();
      if ($("search").value) { $("search").value = ""; search(); } else $("search").blur();
    }
  }

  document.addEventListener("keydown", (event) => {
    if (document.querySelector("dialog[open]")) return; // the dialog has the keys
    if (event.target === $("search")) { onSearchKey(event); return; }
    if (event.target.closest && event.target.closest("input, textarea, select")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    const handlers = {
      a: actions.answerNext, A: actions.answerNext,
      Enter: actions.answer,
      ArrowDown: () => move(1), ArrowUp: () => move(-1), j: () => move(1), k: () => move(-1),
      t: () => actions.transfer("blind"), T: () => actions.transfer("attended"),
      c: actions.complete, x: actions.cancel,
      p: actions.park, r: actions.retrieve, h: actions.hangup,
      m: actions.message, s: actions.availability,
      "/": () => { searchAll = false; $("search").focus(); },
      "*": () => { searchAll = true; $("search").focus(); },
      "?": () => $("help").showModal(),
      Escape: () => { pendingHangup = null; },
    };
    const fn = handlers[key];
    if (!fn) return;
    event.preventDefault();
    fn();
  });
  $("help-button").addEventListener("click", () => $("help").showModal());

  // --- on call now ------------------------------------------------------------------------

  function showRotas() {
    const list = $("oncall");
    $("oncall-panel").hidden = !rotas.length;
    list.replaceChildren(...rotas.map((r) => {
      const people = r.people.length ? r.people.map((p) => {
        const a = avail.get(p.id) || p.availability || {};
        const state = a.state || "available";
        return V.el("span", { cls: "person-on-call st-" + state, data: { id: p.id },
          title: V.stateLabel(state), text: p.name });
      }) : [V.el("span", { cls: "nobody", text: "nobody" })];
      return V.el("li", { cls: "rota", data: { id: r.id } },
        V.el("span", { cls: "name", text: r.name }), ...people,
        ...(r.until ? [V.el("span", { cls: "until", text: "until " + V.when(r.until) })] : []),
        ...(r.note ? [V.el("span", { cls: "note", text: r.note })] : []));
    }));
  }

  async function loadRotas() {
    try {
      rotas = (await V.api("GET", "/oncall")).rotas;
      showRotas();
    } catch (err) { /* kept as it was; tried again in a while */ }
  }

  // --- urgent messages (GET /urgent): who was texted, escalated, confirmed ------------------

  const URGENT_STATE = { open: "waiting for confirmation", confirmed: "confirmed",
    exhausted: "NOBODY CONFIRMED: take over" };

  function showUrgent(list) {
    // Open and unconfirmed ones, and those confirmed in the last hour.
    const hour = Date.now() - 3600_000;
    const shown = list.filter((u) => u.status !== "confirmed"
      || Date.parse(u.confirmed_at) > hour);
    $("urgent-panel").hidden = !shown.length;
    $("urgent-count").textContent = String(shown.filter((u) => u.status !== "confirmed").length);
    $("urgent").replaceChildren(...shown.map((u) => {
      const steps = u.steps.map((s) => V.el("span", { cls: "step st-" + s.status,
        title: s.status + (s.sent_at ? " " + V.when(s.sent_at) : ""),
        text: s.employee + (s.sent_at ? " " + V.when(s.sent_at) : " (" + s.status + ")") }));
      const state = u.status === "confirmed"
        ? "confirmed by " + u.confirmed_by + " " + V.when(u.confirmed_at)
        : URGENT_STATE[u.status] + (u.due_at ? ", next " + V.when(u.due_at) : "");
      return V.el("li", { cls: "urgent u-" + u.status, data: { id: String(u.id) } },
        V.el("span", { cls: "name", text: u.for.name + " ← " + u.caller }),
        V.el("span", { cls: "state", text: state }), ...steps);
    }));
  }

  async function loadUrgent() {
    try { showUrgent((await V.api("GET", "/urgent?limit=30")).urgent); }
    catch (err) { /* kept as it was; tried again in a while */ }
  }

  // --- start -------------------------------------------------------------------------------

  async function start() {
    const user = await V.whoami();
    myName = user.display_name || user.username;
    V.wireHeader();
    $("admin-link").hidden = user.role !== "admin";
    $("phone").textContent = user.sip_endpoint ? "your phone: " + user.sip_endpoint
      : "no phone set for you: answering needs one";
    showConnection();
    connect();
    try {
      const r = await V.api("GET", "/availability");
      for (const a of r.availability) avail.set(a.employee_id, a);
    } catch (err) { /* rows fall back to what search returns */ }
    try { teams = (await V.api("GET", "/teams")).teams; } catch (err) { teams = []; }
    search();
    // Shifts change on the clock: the list is read again every half minute.
    loadRotas();
    setInterval(loadRotas, 30_000);
    // Escalations happen on the minute: a few seconds late is soon enough.
    loadUrgent();
    setInterval(loadUrgent, 5_000);
  }
  start();
})();
