// Progressive enhancement of the admin page: in-place saving, voice list, "Play sample", the phone
// menu, upload progress, live calls.
// Everything also works without this file (plain form posts).
"use strict";
document.documentElement.classList.add("js");  // without this file the menu stays open (CSS)
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const businessZone = document.body.dataset.tz || undefined;

// Times are shown in the business's time zone (the server renders them so; live updates do too).
const timeFormat = new Intl.DateTimeFormat("en-GB", {
  timeZone: businessZone, weekday: "short", day: "numeric", month: "short", year: "numeric",
  hour: "2-digit", minute: "2-digit", hourCycle: "h23",
});
function localTime(iso) {
  if (!iso) return "";
  const when = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(iso) ? iso : iso + "Z");
  const parts = Object.fromEntries(timeFormat.formatToParts(when).map((p) => [p.type, p.value]));
  return `${parts.weekday} ${parts.day} ${parts.month} ${parts.year}, ${parts.hour}:${parts.minute}`;
}

// Phones: the sections sit behind the menu button.
const menuButton = document.querySelector(".menu-toggle");
if (menuButton) {
  const header = menuButton.closest(".top");
  const setOpen = (open) => { header.classList.toggle("open", open); menuButton.setAttribute("aria-expanded", String(open)); };
  menuButton.addEventListener("click", () => setOpen(!header.classList.contains("open")));
  header.querySelectorAll("nav a").forEach((a) => a.addEventListener("click", () => setOpen(false)));
}

function mirrorRanges(root) {
  root.querySelectorAll("input[type=range][data-mirror]").forEach((slider) => {
    const box = document.getElementById(slider.dataset.mirror);
    slider.addEventListener("input", () => { box.value = slider.value; });
    box.addEventListener("input", () => { slider.value = box.value; });
  });
}

function showFormResult(form, ok, message, errors) {
  const status = form.querySelector(".form-status");
  status.className = "form-status " + (ok ? "ok" : "error");
  status.textContent = message;
  form.querySelectorAll(".field").forEach((field) => {
    const error = (errors || {})[field.dataset.field] || "";
    field.classList.toggle("invalid", Boolean(error));
    field.querySelector(".field-error").textContent = error;
  });
  form.querySelectorAll("p.ok[role=status], p.error[role=alert]").forEach((p) => p.remove());
}

async function submitSettings(event) {
  const form = event.target;
  const target = event.submitter && event.submitter.getAttribute("formaction");
  event.preventDefault();
  const response = await fetch(target || form.action, {
    method: "POST",
    body: new FormData(form),
    headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
    credentials: "same-origin",
  });
  const body = await response.json().catch(() => ({}));
  if (response.ok && target) { window.location.reload(); return; }
  if (response.ok) {
    const changed = body.changed || [];
    showFormResult(form, true, changed.length ? "Saved " + changed.join(", ") + ". New calls use these values." : "No changes.");
    for (const [name, source] of Object.entries(body.sources || {})) {
      const badge = form.querySelector(`[data-field="${name}"] .source`);
      if (badge) { badge.textContent = source; badge.className = "source source-" + source; }
    }
  } else if (response.status === 422) {
    showFormResult(form, false, "Nothing was saved: fix the marked values.", body.errors);
  } else {
    showFormResult(form, false, (body.detail || (body.error && body.error.message)) || ("Error " + response.status));
  }
}

function voiceValues() {
  const values = {};
  document.querySelectorAll('form[data-section="voice"] [name]').forEach((el) => {
    if (el.name === "csrf_token" || el.value === "") return;
    values[el.name] = el.type === "number" ? Number(el.value) : el.value;
  });
  return values;
}

