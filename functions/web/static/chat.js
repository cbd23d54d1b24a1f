// The chat page: sign in, pick a collection, ask, watch the answer stream in with its sources.
//
// Conversations live in this browser's localStorage, one list per signed-in subject. Answers
// stream from /v1/chat/completions (server-sent events over fetch, so the token travels in
// a header, never in a URL).

import {
  api, claimsOf, el, forgetToken, getToken, json, problem, setUpSignIn, SignedOut,
  takeTokenFromFragment, throttled,
} from "./common.js";
import { renderMarkdown } from "./markdown.js";

const $ = (id) => document.getElementById(id);
const KEEP_CONVERSATIONS = 50;
const NO_DOCUMENTS = "-";

let user = null;
let conversations = [];
let currentId = null;
let running = null; // {controller, conversation, answer} while an answer streams
let showSignIn = () => {};
const nodes = new WeakMap(); // message -> its <li>, to redraw one message as it grows

function newId() {
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
}

// Storage

function storageKey() {
  return `charla.conversations.${user.sub}`;
}

function load() {
  let stored = [];
  try {
    stored = JSON.parse(localStorage.getItem(storageKey()) || "[]");
  } catch {
    stored = [];
  }
  conversations = (Array.isArray(stored) ? stored : []).filter(
    (c) => c && typeof c.id === "string" && Array.isArray(c.messages));
  for (const c of conversations) {
    for (const m of c.messages) m.pending = false; // a reload cut it off
  }
}

function save() {
  conversations.sort((a, b) => b.updated - a.updated);
  conversations = conversations.slice(0, KEEP_CONVERSATIONS);
  for (let keep = conversations.length; keep > 0; keep -= 1) {
    try {
      localStorage.setItem(storageKey(), JSON.stringify(conversations.slice(0, keep)));
      return;
    } catch {
      // Over the browser's quota: drop the oldest conversation and try again.
    }
  }
}

function current() {
  return conversations.find((c) => c.id === currentId);
}

// Conversations

function newConversation() {
  const conversation = {
    id: newId(), title: "", collection: $("collection").value, messages: [],
    updated: Date.now(),
  };
  conversations.unshift(conversation);
  open(conversation.id);
  save();
}

function open(id) {
  currentId = id;
  const conversation = current();
  const select = $("collection");
  select.value = conversation.collection ?? "";
  if (select.value !== (conversation.collection ?? "")) select.value = "";
  renderList();
  renderMessages();
  closeMenu();
  $("question").focus();
}

function remove(id) {
  conversations = conversations.filter((c) => c.id !== id);
  save();
  if (id !== currentId) return renderList();
  if (conversations.length) open(conversations[0].id);
  else newConversation();
}

function step(delta) {
  const index = conversations.findIndex((c) => c.id === currentId);
  const next = conversations[index + delta];
  if (next) open(next.id);
}

function renderList() {
  const items = conversations.map((c) => {
    const title = c.title || "New conversation";
    return el("li", { class: "conversation" },
      el("button", {
        type: "button", class: "open", text: title, title,
        "aria-current": c.id === currentId ? "true" : undefined,
        onclick: () => open(c.id),
      }),
      el("button", {
        type: "button", class: "delete icon", text: "×",
        "aria-label": `Delete conversation: ${title}`, title: "Delete",
        onclick: () => remove(c.id),
      }));
  });
  $("conversations").replaceChildren(...items);
}

// Messages

function sourceLabel(c) {
  const where = [c.source || c.title || "document"];
  if (c.section) where.push(` › ${c.section}`);
  if (c.page) where.push(`, p. ${c.page}`);
  return where.join("");
}

function passageLink(citation, text, className) {
  const id = Number(citation.chunk_id);
  return el("a", {
    href: `/v1/passages/${id}`, class: className, text, title: sourceLabel(citation),
    onclick: (event) => {
      event.preventDefault();
      openPassage(citation);
    },
  });
}

