// An employee's own page: see and set their availability (PUT /employees/{id}/availability).
"use strict";

(async () => {
  const $ = (id) => document.getElementById(id);
  const user = await V.whoami();
  V.wireHeader();
  const form = $("me-form");
  if (!user.employee_id) { form.hidden = true; $("me-none").hidden = false; return; }
  for (const [value, label] of Object.entries(V.STATES)) {
    if (value !== "on_call") form.state.append(V.el("option", { attrs: { value }, text: label }));
  }
  const base = `/employees/${encodeURIComponent(user.employee_id)}/availability`;
  function show(a) {
    $("now").replaceChildren(V.el("span", { cls: "state st-" + a.state,
      text: V.stateLabel(a.state) + (a.until ? " until " + V.when(a.until) : "") }),
    a.note_for_callers ? V.el("span", { cls: "note", text: "“" + a.note_for_callers + "”" }) : "");
    form.state.value = a.state !== "on_call" ? a.state : "available";
    form.until.value = V.localInput(a.until);
    form.note_for_callers.value = a.note_for_callers || "";
    form.internal_note.value = a.internal_note || "";
  }
  show(await V.api("GET", base));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { state: form.state.value, note_for_callers: form.note_for_callers.value.trim(),
      internal_note: form.internal_note.value.trim() };
    if (form.until.value) body.until = new Date(form.until.value).toISOString();
    try {
      show((await V.api("PUT", base, body)).availability);
      $("me-error").hidden = true;
    } catch (err) {
      $("me-error").textContent = err.message;
      $("me-error").hidden = false;
    }
  });
})();
