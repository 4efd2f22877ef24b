// The client API calls of the call screen (spec/client-api.md §3): the
// roster, moderation and signals of one conference.
import { request, getToken } from './api.js';

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
  // A session signs in with its cookie instead.
  if (getToken()) u.searchParams.set('access_token', getToken());
  return u.href;
}