function errorNode(message, conversation) {
  const error = message.error;
  const text = el("span", { text: error.text });
  const node = el("div", { class: "error", role: "alert" }, text);
  if (error.kind === "rate") {
    const show = () => {
      const left = Math.ceil((error.until - Date.now()) / 1000);
      text.textContent = left > 0
        ? `${error.text} Try again in ${left} s.`
        : `${error.text} You can ask again now.`;
      return left;
    };
    const tick = () => {
      if (node.isConnected && show() > 0) setTimeout(tick, 1000);
    };
    show();
    setTimeout(tick, 1000);
  }
  if (error.retry) {
    node.append(" ", el("button", {
      type: "button", class: "link", text: "Try again",
      onclick: () => retry(conversation, message),
    }));
  }
  return node;
}

function messageNode(message, conversation) {
  if (message.role === "user") {
    return el("li", { class: "msg user" },
      el("div", { class: "who", text: "You" }),
      el("div", { class: "body plain", text: message.content }));
  }
  const citations = message.citations ?? [];
  const ref = (n) => {
    const citation = citations.find((c) => c.n === n);
    return citation ? passageLink(citation, `[${n}]`, "ref") : null;
  };
  const body = el("div", { class: "body" }, renderMarkdown(message.content, ref));
  if (message.pending && !message.content) {
    body.append(el("span", { class: "typing", text: "Thinking…" }));
  }
  const node = el("li", { class: "msg assistant", "aria-busy": message.pending ? "true" : "false" },
    el("div", { class: "who", text: "Charla" }), body);
  if (message.stopped) node.append(el("p", { class: "note", text: "Stopped." }));
  if (message.finish === "length") {
    node.append(el("p", { class: "note", text: "Cut short: the answer reached its length limit." }));
  }
  if (message.error) node.append(errorNode(message, conversation));
  if (citations.length) {
    // Each source with the sentence of it that supports the answer, as the bots show them;
    // not under an answer that is itself a quote (the fact check replaced the model's).
    const quoted = (c) => (typeof c.quote === "string" && c.quote && !message.replaced
      ? [el("q", { class: "quote", text: c.quote })] : []);
    node.append(el("div", { class: "sources" },
      el("h2", { text: "Sources" }),
      el("ol", {}, citations.map((c) => el("li", {},
        passageLink(c, `[${c.n}] ${sourceLabel(c)}`, "source"), ...quoted(c))))));
  }
  if (message.content && !message.pending) {
    node.append(el("div", { class: "actions" },
      el("button", {
        type: "button", class: "link copy", text: "Copy",
        "aria-label": "Copy this answer",
        onclick: (event) => copy(message.content, event.currentTarget),
      })));
  }
  nodes.set(message, node);
  return node;
}

function renderMessages() {
  const conversation = current();
  const list = $("messages");
  const items = conversation.messages.map((m) => messageNode(m, conversation));
  if (!items.length) {
    items.push(el("li", { class: "empty", text: "Ask anything. Answers drawn from your " +
      "team's documents list their sources; select one to read the passage." }));
  }
  list.replaceChildren(...items);
  list.scrollTop = list.scrollHeight;
}

function redraw(message, conversation) {
  const old = nodes.get(message);
  if (!old || !old.isConnected) return;
  const list = $("messages");
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  old.replaceWith(messageNode(message, conversation));
  if (atEnd) list.scrollTop = list.scrollHeight;
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API here (a page served over plain HTTP on another host): copy from a
    // selected, off-screen text area instead.
    const area = el("textarea", { value: text, class: "offscreen", readOnly: true });
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
}

// Asking

function describe(p) {
  if (p.status === 429) {
    const fromText = /retry in (\d+) s/.exec(p.message);
    const wait = p.retryAfter ?? (fromText ? Number(fromText[1]) : 60);
    const limit = /\(([^)]*per[^)]*)\)/.exec(p.message);
    return {
      kind: "rate", retry: true, until: Date.now() + wait * 1000,
      text: `Rate limit reached${limit ? ` (${limit[1]})` : ""}.`,
    };
  }
  if (p.status === 502 || p.status === 503 || p.status === 504) {
    checkHealth();
    return {
      kind: "down", retry: true,
      text: p.status === 504
        ? "The model server did not answer in time. Try again in a moment."
        : "The model server is down or not answering. Try again in a moment.",
    };
  }
  return { kind: "refused", text: `${p.message || "The request failed"} (HTTP ${p.status})` };
}

