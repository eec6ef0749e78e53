// robot_stack dashboard page: live state over /ws (robot_stack/dashboard/app.py), commands over POST.
"use strict";
const $ = id => document.getElementById(id);
const COLORS = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828"];
let last = null;            // newest snapshot
let storeCameras = [];      // cameras recorded in the store (episode thumbnails, replay)
let replayTimer = null;

// ---- token: asked for only when the server says it is bound beyond this machine ----------------------------
const params = new URLSearchParams(location.search);
if (params.get("token")) { sessionStorage.setItem("dashboardToken", params.get("token")); }
$("token").value = sessionStorage.getItem("dashboardToken") || "";
$("token").addEventListener("change", () => sessionStorage.setItem("dashboardToken", $("token").value));

function say(text, isError) {
  const div = document.createElement("div");
  div.textContent = new Date().toLocaleTimeString() + "  " + text;
  if (isError) div.className = "error";
  $("messages").prepend(div);
  while ($("messages").children.length > 4) $("messages").lastChild.remove();
}

async function post(url, body) {
  const headers = {"Content-Type": "application/json"};
  const token = $("token").value;
  if (token) headers["X-Dashboard-Token"] = token;
  let resp;
  try {
    resp = await fetch(url, {method: "POST", headers, body: JSON.stringify(body)});
  } catch (e) {
    say(url + ": the dashboard server is unreachable (" + e + "); use the hardware e-stop", true);
    return null;
  }
  const data = await resp.json().catch(() => ({}));
  const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data.message || data);
  if (!resp.ok) { say(url + " refused (" + resp.status + "): " + detail, true); return null; }
  return data;
}

function confirmDialog(text) {
  return new Promise(resolve => {
    const dlg = $("confirm-dialog");
    $("confirm-text").textContent = text;
    const done = ok => { dlg.close(); $("confirm-yes").onclick = $("confirm-no").onclick = null; resolve(ok); };
    $("confirm-yes").onclick = () => done(true);
    $("confirm-no").onclick = () => done(false);
    dlg.showModal();
  });
}

// ---- commands -------------------------------------------------------------------------------------------
// The stop is sent on pointerdown (the press, as with a hardware mushroom button), not on click (the release);
// "click" still covers the keyboard (Enter/Space). A second event within a moment of the first is not resent.
let estopSentAt = 0;
async function engageEstop() {
  if (Date.now() - estopSentAt < 500) return;
  estopSentAt = window.dashboardEstopSentAt = Date.now();  // read by the browser test to time the stop
  const r = await post("/api/estop", {engage: true});
  if (r) say("e-stop engaged: " + r.message);
}
$("estop-engage").addEventListener("pointerdown", engageEstop);
$("estop-engage").addEventListener("click", engageEstop);
$("estop-release").addEventListener("click", async () => {
  if (!await confirmDialog("Release the e-stop? The arm may move as soon as it is released.")) return;
  const r = await post("/api/estop", {engage: false, confirm: "release"});
  if (r) say("e-stop released: " + r.message);
});
$("rollback").addEventListener("click", async () => {
  if (!await confirmDialog("Roll the inference node back to the previous good policy version?")) return;
  const r = await post("/api/rollback", {confirm: "rollback"});
  if (r) say("rollback: " + r.message);
});

// ---- live state -----------------------------------------------------------------------------------------
function fresh(topic) {
  const age = last && last.ages_s[topic];
  return age !== undefined && age < last.stale_after_s;
}
function setText(id, value, topic) {
  const el = $(id);
  el.textContent = value === undefined || value === null || value === "" ? "-" : value;
  el.classList.toggle("stale-value", topic !== undefined && !fresh(topic));
}
function badge(el, text, cls) { el.textContent = text; el.className = "badge " + cls; }

function renderCameras(s) {
  const box = $("cameras");
  for (const [name, info] of Object.entries(s.cameras)) {
    let img = $("cam-" + name);
    if (!img) {
      const div = document.createElement("div");
      div.className = "cam";
      img = document.createElement("img");
      img.id = "cam-" + name; img.alt = name; img.dataset.seq = "0";
      const label = document.createElement("div");
      label.id = "cam-label-" + name;
      div.append(img, label);
      box.append(div);
    }
    const seq = info ? info.seq : 0;
    if (seq && String(seq) !== img.dataset.seq) {
      img.src = "/api/cameras/" + encodeURIComponent(name) + ".jpg?seq=" + seq;
      img.dataset.seq = String(seq);
    }
    const age = s.ages_s["camera/" + name];
    $("cam-label-" + name).textContent = name + (info ? " · frame " + seq + (age !== undefined ? " · " + age.toFixed(1) + " s ago" : "") : " · no frames yet");
  }
}

