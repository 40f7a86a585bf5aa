// The only way the page talks to the server: the public JSON API, with the bearer token kept
// for this tab only (sessionStorage).

const TOKEN_KEY = 'helpdesk.token';

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const detail = body && body.detail;
    super(typeof detail === 'string' ? detail : describe(status));
    this.status = status;
    this.retryAfter = retryAfter;
    this.fields = {}; // field name -> message (422)
    this.general = []; // messages not tied to a field (422)
    if (Array.isArray(detail)) {
      for (const item of detail) {
        const loc = Array.isArray(item.loc) ? item.loc.filter((p) => p !== 'body') : [];
        const message = cleanMessage(item.msg || 'Invalid value');
        const name = loc.length ? String(loc[0]) : null;
        if (name && !(name in this.fields)) this.fields[name] = message;
        else if (!name) this.general.push(message);
      }
      if (this.general.length) this.message = this.general.join(' ');
      else this.message = 'Please correct the highlighted fields.';
    }
  }
}

function describe(status) {
  if (status === 0) return 'Cannot reach the server. Check your connection and try again.';
  if (status === 429) return 'Too many requests; please wait a moment.';
  if (status >= 500) return 'The server had a problem. Please try again.';
  return `Request failed (${status}).`;
}

// "Value error, must not be blank" -> "Must not be blank"
function cleanMessage(msg) {
  const text = String(msg)
    .replace(/^Value error, /, '')
    .replace(/^String should have at least 1 character$/, 'This field is required');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

let unauthorizedHandler = () => {};

export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** Call the API; resolves with the JSON body (null for 204), rejects with ApiError. */
export async function api(method, path, { body, query } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = session.token;
  if (token) headers.Authorization = `Bearer ${token}`;

  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, null, null);
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    throw failed(response.status, data, response.headers.get('Retry-After'), token);
  }
  return data;
}

function failed(status, data, retryAfterHeader, token) {
  const retry = Number.parseInt(retryAfterHeader || '', 10);
  const error = new ApiError(status, data, Number.isFinite(retry) ? retry : null);
  if (status === 401 && token) unauthorizedHandler(error);
  return error;
}

/** Send a multipart form (a file upload); resolves with the JSON answer, rejects with ApiError.
 *  `onProgress(fraction)` follows the bytes sent (fetch cannot tell upload progress). */
export function upload(path, form, { onProgress } = {}) {
  const token = session.token;
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', new URL(path, window.location.origin));
    xhr.setRequestHeader('Accept', 'application/json');
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    if (onProgress) {
      xhr.upload.addEventListener('progress', (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      });
    }
    xhr.addEventListener('load', () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(failed(xhr.status, data, xhr.getResponseHeader('Retry-After'), token));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, null, null)));
    xhr.send(form);
  });
}

/** GET a file's bytes with the bearer token (never in a URL); resolves with a Blob. */
export async function getBlob(path) {
  const token = session.token;
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  let response;
  try {
    response = await fetch(new URL(path, window.location.origin), {
      headers, credentials: 'omit', cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, null, null);
  }
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    throw failed(response.status, data, response.headers.get('Retry-After'), token);
  }
  return response.blob();
}

export const get = (path, query) => api('GET', path, { query });
export const post = (path, body) => api('POST', path, { body });
export const patch = (path, body) => api('PATCH', path, { body });

/** Every page of a paginated list (bounded), for small admin look-ups. */
export async function getAll(path, query = {}, maxPages = 10) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < maxPages; i += 1) {
    const page = await get(path, { ...query, limit: 100, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return items;
}

/** "3 min 20 s" for a Retry-After value. */
export function waitText(seconds) {
  const s = Math.max(1, Math.round(seconds || 1));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  const rest = s % 60;
  return rest ? `${m} min ${rest} s` : `${m} min`;
}
