// drip studio: the page's behaviour. Emails go into sandboxed frames (no scripts run there);
// a change on disk arrives as a Server-Sent Event and the page fetches the email again.
"use strict";

const token = document.querySelector('meta[name="studio-token"]').content;
const view = { sequence: null, step: null, sample: null, width: "both", mode: "light", tab: "email" };
let state = null;
let shown = null;

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const key of Object.keys(view)) if (params.get(key)) view[key] = params.get(key);
}

function writeHash() {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(view)) if (value) params.set(key, value);
  history.replaceState(null, "", "#" + params);
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  return response.json();
}

function excerptBlock(lines) {
  const pre = el("pre");
  for (const line of lines) {
    const span = el("span", { className: line.marked ? "marked" : "" });
    span.textContent = `${String(line.number).padStart(4)} | ${line.text}`;
    pre.append(span, "\n");
  }
  return pre;
}

function renderNav() {
  const box = $("sequences");
  box.replaceChildren();
  for (const seq of state.sequences) {
    box.append(el("h3", { textContent: seq.id ? `${seq.name}` : `${seq.name} (does not parse)` }));
    const list = el("ol");
    for (const step of seq.steps) {
      const button = el("button", {
        type: "button",
        className: "step",
        textContent: `${step.number}. ${step.id}`,
        title: step.subject,
      });
      button.dataset.sequence = seq.id;
      button.dataset.step = step.id;
      button.setAttribute("aria-current", String(seq.id === view.sequence && step.id === view.step));
      button.addEventListener("click", () => select(seq.id, step.id));
      list.append(el("li", {}, button));
    }
    box.append(list);
  }
  const samples = $("sample");
  samples.replaceChildren(...state.samples.map((s) => el("option", { value: s.label, textContent: s.label })));
  if (!state.samples.some((s) => s.label === view.sample)) view.sample = state.samples[0]?.label ?? null;
  samples.value = view.sample;
  const problems = $("problem-list");
  problems.replaceChildren(
    ...state.problems.map((p) =>
      el("li", {}, el("code", { textContent: `${p.file}${p.line ? ":" + p.line : ""}` }), ` ${p.field}: ${p.message}`, excerptBlock(p.excerpt)),
    ),
  );
  $("problems").hidden = state.problems.length === 0;
}

async function loadState() {
  state = await getJson("/api/state");
  const steps = state.sequences.flatMap((s) => s.steps.map((step) => [s.id, step.id]));
  if (!steps.some(([s, st]) => s === view.sequence && st === view.step) && steps.length) {
    [view.sequence, view.step] = steps[0];
  }
  renderNav();
}

function fitFrame(frame) {
  try {
    const doc = frame.contentDocument;
    if (doc && doc.documentElement) frame.style.height = Math.max(400, doc.documentElement.scrollHeight + 8) + "px";
  } catch (_) {
    /* a frame we cannot measure keeps its height */
  }
}

function paintFrames() {
  const panel = $("panel-email");
  panel.dataset.width = view.width;
  panel.dataset.mode = view.mode;
  if (!shown || !shown.html) return;
  const html = view.mode === "dark" ? shown.html_dark : shown.html;
  for (const id of ["frame-desktop", "frame-phone"]) {
    const frame = $(id);
    if (frame.srcdoc !== html) frame.srcdoc = html;
  }
}

function renderChecks(findings) {
  const errors = findings.filter((f) => f.severity === "error").length;
  const count = $("check-count");
  count.textContent = findings.length ? String(findings.length) : "";
  count.classList.toggle("has-errors", errors > 0);
  $("checks-summary").textContent = findings.length
    ? `${errors} error(s), ${findings.length - errors} warning(s) for this email and sample. Errors fail drip sequences validate.`
    : "Every check passes for this email and sample.";
  $("check-list").replaceChildren(
    ...findings.map((f) => {
      const item = el("li", { className: f.severity });
      item.dataset.check = f.check;
      item.append(el("span", { className: "severity", textContent: f.severity }), el("code", { textContent: f.check }), ` ${f.message}`);
      if (f.example) item.append(el("span", { className: "example", textContent: ` ("${f.example}")` }));
      return item;
    }),
  );
}

async function loadEmail() {
  if (!view.sequence || !view.step) return;
  const params = new URLSearchParams({ sequence: view.sequence, step: view.step, sample: view.sample || "" });
  const answer = await getJson("/api/email?" + params);
  const error = answer.error || (answer.missing ? { message: answer.missing, excerpt: [] } : null);
  $("error").hidden = !error;
  $("panel-email").classList.toggle("broken", Boolean(error));
  if (error) {
    $("error-where").textContent = error.file ? `${error.file}, line ${error.line}` : "";
    $("error-message").textContent = error.message;
    $("error-excerpt").replaceWith(Object.assign(excerptBlock(error.excerpt), { id: "error-excerpt" }));
    document.body.dataset.rendered = `error-${answer.generation ?? ""}`;
    return;
  }
  shown = answer;
  $("inbox-from").textContent = answer.inbox.from;
  $("inbox-to").textContent = answer.inbox.to;
  $("inbox-subject").textContent = answer.inbox.subject;
  $("inbox-preheader").textContent = answer.inbox.preheader || "(none)";
  $("text-part").textContent = answer.text;
  renderChecks(answer.findings);
  paintFrames();
  document.body.dataset.rendered = `ok-${answer.generation}`;
}

