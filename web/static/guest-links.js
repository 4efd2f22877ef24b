// The moderators' guest links (spec/client-api.md §7): make a link that
// lets people outside every trusted institution into this conference as
// guests, copy it, see how many came through it, and revoke it.
import { request } from './api.js';
import { h, say, sayRaw, field } from './dom.js';

const LIFETIMES = [
  ['guests.life.hour', 3600],
  ['guests.life.day', 86400],
  ['guests.life.week', 7 * 86400],
  ['guests.life.month', 30 * 86400],
];

export function guestLinksPanel(conference) {
  const base = `/conferences/${encodeURIComponent(conference)}/guest-links`;
  const life = h('select', { id: 'guests-life' },
    LIFETIMES.map(([key, seconds], i) => h('option', { value: seconds, selected: i === 1, i18n: key })));
  const max = h('input', { id: 'guests-max', type: 'number', min: 0, max: 1000, value: 0, inputmode: 'numeric' });
  const result = h('p', { id: 'guests-result', class: 'result', role: 'status' });
  const made = h('div', { id: 'guests-made', hidden: true });
  const list = h('ul', { id: 'guests-list', class: 'guest-links' });
  const create = h('button', { type: 'submit', class: 'primary', id: 'guests-create', i18n: 'guests.create' });
  const form = h('form', { id: 'guests-form', novalidate: true },
    field(life, 'guests.life'), field(max, 'guests.max', 'guests.max.hint'), create);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    create.disabled = true;
    try {
      const { data } = await request('POST', base, { expires_in: Number(life.value), max_guests: Math.max(0, Number(max.value) || 0) });
      showMade(data.url);
      say(result, 'guests.created');
      refresh();
    } catch (err) {
      sayRaw(result, err.message);
    } finally {
      create.disabled = false;
    }
  });

  // showMade shows the new link once, with a button that copies it: the
  // node keeps only a hash of its secret and cannot show it again.
  function showMade(url) {
    const text = h('input', { id: 'guests-url', type: 'text', readonly: true, value: url });
    const copy = h('button', { type: 'button', id: 'guests-copy', i18n: 'guests.copy', onclick: async () => {
      try {
        await navigator.clipboard.writeText(url);
        say(result, 'guests.copied');
      } catch {
        text.select();
        say(result, 'guests.copy.manual');
      }
    } });
    made.replaceChildren(field(text, 'guests.url', 'guests.url.hint'), copy);
    made.hidden = false;
    copy.focus();
  }

  async function refresh() {
    let links;
    try {
      ({ data: links } = await request('GET', base));
    } catch (err) {
      sayRaw(result, err.message);
      return;
    }
    list.replaceChildren(...links.map((l) => {
      const until = new Date(l.expires_at);
      const state = l.revoked ? 'guests.state.revoked' : until <= new Date() ? 'guests.state.expired' : 'guests.state.open';
      const li = h('li', { 'data-link': l.id },
        h('span', { class: 'guest-link-id', text: l.id }), ' ',
        h('span', { i18n: state, vars: { until: until.toLocaleString() } }), ' ',
        h('span', { i18n: 'guests.count', vars: { n: l.guests, max: l.max_guests || '∞' } }));
      if (!l.revoked && until > new Date()) {
        li.append(' ', h('button', { type: 'button', class: 'danger', 'data-revoke': l.id, i18n: 'guests.revoke', onclick: async () => {
          try {
            await request('DELETE', `${base}/${encodeURIComponent(l.id)}`);
            say(result, 'guests.revoked');
          } catch (err) {
            sayRaw(result, err.message);
          }
          refresh();
        } }));
      }
      return li;
    }));
  }

  // The panel floats beside the call; Done or Escape closes it and gives
  // the focus back to the Moderation button.
  const done = h('button', { type: 'button', id: 'guests-done', i18n: 'invite.close', onclick: () => show(false) });
  const el = h('section', { id: 'guests-panel', class: 'guest-links-panel', 'aria-labelledby': 'guests-title', hidden: true },
    h('h3', { id: 'guests-title', i18n: 'guests.title' }), h('p', { i18n: 'guests.intro' }), form, made, result, list, done);
  el.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      show(false);
    }
  });
  const toggle = h('button', { type: 'button', id: 'mod-guests', 'aria-expanded': 'false', 'aria-controls': 'guests-panel', i18n: 'guests.open', onclick: () => show(el.hidden) });
  function show(on) {
    el.hidden = !on;
    toggle.setAttribute('aria-expanded', String(on));
    if (on) {
      refresh();
      life.focus();
    } else {
      document.getElementById('call-moderation')?.focus();
    }
  }
  return { toggle, el };
}
