// The live view: listens to /events (Server-Sent Events) and draws each item as it arrives.
// window.labSeen records what was drawn and when, for the browser test and the latency figure.
"use strict";
const lanes = [];                    // actors in the order they first appear
const seen = (window.labSeen = []);
let faultAt = null;                  // the run's time of "fault in place", once known
let finished = false;

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };

// Lanes in a fixed order, whatever speaks first: the clients (robust first), the proxy, the
// server, the lab. A lane appears when its first event does.
function rank(actor) {
  if (actor === "client[robust]") return 0;
  if (/^client\[/.test(actor)) return 1;
  return { toxiproxy: 2, server: 3, lab: 4 }[actor] ?? 5;
}

function laneOf(actor) {
  let i = lanes.indexOf(actor);
  if (i < 0) {
    i = lanes.findIndex((a) => rank(a) > rank(actor));
    if (i < 0) i = lanes.length;
    lanes.splice(i, 0, actor);
    $("lanes").style.setProperty("--lanes", String(lanes.length));
    for (const row of document.querySelectorAll("#lanes .row")) insertCell(row, i, row.classList.contains("head") ? plainName(actor) : undefined);
  }
  return i;
}

function insertCell(row, i, text) {   // every row has one cell per lane, in the lanes' order
  const cell = el("span", "cell", text);
  row.insertBefore(cell, row.children[i + 1] || null);
}

function pad(row) {
  while (row.children.length < lanes.length + 1) row.appendChild(el("span", "cell"));
}

function plainName(actor) {   // the lab's names, said plainly for a room
  const m = /^client\[(.+)\]$/.exec(actor);
  if (m) return m[1] + " client";
  return { lab: "the lab", server: "server", toxiproxy: "proxy (Toxiproxy)" }[actor] || actor;
}

function classify(what) {
  if (/^fault in place/.test(what)) return "faultmark";
  if (/^ERROR /.test(what)) return "error";
  if (/^BLOCKED/.test(what)) return "blocked";
  if (/PING|PONG|heartbeat|keepalive/i.test(what)) return "beat";
  return "";
}

function drawEvent(ev) {
  const kind = classify(ev.what || "");
  if (kind === "faultmark" && faultAt === null) faultAt = ev.t;
  const row = el("div", "row");
  row.setAttribute("role", "row");
  const time = el("span", "time", `+${Number(ev.t).toFixed(3)} s`);
  if (faultAt !== null && kind !== "faultmark" && ev.t >= faultAt) {
    time.appendChild(el("span", "after", `${(ev.t - faultAt).toFixed(2)} s after the fault`));
  }
  row.appendChild(time);
  const lane = laneOf(ev.actor || "lab");
  pad(row);
  const cell = row.children[lane + 1];
  cell.className = "cell " + kind;
  cell.textContent = ev.what + (ev.message ? `: ${ev.message}` : "");
  if (faultAt !== null && ev.t >= faultAt) row.classList.add("fault");
  if (kind === "faultmark") row.classList.add("fault-start");
  row.dataset.kind = kind || "event";
  $("lanes").appendChild(row);
  record(kind || "event", ev);
}

function record(kind, data) {
  seen.push({ kind, what: data.what || data.title || "", actor: data.actor || "", t: data.t,
              published: data.published, wall: data.wall, shown: Date.now() / 1000 });
}

function drawStep(step) {
  const li = el("li");
  li.appendChild(el("span", "title", step.title));
  li.appendChild(el("span", "text", step.text || ""));
  $("steps").appendChild(li);
  $("next").hidden = !step.pause;
  record("step", step);
}

function drawEnd(end) {
  finished = true;
  $("status").textContent = end.ok ? "finished: every verdict holds" : "finished: something did not hold";
  $("status").className = "status finished";
  $("next").hidden = true;
  for (const [impl, v] of Object.entries(end.verdicts || {})) {
    const li = el("li");
    li.appendChild(el("span", v.ok ? "pass" : "fail", v.ok ? "PASS " : "FAIL "));
    li.appendChild(document.createTextNode(`${impl}: ${v.summary || ""}`));
    $("verdicts").appendChild(li);
  }
  for (const p of end.fidelity || []) {
    const li = el("li");
    li.appendChild(el("span", p.ok ? "pass" : "fail", p.ok ? "✔ " : "✖ "));
    li.appendChild(document.createTextNode(p.name));
    $("proofs").appendChild(li);
  }
  for (const f of end.files || []) {
    const li = el("li");
    const a = el("a", "", f);
    a.href = "/files/" + encodeURIComponent(f);
    li.appendChild(a);
    $("files").appendChild(li);
  }
  $("end").hidden = false;
  record("end", end);
}

$("projector").addEventListener("click", () => document.body.classList.toggle("projector"));
if (new URLSearchParams(location.search).has("projector")) document.body.classList.add("projector");
$("next").addEventListener("click", () => { $("next").hidden = true; fetch("/next", { method: "POST" }); });

const source = new EventSource("/events");
source.addEventListener("start", (m) => {
  const s = JSON.parse(m.data);
  $("title").textContent = s.title || s.scenario || "socket failure lab";
  $("status").textContent = "running";
  record("start", s);
});
source.addEventListener("step", (m) => drawStep(JSON.parse(m.data)));
source.addEventListener("event", (m) => drawEvent(JSON.parse(m.data)));
source.addEventListener("end", (m) => { drawEnd(JSON.parse(m.data)); source.close(); });
source.onerror = () => { if (finished) source.close(); };
