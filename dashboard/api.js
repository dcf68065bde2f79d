// The dashboard's only way to the platform: its public REST API and dashboard WebSocket.
// Tokens: the access and id tokens live in memory; the refresh token in sessionStorage (it
// survives a reload of this tab, and nothing else). They are refreshed a minute before
// they expire, and signing out clears them everywhere.

const REFRESH_KEY = "oratio.refresh";

/** Where the APIs are: `config.json` beside the dashboard (AWS), else this origin. */
export const config = await (async () => {
  const here = { api: location.origin, socket: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/dashboard`, local: true };
  try {
    const response = await fetch("/config.json", { cache: "no-store" });
    if (response.ok) return { ...here, local: false, ...(await response.json()) };
  } catch { /* served by `oratio up`: no config file */ }
  return here;
})();

export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

const session = { access: null, id: null, refresh: sessionStorage.getItem(REFRESH_KEY), timer: null, me: null };
const listeners = new Set();

/** Called with the signed-in member (or null) whenever that changes. */
export function onAuthChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function announce() {
  for (const listener of listeners) listener(session.me);
}

export function me() {
  return session.me;
}

export function can(action) {
  const role = session.me?.role;
  if (action === "read") return Boolean(role);
  if (action === "manage_agents") return role === "admin" || role === "operator";
  return role === "admin"; // keys, members
}

async function parse(response) {
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    throw new ApiError(response.status, body?.code ?? "http_" + response.status,
      body?.error ?? `The platform answered ${response.status}.`, body?.request_id);
  }
  return body;
}

/** One call of the REST API. `json` or `form` is the body; `auth: false` sends no token. */
export async function request(method, path, { json, form, auth = true, headers = {} } = {}) {
  const send = async () => {
    const init = { method, headers: { accept: "application/json", ...headers } };
    if (auth && session.access) init.headers.authorization = `Bearer ${session.access}`;
    if (json !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (form) {
      init.body = form;
    }
    try {
      return await fetch(config.api + path, init);
    } catch {
      throw new ApiError(0, "network", "The platform could not be reached. Check your connection and try again.");
    }
  };
  let response = await send();
  if (response.status === 401 && auth && session.refresh && await refresh()) response = await send();
  return parse(response);
}

/** Saves what a GET answers as a file (exports need the token, so no plain link). */
export async function download(path, filename) {
  const send = () => fetch(config.api + path, { headers: { authorization: `Bearer ${session.access}` } });
  let response = await send();
  if (response.status === 401 && session.refresh && await refresh()) response = await send();
  if (!response.ok) return parse(response);
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A multipart upload with progress (`fetch` cannot report it). */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", config.api + path);
    xhr.setRequestHeader("accept", "application/json");
    if (session.access) xhr.setRequestHeader("authorization", `Bearer ${session.access}`);
    xhr.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded, event.total);
    xhr.onerror = () => reject(new ApiError(0, "network", "The upload failed: the platform could not be reached."));
    xhr.onload = () => parse(new Response(xhr.responseText || null, { status: xhr.status })).then(resolve, reject);
    xhr.send(form);
  });
}

function keep(tokens) {
  session.access = tokens.access_token;
  session.id = tokens.id_token;
  if (tokens.refresh_token) {
    session.refresh = tokens.refresh_token;
    sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
  }
  clearTimeout(session.timer);
  const seconds = Math.max(30, (tokens.expires_in ?? 3600) - 60);
  session.timer = setTimeout(refresh, seconds * 1000);
}

function forget() {
  clearTimeout(session.timer);
  Object.assign(session, { access: null, id: null, refresh: null, timer: null, me: null });
  sessionStorage.removeItem(REFRESH_KEY);
  socket.close();
  announce();
}

let refreshing = null;

/** Trades the refresh token for new tokens; false (and signed out) when it no longer works. */
export function refresh() {
  refreshing ??= (async () => {
    try {
      if (!session.refresh) return false;
      keep(await request("POST", "/v1/auth/refresh", { json: { refresh_token: session.refresh }, auth: false }));
      socket.reconnect();
      return true;
    } catch (error) {
      if (error.status === 400 || error.status === 401) forget();
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function loadMe() {
  session.me = await request("GET", "/v1/me");
  socket.open();
  announce();
  return session.me;
}

export async function signIn(email, password) {
  keep(await request("POST", "/v1/auth/login", { json: { email, password }, auth: false }));
  return loadMe();
}

/** Restores a signed-in tab after a reload; null when there is nobody to restore. */
export async function resume() {
  if (!session.refresh) return null;
  if (!(await refresh())) return null;
  try {
    return await loadMe();
  } catch {
    forget();
    return null;
  }
}

export async function signOut() {
  try {
    if (session.access) await request("POST", "/v1/auth/logout");
  } catch { /* the tokens are dropped whatever the platform says */ }
  forget();
}

/** The dashboard WebSocket: reconnects with backoff (1 s doubling to 30 s, with jitter)
 *  while signed in, and hands events on. Its own state comes to subscribers as events
 *  too: `socket.closed` when it drops, and `socket.open` (`resumed: true` after a gap),
 *  on which views reload from the API, since events sent meanwhile were missed. */
export const socket = (() => {
  let ws = null;
  let wanted = false;
  let delay = 1000;
  let dropped = false;
  const handlers = new Set();
  const tell = (event) => { for (const handler of handlers) handler(event); };
  const connect = () => {
    if (!wanted || !session.access) return;
    ws = new WebSocket(`${config.socket}?token=${encodeURIComponent(session.access)}`);
    ws.onopen = () => {
      delay = 1000;
      tell({ type: "socket.open", resumed: dropped });
      dropped = false;
    };
    ws.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      tell(event);
    };
    ws.onclose = () => {
      ws = null;
      if (!wanted) return;
      dropped = true;
      tell({ type: "socket.closed" });
      setTimeout(connect, delay * (0.75 + Math.random() / 2));
      delay = Math.min(delay * 2, 30000);
    };
  };
  return {
    open() { wanted = true; if (!ws) connect(); },
    close() { wanted = false; ws?.close(); ws = null; },
    reconnect() { if (wanted) { ws?.close(); } },
    /** Closes the connection as a network failure would (for the browser tests). */
    drop() { ws?.close(); },
    /** Calls `handler` with every event until the returned function is called. */
    subscribe(handler) { handlers.add(handler); return () => handlers.delete(handler); },
  };
})();
