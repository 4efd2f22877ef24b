// The sign-in screen: "Sign in with <provider>" where the node has an OpenID
// provider, and a local user name and password (POST /api/v1/login) where
// the node allows passwords (GET /api/v1/signin says which).
import { api, setToken } from './api.js';
import { h, say, sayRaw, field } from './dom.js';

export function showSignIn(main, { onSignedIn, notice, options = { passwords: true, oidc: null } }) {
  const user = h('input', { id: 'signin-user', type: 'text', name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true });
  const password = h('input', { id: 'signin-password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  // role=alert: the failure is read out as soon as it shows.
  const error = h('p', { id: 'signin-error', class: 'error', role: 'alert' });
  if (notice) say(error, notice.key ?? notice, notice.vars);
  const submit = h('button', { type: 'submit', class: 'primary', id: 'signin-submit', i18n: 'signin.submit' });
  const form = h('form', { id: 'signin-form', novalidate: true },
    field(user, 'signin.user'), field(password, 'signin.password'), error, submit);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    if (!user.value.trim() || !password.value) {
      say(error, 'signin.missing');
      (user.value.trim() ? password : user).focus();
      return;
    }
    submit.disabled = true;
    try {
      const { data } = await api.login(user.value.trim(), password.value);
      setToken(data.token);
      onSignedIn();
    } catch (err) {
      if (err.status === 401) say(error, 'signin.failed');
      else if (err.status === 429) say(error, 'signin.limited');
      else if (err.status === 0) say(error, 'error.unreachable');
      else sayRaw(error, err.message);
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });

  // The provider's button is a plain link: the sign-in is a navigation to
  // the node, which sends the browser on to the provider.
  const provider = options.oidc
    ? h('a', { id: 'signin-oidc', class: 'button primary', href: options.oidc.login_url, i18n: 'signin.oidc', vars: { name: options.oidc.name } })
    : null;
  const section = h('section', { 'aria-labelledby': 'signin-title' });
  if (provider) section.append(h('p', {}, provider));
  if (options.passwords) {
    if (provider) section.append(h('p', { i18n: 'signin.local' }));
    section.append(form);
  } else {
    section.append(error);
  }
  main.append(
    h('h1', { id: 'signin-title', i18n: 'signin.title' }),
    h('p', { i18n: 'signin.intro' }),
    section,
  );
  (options.passwords ? user : provider)?.focus();
  return { stop() {} };
}
