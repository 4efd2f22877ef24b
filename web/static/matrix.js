// Sign-in for Matrix users (spec/client-api.md, POST /matrix/openid): the
// user's homeserver vouches for them with an OpenID token, and the node lets
// them in as a guest of its organisation. The token comes either from the
// Matrix client hosting this page as a widget (the widget API's get_openid),
// or from a link's fragment: #matrix_token=…&matrix_server=….
import { api, setToken } from './api.js';

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
// through the widget API's postMessage protocol.
function fromWidget() {
  const params = new URLSearchParams(location.search);
  const widgetId = params.get('widgetId');
  if (!widgetId || window.parent === window) return Promise.resolve(null);
  return new Promise((resolve) => {
    const requestId = `openid-${Date.now()}`;
    const timer = setTimeout(() => done(null), 30000);
    function done(creds) {
      clearTimeout(timer);
      window.removeEventListener('message', onMessage);
      resolve(creds);
    }
    function onMessage(ev) {
      const m = ev.data;
      if (!m || ev.source !== window.parent || m.widgetId !== widgetId) return;
      if (m.api === 'toWidget') {
        // The client asks what we need: nothing but OpenID, which needs no capability.
        const response = m.action === 'capabilities' ? { capabilities: [] } : {};
        if (m.action === 'openid_credentials' && m.data?.state === 'allowed') done(m.data);
        else if (m.action === 'openid_credentials') done(null);
        window.parent.postMessage({ ...m, response }, '*');
        return;
      }
      if (m.api === 'fromWidget' && m.requestId === requestId) {
        const r = m.response ?? {};
        if (r.state === 'allowed') done(r);
        else if (r.state !== 'request') done(null); // blocked; 'request' waits for openid_credentials
      }
    }
    window.addEventListener('message', onMessage);
    window.parent.postMessage({ api: 'fromWidget', widgetId, requestId, action: 'get_openid', data: {} }, '*');
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
