// The client API of spec/client-api.md, and the session's token.
const TOKEN_KEY = 'entente.token';

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// A browser signed in through OpenID Connect has no token: the node knows it
// by its HttpOnly session cookie, and every state-changing request carries
// the session's CSRF token (spec/client-api.md §1).
let csrf = null;

export function setSession(token) {
  csrf = token;
}

export function hasSession() {
  return csrf !== null;
}

// orgLabel is the organisation as a participant's home node states it, with
// the unit before it where the node knows one.
export function orgLabel(p) {
  return p.unit ? `${p.unit} · ${p.organisation}` : p.organisation;
}

// ApiError carries the answer's status and the error code and message of
// spec/client-api.md §1. status 0 means the node could not be reached.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// request calls the client API with the session's token.
export async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  else if (csrf && method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch('/api/v1' + path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', '');
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    // An empty or non-JSON answer: its status says enough.
  }
  if (!res.ok) {
    const err = data?.error ?? {};
    throw new ApiError(res.status, err.code ?? 'internal', err.message ?? res.statusText);
  }
  return { status: res.status, data };
}

const id = (s) => encodeURIComponent(s);

export const api = {
  login: (user, password) => request('POST', '/login', { user, password }),
  matrixLogin: (token, server) => request('POST', '/matrix/openid', { access_token: token, matrix_server_name: server }),
  signinOptions: () => request('GET', '/signin'),
  session: () => request('GET', '/session'),
  logout: () => request('POST', '/logout'),
  me: () => request('GET', '/me'),
  peers: () => request('GET', '/peers'),
  conferences: () => request('GET', '/conferences'),
  conference: (c) => request('GET', `/conferences/${id(c)}`),
  createConference: (title) => request('POST', '/conferences', { title }),
  invite: (c, node, users) => request('POST', `/conferences/${id(c)}/invitations`, users.length ? { node, users } : { node }),
  join: (c) => request('POST', `/conferences/${id(c)}/join`, {}),
  invitations: () => request('GET', '/invitations'),
  answer: (c, accept) => request('POST', `/invitations/${id(c)}/${accept ? 'accept' : 'decline'}`),
};
