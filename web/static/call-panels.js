// The side panels of the call screen: the participants (with the lobby and
// moderators' actions) and the chat. Organisations shown here come from the
// host's signed roster or the signal the participant's home node signed,
// never from anything a participant typed.
import { h, say } from './dom.js';
import { t } from './i18n.js';
import { orgLabel } from './api.js';

// chatPanel lists chat signals and sends new ones with send(text).
export function chatPanel({ send }) {
  const list = h('ol', { id: 'chat-messages', class: 'chat-messages', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  const input = h('input', { id: 'chat-input', type: 'text', maxlength: 4000, autocomplete: 'off' });
  const error = h('p', { id: 'chat-error', class: 'error', role: 'alert' });
  const form = h('form', { id: 'chat-form', class: 'chat-form', novalidate: true },
    h('label', { for: 'chat-input', i18n: 'call.chat.label' }), input,
    h('button', { type: 'submit', id: 'chat-send', class: 'primary', i18n: 'call.chat.send' }));
  const seen = new Set();
  // lines holds each chat line shown, by id, with its author: an edit or
  // a redaction is applied only when it comes from that same author (the
  // same user and the same Matrix "as"), as federation.md §5.2 requires.
  const lines = new Map();
  const sameAuthor = (sig, line) => sig.user === line.user && (sig.as || '') === line.as;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    error.textContent = '';
    try {
      await send(text);
      input.value = '';
    } catch (err) {
      say(error, 'call.chat.failed', { message: err.message });
    }
    input.focus();
  });
  const el = h('section', { id: 'chat-panel', class: 'call-panel', 'aria-labelledby': 'chat-title', hidden: true },
    h('h2', { id: 'chat-title', i18n: 'call.chat.title' }), list, error, form);
  return {
    el,
    input,
    // add shows a chat signal once, however often it arrives. A line
    // bridged from Matrix is shown under the Matrix user its node names in
    // "as", not under the node that sent it.
    // With mine, name is shown as the user's own ("(you)", translated).
    add(sig, name, mine) {
      if (seen.has(sig.id)) return false;
      seen.add(sig.id);
      const author = sig.as ? { text: sig.as } : mine ? { i18n: 'call.you', vars: { name } } : { text: name };
      const text = h('p', { class: 'chat-text', text: sig.text });
      const li = h('li', { class: 'chat-message', 'data-signal': sig.id, 'data-as': sig.as || null },
        h('p', { class: 'chat-author' },
          h('span', { class: 'chat-name', ...author }),
          sig.as ? h('span', { class: 'chat-org chat-matrix', text: 'Matrix' }) : null,
          sig.organisation ? h('span', { class: 'chat-org', text: sig.organisation }) : null,
          // The time follows the language: "16:12" in French.
          h('time', { datetime: sig.at, i18n: 'call.chat.time', vars: { at: { time: sig.at } } })),
        text);
      list.append(li);
      lines.set(sig.id, { user: sig.user, as: sig.as || '', li, text });
      list.scrollTop = list.scrollHeight;
      return true;
    },
    // change applies a chat.edit or chat.redact of the line sig.ref, once,
    // only from that line's author; it reports whether it did.
    change(sig) {
      const line = lines.get(sig.ref);
      if (seen.has(sig.id) || !line || !sameAuthor(sig, line)) return false;
      seen.add(sig.id);
      if (sig.kind === 'chat.redact') {
        line.text.replaceChildren(h('em', { i18n: 'call.chat.removed' }));
        line.li.dataset.redacted = '';
        lines.delete(sig.ref);
      } else {
        line.text.replaceChildren(sig.text, ' ', h('span', { class: 'chat-edited', i18n: 'call.chat.edited' }));
        line.li.dataset.edited = '';
      }
      return true;
    },
  };
}

// peoplePanel shows the roster and, for moderators, the lobby and actions.
export function peoplePanel({ me, isModerator, act }) {
  const lobby = h('ul', { id: 'lobby-list', class: 'cards' });
  const lobbyBox = h('div', { id: 'lobby', hidden: true },
    h('h3', { id: 'lobby-title', i18n: 'call.lobby.title' }), lobby);
  const list = h('ul', { id: 'people-list', class: 'cards' });
  const result = h('p', { id: 'people-result', role: 'status' });
  const el = h('section', { id: 'people-panel', class: 'call-panel', 'aria-labelledby': 'people-title', hidden: true },
    h('h2', { id: 'people-title', i18n: 'call.people.title' }), lobbyBox, list, result);

  const button = (i18n, label, vars, onclick, cls) =>
    h('button', { type: 'button', class: cls, i18n, i18nLabel: label, vars, onclick, 'data-focus': label + '|' + vars.user });

  function row(p, state, actions) {
    const flags = [];
    if (state.inCall) flags.push(h('span', { class: 'badge', i18n: 'call.people.incall' }));
    if (state.micMuted) flags.push(h('span', { class: 'badge muted', i18n: 'call.badge.muted' }));
    if (state.hand) flags.push(h('span', { class: 'badge hand', i18n: 'call.badge.hand' }));
    if (state.withheld) flags.push(h('span', { class: 'badge withheld', i18n: 'call.badge.withheld' }));
    return h('li', { 'data-user': p.user },
      h('p', { class: 'card-title', ...(p.user === me ? { i18n: 'call.you', vars: { name: p.display_name } } : { text: p.display_name }) }),
      h('p', { class: 'meta', text: orgLabel(p) },
        p.organisation_label ? h('span', { class: 'org-label', i18n: 'call.org.label', vars: { label: p.organisation_label } }) : null),
      flags.length ? h('p', { class: 'flags' }, flags) : null,
      actions.length ? h('div', { class: 'actions' }, actions) : null);
  }

  return {
    el,
    result,
    render(roster, stateOf) {
      const moderator = isModerator();
      const active = document.activeElement;
      const focusKey = el.contains(active) ? active.dataset.focus : null;
      list.replaceChildren(...(roster?.participants ?? []).map((p) => {
        const vars = { name: p.display_name, user: p.user };
        const actions = moderator && p.user !== me ? [
          button('call.mod.mute', 'call.mod.mute.label', vars, () => act('mute', p)),
          button('call.mod.remove', 'call.mod.remove.label', vars, () => act('remove', p), 'danger'),
        ] : [];
        return row(p, stateOf(p.user), actions);
      }));
      const waiting = moderator ? roster?.lobby ?? [] : [];
      lobbyBox.hidden = waiting.length === 0;
      lobby.replaceChildren(...waiting.map((p) => {
        const vars = { name: p.display_name, user: p.user };
        return row(p, {}, [
          button('call.lobby.admit', 'call.lobby.admit.label', vars, () => act('admit', p), 'primary'),
          button('call.lobby.deny', 'call.lobby.deny.label', vars, () => act('deny', p)),
        ]);
      }));
      if (focusKey) el.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`)?.focus();
    },
  };
}
