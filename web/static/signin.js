// The sign-in screen: a local user name and password (POST /api/v1/login).
import { api, setToken } from './api.js';
import { h, say, sayRaw, field } from './dom.js';

export function showSignIn(main, { onSignedIn, notice }) {
  const user = h('input', { id: 'signin-user', type: 'text', name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true });
  const password = h('input', { id: 'signin-password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  // role=alert: the failure is read out as soon as it shows.
  const error = h('p', { id: 'signin-error', class: 'error', role: 'alert' });
  if (notice) say(error, notice);
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

  main.append(
    h('h1', { id: 'signin-title', i18n: 'signin.title' }),
    h('p', { i18n: 'signin.intro' }),
    h('section', { 'aria-labelledby': 'signin-title' }, form),
  );
  user.focus();
  return { stop() {} };
}
