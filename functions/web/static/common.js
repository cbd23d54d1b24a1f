// What both pages share: the token, calls to the API, building DOM nodes, sign-in.
//
// Text from the API (answers, documents, errors) only ever becomes text nodes: el() sets
// textContent, never HTML, and the page's Trusted Types policy makes any HTML sink throw.

const TOKEN_KEY = "charla.token";

/** A token handed over in the URL fragment (#token=...), stored, then wiped from the URL. */
export function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!match) return false;
  saveToken(decodeURIComponent(match[1]), false);
  // The fragment never reaches a server, but it would stay in the history and the address
  // bar: replace this history entry with the bare page.
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY);
}

/** Keep the token for this tab only, or (remember) for this browser until sign-out. */
export function saveToken(token, remember) {
  forgetToken();
  (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token.trim());
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
}

/** What the token says about its holder (unverified: for display only; the API decides). */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    const raw = payload.scope ?? payload.scp ?? "";
    const scopes = Array.isArray(raw) ? raw.map(String) : String(raw).split(/\s+/).filter(Boolean);
    return { sub: String(payload.sub ?? ""), exp: Number(payload.exp ?? 0), scopes };
  } catch {
    return null;
  }
}

/** A DOM element: props are set as properties (text via textContent), children appended. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "text") {
      node.textContent = String(value);
    } else if (key === "class") {
      node.className = value;
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (key.startsWith("aria-") || key === "role" || key === "for") {
      node.setAttribute(key, String(value));
    } else {
      node[key] = value;
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export class SignedOut extends Error {}

/** fetch() on this origin with the bearer token; a refused token signs the person out. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const token = getToken();
  if (!token) throw new SignedOut("not signed in");
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, signal, cache: "no-store", credentials: "omit",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    const { message } = await problem(response);
    forgetToken();
    throw new SignedOut(message);
  }
  return response;
}

/** An error response as {status, message, code, retryAfter (seconds or null)}. */
export async function problem(response) {
  let message = "";
  let code = null;
  try {
    const body = await response.json();
    message = String(body?.error?.message ?? "");
    code = body?.error?.code ?? null;
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  const header = response.headers.get("Retry-After");
  const retryAfter = header && /^\d+$/.test(header) ? Number(header) : null;
  return { status: response.status, message, code, retryAfter };
}

/** JSON of a successful response, or an Error with the API's message. */
export async function json(response) {
  if (response.ok) return response.json();
  const { status, message } = await problem(response);
  throw new Error(message ? `${message} (HTTP ${status})` : `HTTP ${status}`);
}

/**
 * Wire the sign-in form (#signin) and call onSignedIn(token) once a token is in hand.
 * check(token) resolves to null when the token will do, else to the reason it will not.
 */
export function setUpSignIn({ check, onSignedIn }) {
  const section = document.getElementById("signin");
  const form = document.getElementById("signin-form");
  const input = document.getElementById("token-input");
  const remember = document.getElementById("remember");
  const error = document.getElementById("signin-error");

  function show(message) {
    section.hidden = false;
    error.textContent = message;
    error.hidden = !message;
    input.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    const claims = claimsOf(token);
    if (!claims) return show("That does not look like a token: paste the whole eyJ… text.");
    if (claims.exp && claims.exp * 1000 < Date.now()) {
      return show("This token has expired: ask for a new one.");
    }
    saveToken(token, remember.checked);
    let refused;
    try {
      refused = await check(token);
    } catch (err) {
      refused = err instanceof SignedOut
        ? `This token was refused: ${err.message}`
        : "Charla cannot be reached at this address; is it running?";
    }
    if (refused) {
      forgetToken();
      return show(refused);
    }
    input.value = "";
    section.hidden = true;
    onSignedIn(token);
  });
  return show;
}

/** Wait for the next animation frame at most once per burst of calls. */
export function throttled(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}
