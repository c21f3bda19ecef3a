// The dashboard talks only to the public /api/v1, with the token the operator pasted. The
// token lives in sessionStorage (this tab only, gone when it closes) and travels only in the
// Authorization header, never in a URL.

const KEY = 'hookrelay.token';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  signIn: (token) => sessionStorage.setItem(KEY, token),
  signOut: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, problem) {
    const fields = (problem?.errors ?? []).map((e) => `${e.field || 'body'}: ${e.message}`).join('; ');
    super(`${problem?.detail ?? `HTTP ${status}`}${fields && !problem?.detail?.includes(fields) ? ` (${fields})` : ''}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Calls /api/v1{path}; resolves to the JSON answer, rejects with an ApiError. */
export async function api(path, { method = 'GET', query, body } = {}) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  }
  const headers = { accept: 'application/json', authorization: `Bearer ${session.token() ?? ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    if (res.status === 401) window.dispatchEvent(new CustomEvent('hookrelay:unauthorized'));
    throw new ApiError(res.status, data);
  }
  return data;
}