function requestBody(conversation, answer) {
  const messages = conversation.messages
    .filter((m) => m !== answer && !m.error && m.content)
    .map((m) => ({ role: m.role, content: m.content }));
  const body = { messages, stream: true };
  if (conversation.collection === NO_DOCUMENTS) body.collections = [];
  else if (conversation.collection) body.collections = [conversation.collection];
  return body;
}

function handleEvent(data, answer) {
  if (!data || data === "[DONE]") return;
  let event;
  try {
    event = JSON.parse(data);
  } catch {
    return;
  }
  if (event.error) {
    answer.error = { kind: "stream", retry: true,
                     text: `The answer broke off: ${event.error.message ?? "server error"}.` };
  }
  if (event.fact_check?.replaced) answer.replaced = true;
  if (Array.isArray(event.citations)) {
    answer.citations = event.citations.filter((c) => Number.isInteger(c?.n) &&
                                                     Number.isInteger(c?.chunk_id));
  }
  const choice = event.choices?.[0];
  if (typeof choice?.delta?.content === "string") answer.content += choice.delta.content;
  if (choice?.finish_reason) answer.finish = choice.finish_reason;
}

async function readEvents(response, answer, onChange) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r/g, "");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart()).join("\n");
      handleEvent(data, answer);
      onChange();
    }
  }
}

function setRunning(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
}

async function send(conversation) {
  const answer = { role: "assistant", content: "", citations: [], pending: true };
  conversation.messages.push(answer);
  conversation.updated = Date.now();
  save();
  renderList();
  if (conversation.id === currentId) renderMessages();
  const controller = new AbortController();
  running = { controller, conversation, answer };
  setRunning(true);
  const grow = throttled(() => redraw(answer, conversation));
  try {
    const response = await api("/v1/chat/completions", {
      method: "POST", body: requestBody(conversation, answer), signal: controller.signal,
    });
    if (!response.ok) answer.error = describe(await problem(response));
    else await readEvents(response, answer, grow);
  } catch (err) {
    if (err.name === "AbortError") answer.stopped = true;
    else if (err instanceof SignedOut) return signOut(`Your token was refused (${err.message}).`);
    else answer.error = { kind: "network", retry: true,
                          text: "Charla cannot be reached; check your connection." };
  } finally {
    answer.pending = false;
    running = null;
    setRunning(false);
    if (user) save();
  }
  redraw(answer, conversation);
}

function retry(conversation, failed) {
  if (running) return;
  conversation.messages = conversation.messages.filter((m) => m !== failed);
  send(conversation);
}

function ask(text) {
  const conversation = current();
  if (running || !text.trim()) return;
  conversation.messages.push({ role: "user", content: text });
  if (!conversation.title) conversation.title = text.trim().slice(0, 60);
  send(conversation);
}

// Sources

async function openPassage(citation) {
  const dialog = $("passage");
  $("passage-title").textContent = `[${citation.n}] ${citation.source || "Source"}`;
  const where = [citation.collection && `collection ${citation.collection}`,
                 citation.section, citation.page && `page ${citation.page}`];
  $("passage-where").textContent = where.filter(Boolean).join(" · ");
  const text = $("passage-text");
  text.textContent = "Loading…";
  if (!dialog.open) dialog.showModal();
  try {
    const response = await api(`/v1/passages/${Number(citation.chunk_id)}`);
    if (response.status === 404) {
      text.textContent = "This passage is gone, or you may not read it.";
      return;
    }
    const passage = await json(response);
    text.textContent = passage.text;
  } catch (err) {
    if (err instanceof SignedOut) {
      dialog.close();
      return signOut(`Your token was refused (${err.message}).`);
    }
    text.textContent = `The passage could not be loaded: ${err.message}`;
  }
}

