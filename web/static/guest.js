// The guest's screen (spec/client-api.md §7): someone outside every trusted
// institution opens a guest link, /app/guest#<link>, types a name and goes
// on to the conference, where they wait in the lobby until a moderator
// admits them. The link travels in the fragment, which never reaches a
// server; it is taken out of the address bar at once.
import { request, setToken } from './api.js';
import { h, say, sayRaw, field } from './dom.js';
import { navigate, conferencePath } from './router.js';

let link = null; // the link taken from the address bar

// takeGuestLink keeps the link of a /app/guest#<link> address and removes
// it from the address bar (and history).
export function takeGuestLink() {
  if (location.pathname !== '/app/guest' || !location.hash) return;
  const text = decodeURIComponent(location.hash.slice(1));
  if (/^gl-[0-9a-f]{16}\.[A-Za-z0-9_-]{1,128}$/.test(text)) link = text;
  history.replaceState(null, '', location.pathname);
}

// isGuestRoute says whether the guest's screen shows.
export function isGuestRoute() {
  return location.pathname === '/app/guest';
}

const REASONS = {
  link_invalid: 'guest.invalid',
  link_revoked: 'guest.revoked',
  link_expired: 'guest.expired',
  link_full: 'guest.full',
  gone: 'guest.ended',
};

export function showGuest(main) {
  const title = h('h1', { id: 'guest-title', i18n: 'guest.title' });
  if (!link) {
    main.append(title, h('p', { id: 'guest-error', class: 'error', role: 'alert', i18n: 'guest.nolink' }));
    return { stop() {} };
  }
  const name = h('input', { id: 'guest-name', type: 'text', name: 'name', autocomplete: 'name', maxlength: 80, required: true });
  const error = h('p', { id: 'guest-error', class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'guest-submit', i18n: 'guest.submit' });
  const form = h('form', { id: 'guest-form', novalidate: true }, field(name, 'guest.name', 'guest.name.hint'), error, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const typed = name.value.trim();
    if (!typed) {
      say(error, 'guest.missing');
      name.focus();
      return;
    }
    submit.disabled = true;
    try {
      const { data } = await request('POST', '/guests', { link, display_name: typed });
      setToken(data.token);
      link = null;
      navigate(conferencePath(data.conference));
    } catch (err) {
      if (REASONS[err.code]) say(error, REASONS[err.code]);
      else if (err.status === 0) say(error, 'error.unreachable');
      else sayRaw(error, err.message);
      submit.disabled = false;
      name.focus();
    }
  });
  main.append(title,
    h('section', { 'aria-labelledby': 'guest-title' },
      h('p', { i18n: 'guest.intro' }),
      h('p', { i18n: 'guest.label' }),
      form));
  name.focus();
  return { stop() {} };
}
