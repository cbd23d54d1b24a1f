// The admin view: health, usage per client over time, failed jobs (with retry), collections.

import {
  api, claimsOf, el, forgetToken, getToken, json, problem, setUpSignIn, SignedOut,
  takeTokenFromFragment,
} from "./common.js";
import { drawChart } from "./chart.js";

const $ = (id) => document.getElementById(id);
const HEALTH_EVERY_MS = 30_000;
const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const whole = new Intl.NumberFormat();

let showSignIn = () => {};
let usage = null;
let healthTimer = null;

function cell(text, className) {
  return el("td", { class: className, text: text ?? "" });
}

function fail(err) {
  if (err instanceof SignedOut) return signOut(`Your token was refused (${err.message}).`);
  const box = $("admin-error");
  box.textContent = err.message;
  box.hidden = false;
}

// Health

function healthItem(label, value, good) {
  return el("div", {},
    el("dt", { text: label }),
    el("dd", { class: good === undefined ? "" : good ? "state-ok" : "state-bad",
               text: value }));
}

async function loadHealth() {
  const health = await json(await api("/v1/admin/health"));
  const modelOk = health.model_server === "ok";
  $("health").replaceChildren(
    healthItem("Overall", health.status, health.status === "ok"),
    healthItem("Model server", modelOk ? `ok (${health.model_server_ms} ms)`
      : "not answering", modelOk),
    healthItem("Database", health.database, health.database === "ok"),
    healthItem("Model", health.model),
    healthItem("Failed jobs", String(health.failed_jobs ?? "?"), !health.failed_jobs));
  $("health-time").textContent = `checked ${when.format(new Date())}`;
}

// Usage

async function loadUsage() {
  const [bucket, hours] = $("range").value.split(":");
  usage = await json(await api(`/v1/admin/usage?bucket=${bucket}&hours=${hours}`));
  drawUsage();
}

function drawUsage() {
  if (!usage) return;
  drawChart($("chart"), usage, $("metric").value);
  const rows = usage.series.map((s) => el("tr", {},
    el("th", { scope: "row", text: s.client }),
    cell(whole.format(s.requests), "num"),
    cell(whole.format(s.prompt_tokens), "num"),
    cell(whole.format(s.completion_tokens), "num")));
  $("usage-table").tBodies[0].replaceChildren(...rows);
}

// Failed jobs

async function retryJob(job, button) {
  button.disabled = true;
  try {
    const response = await api(`/v1/admin/jobs/${Number(job.id)}/retry`, { method: "POST" });
    if (response.ok) {
      $("jobs-status").textContent = `Job ${job.id} is queued again.`;
    } else {
      const p = await problem(response);
      $("jobs-status").textContent = `Job ${job.id} was not retried: ${p.message}`;
    }
    await Promise.all([loadJobs(), loadHealth()]);
  } catch (err) {
    button.disabled = false;
    fail(err);
  }
}

async function loadJobs() {
  const { data } = await json(await api("/v1/admin/jobs/failed"));
  const rows = data.map((job) => {
    const button = el("button", { type: "button", text: "Retry",
                                  "aria-label": `Retry job ${job.id}` });
    button.addEventListener("click", () => retryJob(job, button));
    return el("tr", {},
      cell(String(job.id), "num"), cell(job.kind), cell(String(job.attempts), "num"),
      cell(job.error, "error-text"),
      cell(job.finished_at ? when.format(new Date(job.finished_at)) : ""),
      el("td", {}, button));
  });
  $("jobs").tBodies[0].replaceChildren(...rows);
  $("jobs").hidden = !rows.length;
  $("jobs-empty").hidden = rows.length > 0;
}

// Collections

async function loadCollections() {
  const { data } = await json(await api("/v1/admin/collections"));
  const rows = data.map((c) => el("tr", {},
    el("th", { scope: "row", text: c.name }),
    cell(whole.format(c.documents), "num"), cell(whole.format(c.chunks), "num"),
    cell(c.embedding_model),
    cell(c.readers.map((r) => (c.writers || []).includes(r) ? `${r} (writes)` : r).join(", ")
      || "nobody yet")));
  $("collections").tBodies[0].replaceChildren(...rows);
  $("collections").hidden = !rows.length;
  $("collections-empty").hidden = rows.length > 0;
}

async function loadAll() {
  $("admin-error").hidden = true;
  const results = await Promise.allSettled([loadHealth(), loadUsage(), loadJobs(),
                                            loadCollections()]);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) fail(failed.reason);
}

// Signing in and out

function signOut(reason = "") {
  clearInterval(healthTimer);
  forgetToken();
  $("app").hidden = true;
  showSignIn(reason);
}

function enter(token) {
  const claims = claimsOf(token);
  if (!claims) return signOut("That token could not be read; paste it again.");
  if (!claims.scopes.includes("admin")) {
    return signOut(`The token for ${claims.sub} has no admin scope: make one with ` +
                   "charla token --sub ops --scope admin");
  }
  $("who").textContent = claims.sub;
  $("app").hidden = false;
  loadAll();
  clearInterval(healthTimer);
  healthTimer = setInterval(() => loadHealth().catch(fail), HEALTH_EVERY_MS);
}

async function check() {
  const response = await api("/v1/admin/health");
  if (response.ok) return null;
  const p = await problem(response);
  return p.status === 403
    ? "This token has no admin scope: make one with charla token --sub ops --scope admin"
    : p.message || `The server answered HTTP ${p.status}.`;
}

function start() {
  $("refresh").addEventListener("click", loadAll);
  $("signout").addEventListener("click", () => signOut(""));
  $("range").addEventListener("change", () => loadUsage().catch(fail));
  $("metric").addEventListener("change", drawUsage);
  document.addEventListener("keydown", (event) => {
    const typing = event.target.matches?.("input, textarea, select");
    if (!typing && !$("app").hidden && event.key === "r" && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      loadAll();
    }
  });
  showSignIn = setUpSignIn({ check, onSignedIn: enter });
  takeTokenFromFragment();
  const token = getToken();
  if (token) enter(token);
  else showSignIn("");
}

start();
