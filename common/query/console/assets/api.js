// The public HTTP API (/v1/...), with the key in the Authorization header and nowhere else:
// not in a URL, a cookie or local storage. sessionStorage keeps it for this tab only.

const KEY_ITEM = "ai-infra.console.key";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY_ITEM);
  },
  save(key) {
    sessionStorage.setItem(KEY_ITEM, key);
  },
  forget() {
    sessionStorage.clear();
  },
};

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const listeners = { rate: () => {}, unauthorized: () => {} };

/** `rate(limits)` after every answer that carries RateLimit headers; `unauthorized(error)` on 401. */
export function listen(name, handler) {
  listeners[name] = handler;
}

/** The IETF draft's fields: RateLimit-Policy `"per-key";q=600;w=60`, RateLimit `"per-key";r=597;t=42`. */
export function parseRateLimit(policy, current) {
  const params = (header) => {
    const found = {};
    for (const match of String(header || "").matchAll(/;\s*([a-z]+)=(\d+)/g)) {
      found[match[1]] = Number(match[2]);
    }
    return found;
  };
  const p = params(policy);
  const c = params(current);
  if (p.q === undefined && c.r === undefined) return null;
  return { limit: p.q ?? null, window: p.w ?? null, remaining: c.r ?? null, reset: c.t ?? null };
}

function retryAfter(response) {
  const value = response.headers.get("Retry-After");
  if (value === null) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(1, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(1, Math.ceil((date - Date.now()) / 1000));
}

async function errorOf(response) {
  let code = "error";
  let message = `the service answered ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = String(body.error.code);
      message = String(body.error.message);
    }
  } catch {
    // not our JSON error (a proxy's page): keep the status line
  }
  return new ApiError(response.status, code, message, retryAfter(response));
}

/** One API call; resolves to the Response when it is 2xx, else throws ApiError. */
export async function call(method, path, { body, query, signal, key, accept } = {}) {
  const headers = { Authorization: `Bearer ${key ?? session.key ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (accept) headers.Accept = accept;
  const search = query ? `?${new URLSearchParams(query)}` : "";
  let response;
  try {
    response = await fetch(path + search, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "the service cannot be reached; check the connection");
  }
  const limits = parseRateLimit(
    response.headers.get("RateLimit-Policy"),
    response.headers.get("RateLimit"),
  );
  if (limits) listeners.rate(limits);
  if (!response.ok) {
    const error = await errorOf(response);
    if (error.status === 401) listeners.unauthorized(error);
    throw error;
  }
  return response;
}

export async function json(method, path, options) {
  return (await call(method, path, options)).json();
}

/** What to tell a person about a failed call. */
export function describe(error) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${error.message}`;
  if (error.status === 401) return "The API key is wrong or has been revoked. Sign in again with a valid key.";
  if (error.status === 429) {
    const wait = error.retryAfter ? `${error.retryAfter} s` : "a moment";
    return `Too many requests: try again in ${wait} (${error.message}).`;
  }
  if (error.status === 0) return `Cannot reach the service: ${error.message}.`;
  if (error.status >= 500) return `The service could not do this now (${error.message}); try again shortly.`;
  return error.message.charAt(0).toUpperCase() + error.message.slice(1);
}

/** Server-sent events of a fetch Response: EventSource cannot send an Authorization header. */
export async function* serverEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
      end = buffer.indexOf("\n\n");
    }
  }
}
