// The client API calls of the call screen (spec/client-api.md §3): the
// roster, moderation and signals of one conference.
import { getToken } from './api.js';

// CallError carries the answer's status and error code; status 0 means the
// node could not be reached.
export class CallError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function request(method, path, body) {
  const headers = { Accept: 'application/json', Authorization: 'Bearer ' + getToken() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch('/api/v1' + path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new CallError(0, 'network', '');
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    // An empty answer: its status says enough.
  }
  if (!res.ok) {
    const err = data?.error ?? {};
    throw new CallError(res.status, err.code ?? 'internal', err.message ?? res.statusText);
  }
  return { status: res.status, data };
}

export function conferenceAPI(id) {
  const base = `/conferences/${encodeURIComponent(id)}`;
  const post = (path, body) => request('POST', base + path, body);
  return {
    conference: () => request('GET', base).then((r) => r.data),
    roster: () => request('GET', base + '/participants').then((r) => r.data),
    events: () => request('GET', base + '/events').then((r) => r.data),
    join: () => post('/join', {}),
    leave: () => post('/leave'),
    signal: (s) => post('/signals', s).then((r) => r.data),
    remove: (user) => post('/remove', { user }),
    admit: (user) => post('/admit', { user }),
    deny: (user) => post('/deny', { user }),
    lobby: (on) => post('/lobby', { on }),
    lock: () => post('/lock'),
    unlock: () => post('/unlock'),
    end: () => post('/end'),
  };
}

// mediaURL is the signalling WebSocket (spec/client-api.md §5); a browser
// cannot set headers on a WebSocket, so the token goes in the query.
export function mediaURL(id) {
  const u = new URL(`/api/v1/conferences/${encodeURIComponent(id)}/media`, location.href);
  u.protocol = u.protocol === 'http:' ? 'ws:' : 'wss:';
  u.searchParams.set('access_token', getToken());
  return u.href;
}
