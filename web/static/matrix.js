// Sign-in for Matrix users (spec/client-api.md, POST /matrix/openid): the
// user's homeserver vouches for them with an OpenID token, and the node lets
// them in as a guest of its organisation. The token comes either from the
// Matrix client hosting this page as a widget (the widget API's get_openid),
// or from a link's fragment: #matrix_token=…&matrix_server=….
import { api, setToken } from './api.js';
import { widgetAPI } from './widget.js';

// fromFragment takes an OpenID token from the address bar and removes it at
// once, like a demo link's token.
function fromFragment() {
  if (!location.hash.startsWith('#matrix_token=')) return null;
  const p = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, '', location.pathname + location.search);
  const token = p.get('matrix_token');
  const server = p.get('matrix_server');
  return token && server ? { access_token: token, matrix_server_name: server } : null;
}

// fromWidget asks the Matrix client hosting this page for an OpenID token,
// through the widget API (widget.js). The client may answer at once, or
// say "request" and send the token once the user allowed it.
function fromWidget() {
  if (!widgetAPI) return Promise.resolve(null);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), 30000);
    const done = (creds) => { clearTimeout(timer); resolve(creds); };
    widgetAPI.on('openid_credentials', (data) => done(data.state === 'allowed' ? data : null));
    widgetAPI.request('get_openid', {}).then((r) => {
      if (r.state === 'allowed') done(r);
      else if (r.state !== 'request') done(null); // blocked
    }, () => done(null));
  });
}

// signInWithMatrix signs in with a Matrix OpenID token when one is offered,
// and reports whether it did.
export async function signInWithMatrix() {
  const creds = fromFragment() ?? (await fromWidget());
  if (!creds?.access_token || !creds?.matrix_server_name) return false;
  const { data } = await api.matrixLogin(creds.access_token, creds.matrix_server_name);
  setToken(data.token);
  return true;
}