// Collections and health

async function loadCollections() {
  const select = $("collection");
  const response = await api("/v1/collections");
  if (response.status === 404) {
    $("collection").closest(".toolbar").hidden = true;
    return;
  }
  const { data } = await json(response);
  const options = [el("option", {
    value: "", text: data.length ? "All collections I can read" : "No collections shared with you",
  })];
  for (const c of data) {
    const documents = c.documents === 1 ? "1 document" : `${c.documents} documents`;
    options.push(el("option", { value: c.name, text: `${c.name} (${documents})` }));
  }
  if (data.length) {
    options.push(el("option", { value: NO_DOCUMENTS, text: "No documents: the model alone" }));
  }
  select.replaceChildren(...options);
  select.disabled = !data.length;
  const wanted = current()?.collection ?? "";
  select.value = [...select.options].some((o) => o.value === wanted) ? wanted : "";
}

async function checkHealth() {
  const banner = $("banner");
  try {
    const health = await (await fetch("/healthz", { cache: "no-store" })).json();
    const down = health.model_server !== "ok";
    banner.textContent = down ? "The model server is not answering right now." : "";
    banner.hidden = !down;
  } catch {
    banner.textContent = "Charla cannot be reached right now.";
    banner.hidden = false;
  }
}

// Signing in and out

function signOut(reason = "") {
  running?.controller.abort();
  forgetToken();
  user = null;
  $("app").hidden = true;
  showSignIn(reason);
}

async function enter(token) {
  user = claimsOf(token);
  if (!user) return signOut("That token could not be read; paste it again.");
  $("who").textContent = user.sub;
  $("admin-link").hidden = !user.scopes.includes("admin");
  load();
  $("app").hidden = false;
  if (conversations.length) open(conversations[0].id);
  else newConversation();
  checkHealth();
  try {
    await loadCollections();
  } catch (err) {
    if (err instanceof SignedOut) signOut(`Your token was refused (${err.message}).`);
    // Otherwise the list stays at "All collections I can read", which still works.
  }
}

async function check() {
  const response = await api("/v1/collections");
  if (response.ok || response.status === 404) return null;
  const p = await problem(response);
  return p.message || `The server answered HTTP ${p.status}.`;
}

// Keyboard and controls

function closeMenu() {
  $("sidebar").classList.remove("open");
  $("menu").setAttribute("aria-expanded", "false");
}

function wire() {
  $("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("question");
    if (running || !question.value.trim()) return;
    const text = question.value;
    question.value = "";
    ask(text);
  });
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("ask").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => running?.controller.abort());
  $("new").addEventListener("click", newConversation);
  $("signout").addEventListener("click", () => signOut(""));
  $("help-button").addEventListener("click", () => $("help").showModal());
  $("collection").addEventListener("change", (event) => {
    const conversation = current();
    conversation.collection = event.target.value;
    save();
  });
  $("menu").addEventListener("click", () => {
    const open = $("sidebar").classList.toggle("open");
    $("menu").setAttribute("aria-expanded", String(open));
  });
  document.addEventListener("keydown", (event) => {
    if ($("app").hidden || document.querySelector("dialog[open]")) return;
    const typing = event.target.matches?.("input, textarea, select");
    if (event.key === "Escape" && running) {
      event.preventDefault();
      running.controller.abort();
    } else if (event.altKey && event.code === "KeyN") {
      event.preventDefault();
      newConversation();
    } else if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      event.preventDefault();
      step(event.key === "ArrowUp" ? -1 : 1);
    } else if (!typing && event.key === "/") {
      event.preventDefault();
      $("question").focus();
    } else if (!typing && event.key === "?") {
      event.preventDefault();
      $("help").showModal();
    }
  });
}

function start() {
  wire();
  showSignIn = setUpSignIn({ check, onSignedIn: enter });
  takeTokenFromFragment();
  const token = getToken();
  if (token) enter(token);
  else showSignIn("");
}

start();