function renderArm(s) {
  const st = s.arm.status;
  // arm/status (every control tick) is the truth; the latched estop topic only changes on service calls.
  const estop = st.status && fresh("arm/status") ? st.status === "estopped" : s.arm.estop;
  if (estop === null || estop === undefined) badge($("estop-state"), "e-stop: unknown (no arm/status)", "stale");
  else badge($("estop-state"), estop ? "E-STOPPED" : "e-stop released", estop ? "bad" : "ok");
  setText("arm-status", st.status, "arm/status");
  setText("arm-reason", st.reason, "arm/status");
  setText("arm-counts", st.executed !== undefined ? st.executed + " / " + st.rejected : null, "arm/status");
  const arm = s.arm.state;
  setText("arm-ee", arm.ee_xyz_m ? arm.ee_xyz_m.map(v => v.toFixed(3)).join(", ") : null, "arm/state");
  setText("arm-joints", arm.joints ? Object.entries(arm.joints).map(([k, v]) => k + " " + v.toFixed(2)).join("  ") : null,
          "arm/state");
}

function runningMean(points, window) {
  const out = [];
  for (let i = 0; i < points.length; i++) {
    const w = points.slice(Math.max(0, i - window + 1), i + 1);
    out.push([points[i][0], w.reduce((a, p) => a + p[1], 0) / w.length]);
  }
  return out;
}

function renderPractice(s) {
  const st = s.practice.status;
  const live = Object.keys(st).length > 0;
  $("practice-none").hidden = live;
  $("practice-live").hidden = !live;
  if (!live) return;
  setText("practice-attempt", st.attempt, "practice/status");
  setText("practice-phase", [st.phase, st.state].filter(x => x).join(" / "), "practice/status");
  setText("practice-interventions", st.interventions, "practice/status");
  const c = st.classifier || {};
  setText("practice-classifier", c.fp !== undefined || c.fn !== undefined ? (c.fp ?? "-") + " / " + (c.fn ?? "-") : null,
          "practice/status");
  svgPlot($("practice-plot"), [
    {color: COLORS[0], points: runningMean(s.practice.success.forward, 10)},
    {color: COLORS[1], points: runningMean(s.practice.success.backward, 10)},
  ], {yMin: 0, yMax: 1, xLabel: "attempt ", empty: "no finished attempts yet"});
}

function renderPolicy(s) {
  const a = s.policy.active;
  setText("policy-active", a ? "v" + a.version + " (" + a.policy_type + ")" : (s.inference.active_version != null ?
          "v" + s.inference.active_version : "none yet"));
  const inf = s.inference;
  setText("inference-status", Object.keys(inf).length ? (inf.enabled ? "driving" : "idle") + " · ticks " + inf.ticks +
          " · missed " + inf.missed_ticks + " · fallbacks " + inf.fallbacks : null, "inference/status");
  const ls = s.learner.status;
  setText("learner-step", ls.state === "failed" ? "FAILED: " + ls.error : ls.step, "learner/status");
  const names = Object.keys(s.learner.losses);
  setText("learner-losses", names.length ? names.map(k => k + " " + Number(ls[k]).toPrecision(3)).join("  ") : null,
          "learner/status");
  svgPlot($("loss-plot"), names.map((k, i) => ({color: COLORS[i % COLORS.length], points: s.learner.losses[k]})),
          {xLabel: "step ", empty: "no learner running"});
}

function render(s) {
  last = s;
  $("token-box").hidden = !s.token_required;
  renderCameras(s); renderArm(s); renderPractice(s); renderPolicy(s);
}

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => badge($("conn"), "live", "ok");
  ws.onmessage = ev => render(JSON.parse(ev.data));
  ws.onclose = () => { badge($("conn"), "disconnected: retrying", "bad"); setTimeout(connect, 1000); };
}