async function loadVoices() {
  const status = document.getElementById("voice-status");
  const response = await fetch("/admin/api/voices", { headers: { "Accept": "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    status.className = "voice-status error";
    status.textContent = "ElevenLabs is unavailable, the voice list cannot be shown: " + ((body.error && body.error.message) || response.status);
    return;
  }
  const list = document.getElementById("voice-list");
  list.replaceChildren(...body.voices.map((v) => {
    const option = document.createElement("option");
    option.value = v.voice_id;
    option.label = v.name + (v.category ? " (" + v.category + ")" : "");
    return option;
  }));
  status.className = "voice-status hint";
  status.textContent = body.voices.length + " voices available from ElevenLabs.";
}

async function playSample() {
  const status = document.getElementById("voice-status");
  const button = document.getElementById("play-sample");
  button.disabled = true;
  status.className = "voice-status hint";
  status.textContent = "Synthesising…";
  try {
    const response = await fetch("/admin/api/voice-sample", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "audio/wav, application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ ...voiceValues(), text: document.getElementById("sample-text").value }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      status.className = "voice-status error";
      status.textContent = "No sample: " + ((body.error && body.error.message) || body.detail || ("error " + response.status));
      document.getElementById("sample-audio").hidden = true;
      return;
    }
    const audio = document.getElementById("sample-audio");
    audio.src = URL.createObjectURL(await response.blob());
    audio.hidden = false;
    status.textContent = "Playing sample.";
    audio.play().catch(() => { status.textContent = "Sample ready: press play."; });
  } catch (err) {
    status.className = "voice-status error";
    status.textContent = "No sample: the agent could not be reached (" + err.message + ").";
  } finally {
    button.disabled = false;
  }
}

document.querySelectorAll("form.settings").forEach((form) => form.addEventListener("submit", submitSettings));
mirrorRanges(document);
const play = document.getElementById("play-sample");
if (play && !play.disabled) {
  play.addEventListener("click", playSample);
  loadVoices();
}

// Destructive forms ask first; uploads above the limit are refused before they are sent.
function confirmBeforeSubmit(form) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}
document.querySelectorAll("form[data-confirm]").forEach(confirmBeforeSubmit);
const upload = document.getElementById("upload-form");
if (upload) upload.addEventListener("submit", (event) => {
  const file = upload.querySelector("input[type=file]").files[0];
  const limit = Number(upload.dataset.maxMb) * 1024 * 1024;
  const status = document.querySelector(".upload-status");
  event.preventDefault();
  if (!file) return;
  if (file.size > limit) {
    status.className = "upload-status error";
    status.textContent = `${file.name} is larger than the ${upload.dataset.maxMb} MB upload limit.`;
    return;
  }
  uploadWithProgress(upload, file, status);
});

// The file goes up with a progress bar (XHR reports upload progress), then the server reads it as a
// job whose progress is polled; the page reloads with the document listed.
function uploadWithProgress(form, file, status) {
  const box = document.getElementById("upload-progress");
  const bar = document.getElementById("upload-bar");
  const percent = document.getElementById("upload-percent");
  const button = form.querySelector("button[type=submit]");
  const show = (value, text) => { bar.value = value; percent.textContent = text; };
  const fail = (message) => {
    status.className = "upload-status error";
    status.textContent = message;
    button.disabled = false;
  };
  box.hidden = false;
  button.disabled = true;
  status.className = "upload-status hint";
  status.textContent = `Uploading ${file.name}…`;
  show(0, "0 %");
  const xhr = new XMLHttpRequest();
  xhr.open("POST", form.action + "?wait=false");
  xhr.setRequestHeader("Accept", "application/json");
  xhr.setRequestHeader("X-CSRF-Token", csrf);
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) { const p = Math.round((100 * e.loaded) / e.total); show(p, p + " %"); }
  });
  xhr.addEventListener("error", () => fail("The upload failed: the agent could not be reached."));
  xhr.addEventListener("load", () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON: an error page */ }
    if (xhr.status !== 202 || !body.job) {
      fail("Not added: " + ((body.error && body.error.message) || body.detail || ("error " + xhr.status)));
      return;
    }
    show(100, "100 %");
    status.textContent = `Uploaded. Reading ${file.name}…`;
    followJob(body.job.id, status, show, fail);
  });
  const data = new FormData(form);
  data.delete("csrf_token");
  xhr.send(data);
}

async function followJob(id, status, show, fail) {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 400));
    const response = await fetch("/admin/api/knowledge/jobs/" + encodeURIComponent(id), { headers: { "Accept": "application/json" } }).catch(() => null);
    if (!response || !response.ok) { fail("Lost track of the upload; reload the page to see if it was added."); return; }
    const job = await response.json();
    if (job.status === "done") { window.location.assign("/admin?saved=knowledge#knowledge"); return; }
    if (job.status === "failed") { fail("Not added: " + (job.error || "the file could not be read")); return; }
    if (job.total) { const p = Math.round((100 * job.done) / job.total); show(p, `${job.stage} ${job.done}/${job.total}`); }
    else status.textContent = `Reading ${job.name}… (${job.stage})`;
  }
}

