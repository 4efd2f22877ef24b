// The client's entry point: the session, the language switch and which
// screen shows.
import { api, getToken, setToken, clearToken, setSession, hasSession } from './api.js';
import { initLanguage, getLanguage, setLanguage } from './i18n.js';
import { parseRoute, followLinks, conferencePath } from './router.js';
import { showSignIn } from './signin.js';
import { showHome } from './home.js';
import { showPrejoin } from './prejoin.js';
import { h } from './dom.js';
import { signInWithMatrix } from './matrix.js';
import { takeGuestLink, isGuestRoute, showGuest } from './guest.js';

const main = document.getElementById('main');
const signOut = document.getElementById('sign-out');
const language = document.getElementById('language');

let screen = null; // the screen showing, with its stop()
let generation = 0; // a newer render makes an older one give up
let notice = null; // a message for the sign-in screen

// A demo link carries its token in the fragment, which never reaches a
// server; it is taken and removed from the address bar (and history) at once.
function takeFragmentToken() {
  if (!location.hash.startsWith('#token=')) return;
  const token = decodeURIComponent(location.hash.slice('#token='.length));
  if (/^ent_[A-Za-z0-9_-]+$/.test(token)) setToken(token);
  history.replaceState(null, '', location.pathname + location.search);
}

// An OpenID Connect sign-in that failed comes back as /?signin_error=reason
// (spec/client-api.md §3.1); the reason is shown once and leaves the address.
function takeSignInError() {
  const params = new URLSearchParams(location.search);
  const reason = params.get('signin_error');
  if (!reason) return;
  params.delete('signin_error');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + (rest ? '?' + rest : ''));
  if (reason === 'denied' || reason === 'not_allowed') notice = 'signin.oidc.' + reason;
  else notice = { key: 'signin.oidc.failed', vars: { reason: reason.replace(/[^a-z_]/g, '') } };
}

async function render({ focus = true } = {}) {
  const mine = ++generation;
  screen?.stop?.();
  screen = null;
  main.replaceChildren();
  if (isGuestRoute()) {
    // Someone opening a guest link types a name instead of signing in.
    signOut.hidden = true;
    screen = showGuest(main);
    return;
  }
  if (!getToken() && !hasSession()) {
    // An OpenID Connect sign-in leaves an HttpOnly session cookie this page
    // cannot see: the node tells whether there is one.
    try {
      const { data } = await api.session();
      setSession(data.csrf_token);
    } catch {
      // No session: sign in.
    }
    if (mine !== generation) return;
  }
  if (!getToken() && !hasSession()) {
    let options;
    try {
      ({ data: options } = await api.signinOptions());
    } catch {
      options = undefined; // the password form, as before
    }
    if (mine !== generation) return;
    signOut.hidden = true;
    screen = showSignIn(main, { onSignedIn: () => render(), notice, options });
    notice = null;
    return;
  }
  let me;
  try {
    ({ data: me } = await api.me());
  } catch (err) {
    if (mine !== generation) return;
    if (err.status === 401) {
      clearToken();
      setSession(null);
      return render({ focus });
    }
    main.replaceChildren(h('h1', { i18n: 'app.title' }), h('p', { class: 'error', role: 'alert', i18n: 'error.unreachable' }));
    return;
  }
  if (mine !== generation) return;
  signOut.hidden = false;
  let route = parseRoute(location.pathname);
  if (me.guest_of && route.name !== 'prejoin') {
    // A guest has no home: only their conference.
    history.replaceState(null, '', conferencePath(me.guest_of));
    route = parseRoute(location.pathname);
  }
  screen = route.name === 'prejoin' ? showPrejoin(main, { me, id: route.id }) : showHome(main, { me });
  // Screen reader users hear the new screen from its start.
  if (focus) main.focus();
}

initLanguage();
language.value = getLanguage();
language.addEventListener('change', () => setLanguage(language.value));
signOut.addEventListener('click', async () => {
  if (hasSession()) {
    // The node ends the session and says where the sign-in ends too: the
    // provider's logout page, which comes back here.
    try {
      const { data } = await api.logout();
      setSession(null);
      location.assign(data.redirect);
      return;
    } catch {
      setSession(null);
    }
  }
  clearToken();
  history.pushState(null, '', '/');
  render();
});
followLinks(document.body);
window.addEventListener('popstate', () => render());
window.addEventListener('entente:navigate', () => render());
takeFragmentToken();
takeGuestLink();
takeSignInError();
signInWithMatrix()
  .catch(() => { notice = 'signin.matrix.failed'; })
  .finally(() => render({ focus: false }));