// ---- store: episodes, thumbnails, exclude/include, replay ---------------------------------------------------
function strip(ep) {
  const span = document.createElement("span");
  span.className = "strip";
  if (!storeCameras.length) return span;
  const n = Math.min(5, ep.length);
  for (let k = 0; k < n; k++) {
    const step = Math.round(k * (ep.length - 1) / Math.max(1, n - 1));
    const img = document.createElement("img");
    img.loading = "lazy"; img.alt = "step " + step;
    img.src = "/api/episodes/" + ep.index + "/frames/" + step + ".jpg?camera=" + encodeURIComponent(storeCameras[0]);
    span.append(img);
  }
  return span;
}

async function loadEpisodes() {
  let data;
  try { data = await (await fetch("/api/episodes")).json(); } catch (e) { return; }
  if (!data.episodes) { $("episodes-count").textContent = data.detail || ""; return; }
  storeCameras = data.cameras;
  const n = data.episodes.length, nex = data.episodes.filter(e => e.excluded).length;
  $("episodes-count").textContent = data.exists ? n + " episodes, " + nex + " excluded · " + data.path : "no store yet at " + data.path;
  const body = $("episodes").tBodies[0];
  const rows = data.episodes.slice().reverse();  // newest first
  const key = JSON.stringify(rows.map(e => [e.id, e.excluded]));
  if (body.dataset.key === key) return;  // unchanged: keep the images already loaded
  body.dataset.key = key;
  body.replaceChildren(...rows.map(ep => {
    const tr = document.createElement("tr");
    tr.id = "episode-" + ep.index;
    tr.className = ep.excluded ? "excluded" : "";
    for (const v of [ep.index, ep.source, ep.phase || "-", ep.success === null ? "?" : (ep.success ? "yes" : "no"), ep.length]) {
      const td = document.createElement("td"); td.textContent = v; tr.append(td);
    }
    const tdStrip = document.createElement("td"); tdStrip.append(strip(ep)); tr.append(tdStrip);
    const tdAct = document.createElement("td");
    const ex = document.createElement("button");
    ex.id = "exclude-" + ep.index; ex.className = "secondary";
    ex.textContent = ep.excluded ? "include" : "exclude";
    ex.onclick = async () => {
      const r = await post("/api/episodes/" + ep.index + "/exclude", {id: ep.id, excluded: !ep.excluded});
      if (r) { say("episode " + ep.index + (r.excluded ? " excluded" : " included")); loadEpisodes(); }
    };
    const rp = document.createElement("button");
    rp.id = "replay-" + ep.index; rp.className = "secondary"; rp.textContent = "replay";
    rp.onclick = () => replay(ep);
    tdAct.append(ex, " ", rp); tr.append(tdAct);
    return tr;
  }));
}

function replay(ep) {
  if (replayTimer) clearInterval(replayTimer);
  if (!storeCameras.length) { say("the store has no camera to replay", true); return; }
  $("replay").hidden = false;
  $("replay-episode").textContent = ep.index;
  let step = 0;
  const show = () => {
    $("replay-step").textContent = step + " / " + (ep.length - 1);
    $("replay-img").src = "/api/episodes/" + ep.index + "/frames/" + step + ".jpg?camera=" + encodeURIComponent(storeCameras[0]);
    step = (step + 1) % ep.length;
  };
  show();
  replayTimer = setInterval(show, 200);
}
$("replay-close").onclick = () => { if (replayTimer) clearInterval(replayTimer); $("replay").hidden = true; };

async function loadCheckpoints() {
  let data;
  try { data = await (await fetch("/api/checkpoints")).json(); } catch (e) { return; }
  const reported = {};
  for (const r of data.policy.reports) reported[r.version] = r;
  const active = data.policy.active ? data.policy.active.version : null;
  const versions = new Map(data.versions.map(v => [v.version, v]));
  for (const r of data.policy.reports) if (!versions.has(r.version)) versions.set(r.version, {version: r.version});
  const rows = [...versions.values()].sort((a, b) => b.version - a.version);
  $("checkpoints").tBodies[0].replaceChildren(...rows.map(v => {
    const tr = document.createElement("tr");
    const r = reported[v.version];
    const state = v.version === active ? "ACTIVE" : r ? r.status + (r.reason ? ": " + r.reason : "") : (v.error || "on disk");
    for (const x of ["v" + v.version, v.step ?? "-", state]) { const td = document.createElement("td"); td.textContent = x; tr.append(td); }
    return tr;
  }));
}

connect();
loadEpisodes(); loadCheckpoints();
setInterval(loadEpisodes, 3000);
setInterval(loadCheckpoints, 3000);