// "Try it": the conversation is kept here and sent whole; the server stores nothing of it.
const tryForm = document.getElementById("try-form");
if (tryForm) {
  const log = document.getElementById("try-log");
  const input = document.getElementById("try-input");
  let messages = [];
  const say = (role, text, extra) => {
    const item = document.createElement("li");
    item.className = "turn " + (role === "user" ? "caller" : role === "assistant" ? "agent" : "tool");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : role === "assistant" ? "Agent" : "Error";
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.append(who, body);
    if (extra) {
      const note = document.createElement("small");
      note.className = "hint tool-note";
      note.textContent = extra;
      item.append(document.createElement("br"), note);
    }
    log.append(item);
    return item;
  };
  tryForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    messages.push({ role: "user", content: text });
    say("user", text);
    const button = tryForm.querySelector("button.primary");
    button.disabled = true;
    try {
      const response = await fetch("/admin/api/try-it", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ messages }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        messages.pop();
        say("error", (body.error && body.error.message) || body.detail || ("error " + response.status));
        return;
      }
      messages.push({ role: "assistant", content: body.reply || "…" });
      const tools = (body.tool_calls || []).map((t) => t.name + (t.ok === false ? " (failed)" : "")).join(", ");
      const notes = [tools ? "used: " + tools : "", body.provider === "canned" ? "canned reply: no LLM endpoint answered" : ""];
      say("assistant", body.reply || "(no answer)", notes.filter(Boolean).join(" · "));
      if (body.ended) say("error", "The agent ended the conversation.");
    } catch (err) {
      messages.pop();
      say("error", "The agent could not be reached (" + err.message + ").");
    } finally {
      button.disabled = false;
      input.focus();
    }
  });
  document.getElementById("try-reset").addEventListener("click", () => { messages = []; log.replaceChildren(); });
}

// Live calls refresh themselves while the page is open.
const liveTable = document.getElementById("live-calls");
if (liveTable) {
  const cell = (text) => { const td = document.createElement("td"); td.textContent = text || ""; return td; };
  const refreshLive = async () => {
    const response = await fetch("/admin/api/calls", { headers: { "Accept": "application/json" } }).catch(() => null);
    if (!response || !response.ok) return;
    const live = (await response.json()).live;
    liveTable.tBodies[0].replaceChildren(...live.map((c) => {
      const row = document.createElement("tr");
      const open = document.createElement("td");
      const link = document.createElement("a");
      link.href = "/admin/calls/" + encodeURIComponent(c.call_sid);
      link.textContent = "open";
      const form = document.createElement("form");
      form.method = "post";
      form.action = "/admin/calls/" + encodeURIComponent(c.call_sid) + "/hangup";
      form.className = "hangup";
      form.dataset.confirm = "Hang up the call from " + (c.from_number || "this caller") + "?";
      const token = document.createElement("input");
      Object.assign(token, { type: "hidden", name: "csrf_token", value: csrf });
      const button = document.createElement("button");
      Object.assign(button, { type: "submit", className: "link danger", textContent: "hang up" });
      form.append(token, button);
      confirmBeforeSubmit(form);
      open.append(link, form);
      const who = cell(c.caller_name ? c.caller_name + " " + (c.caller_phone || "") : (c.caller_phone || c.from_number));
      const labels = ["Started", "Caller", "To", "Status"];
      const cells = [cell(localTime(c.started_at)), who, cell(c.to_number), cell(c.status)];
      cells.forEach((td, i) => { td.dataset.label = labels[i]; });
      row.append(...cells, open);
      return row;
    }));
    document.getElementById("live-count").textContent = String(live.length);
    liveTable.hidden = live.length === 0;
    document.getElementById("no-live-calls").hidden = live.length > 0;
  };
  setInterval(refreshLive, Number(liveTable.dataset.refreshMs) || 5000);
}