async function loadTimeline() {
  const params = new URLSearchParams({ sequence: view.sequence || "", sample: view.sample || "" });
  if ($("signup-at").value) params.set("signup_at", $("signup-at").value);
  if ($("timezone").value) params.set("timezone", $("timezone").value);
  const answer = await getJson("/api/timeline?" + params);
  if (answer.error || answer.missing) {
    $("timeline-title").textContent = answer.error || answer.missing;
    return;
  }
  $("timeline-title").textContent = `Signup ${answer.signup_at} (${answer.timezone}): the numbers drip sequences simulate prints.`;
  $("timeline").tBodies[0].replaceChildren(
    ...answer.sends.map((s) =>
      el("tr", {}, ...[s.number, s.step, s.delay, s.window, s.utc, s.local, s.subject].map((v) => el("td", { textContent: String(v) }))),
    ),
  );
}

// A group's effect, with what the daily cap would postpone (as drip sequences plan says it).
function effect(group) {
  if (!group.postponed_by_cap) return group.change;
  return `${group.change}; postponed by the daily cap: ${group.postponed_by_cap} people, to ${group.postponed_to} at the earliest`;
}

async function loadImpact() {
  const answer = await getJson("/api/impact");
  const box = $("impact");
  if (!answer.available) {
    box.replaceChildren(el("p", { textContent: answer.message }));
    return;
  }
  box.replaceChildren(
    ...answer.impacts.map((i) => {
      const rows = i.groups.map((g) =>
        el("tr", {}, ...[g.position, g.pending ?? "-", g.next ?? "-", g.people, g.first_due ?? "-", effect(g)].map((v) => el("td", { textContent: String(v) }))),
      );
      const head = el("tr", {}, ...["last received", "scheduled now", "next under the files", "people", "first due", "effect"].map((h) => el("th", { textContent: h })));
      return el(
        "section",
        {},
        el("h3", { textContent: `${i.sequence}: ${i.changed ? "CHANGED" : "unchanged"}, ${i.active} in flight` }),
        el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)),
      );
    }),
  );
}

function refreshPanels() {
  if (view.tab === "timeline") loadTimeline();
  if (view.tab === "impact") loadImpact();
}

function select(sequence, step) {
  view.sequence = sequence;
  view.step = step;
  writeHash();
  renderNav();
  loadEmail();
  refreshPanels();
}

function press(attribute, value) {
  for (const button of document.querySelectorAll(`[data-${attribute}]`)) {
    if (button.tagName !== "BUTTON") continue;
    const on = button.dataset[attribute] === value;
    button.setAttribute(button.getAttribute("role") === "tab" ? "aria-selected" : "aria-pressed", String(on));
  }
}

function showTab(tab) {
  view.tab = tab;
  press("tab", tab);
  for (const name of ["email", "text", "checks", "timeline", "impact"]) $("panel-" + name).hidden = name !== tab;
  writeHash();
  refreshPanels();
}

function listen() {
  const source = new EventSource("/events");
  source.addEventListener("open", () => {
    $("live").dataset.state = "live";
    $("live").textContent = "live: saving a file updates this page";
  });
  source.addEventListener("error", () => {
    $("live").dataset.state = "lost";
    $("live").textContent = "reconnecting…";
  });
  source.addEventListener("change", async () => {
    await loadState();
    await loadEmail();
    refreshPanels();
  });
}

async function testSend(event) {
  event.preventDefault();
  const result = $("test-result");
  result.className = "";
  result.textContent = "sending…";
  const response = await fetch("/api/test-send", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Studio-Token": token },
    body: JSON.stringify({ to: $("test-to").value, sequence: view.sequence, step: view.step, sample: view.sample }),
  });
  const answer = await response.json();
  result.textContent = answer.sent || answer.error;
  result.className = response.ok ? "" : "refused";
}

document.addEventListener("DOMContentLoaded", async () => {
  readHash();
  for (const button of document.querySelectorAll("button[data-width]")) {
    button.addEventListener("click", () => { view.width = button.dataset.width; press("width", view.width); paintFrames(); writeHash(); });
  }
  for (const button of document.querySelectorAll("button[data-mode]")) {
    button.addEventListener("click", () => { view.mode = button.dataset.mode; press("mode", view.mode); paintFrames(); writeHash(); });
  }
  for (const button of document.querySelectorAll("button[data-tab]")) button.addEventListener("click", () => showTab(button.dataset.tab));
  for (const frame of [$("frame-desktop"), $("frame-phone")]) frame.addEventListener("load", () => fitFrame(frame));
  $("sample").addEventListener("change", () => { view.sample = $("sample").value; writeHash(); loadEmail(); refreshPanels(); });
  $("timeline-form").addEventListener("submit", (event) => { event.preventDefault(); loadTimeline(); });
  $("test-send-form").addEventListener("submit", testSend);
  press("width", view.width);
  press("mode", view.mode);
  await loadState();
  showTab(view.tab);
  await loadEmail();
  listen();
});
