// Moderators' actions in a call: the Moderation menu (lock, lobby, end,
// guest links), muting, removing, admitting and denying participants, and
// whether this user moderates at all.
import { h, say, announce } from './dom.js';
import { labelled } from './call-controls.js';
import { guestLinksPanel } from './guest-links.js';
import { menuButton } from './menu.js';

// moderation builds call c's moderation menu and gives c its actions.
export function moderation(c) {
  const { api, conference, me } = c;
  // Moderators' actions sit in a menu the Moderation button opens
  // (menu.js); each item says what it will do ("Lock the conference"). An
  // action done closes the menu; ending asks for a confirmation first.
  const modDo = (promise) => { closeModeration(true); return modAction(promise, 'call.mod.done'); };
  const lockButton = h('button', { type: 'button', id: 'mod-lock', i18n: c.locked ? 'call.mod.unlock' : 'call.mod.lock', onclick: () =>
    modDo(c.locked ? api.unlock() : api.lock()) });
  const lobbyButton = h('button', { type: 'button', id: 'mod-lobby', i18n: c.lobbyOn ? 'call.mod.lobby.off' : 'call.mod.lobby.on', onclick: () =>
    modDo(api.lobby(!c.lobbyOn)) });
  const endConfirm = h('button', { type: 'button', id: 'mod-end-confirm', class: 'danger', hidden: true, i18n: 'call.mod.end.confirm', onclick: () => modDo(api.end()) });
  const endButton = h('button', { type: 'button', id: 'mod-end', class: 'danger', i18n: 'call.mod.end', onclick: () => { endConfirm.hidden = false; endConfirm.focus(); } });
  // The guest links item opens their panel (guest-links.js), which stays
  // open beside the call once the menu closes.
  const guestLinks = guestLinksPanel(conference.id);
  const modBar = h('div', { id: 'moderation', class: 'moderation' }, lockButton, lobbyButton, endButton, endConfirm, guestLinks.toggle);
  const modButton = labelled({ id: 'call-moderation', class: 'plain-toggle', hidden: true }, 'call.mod.group', 'shield');
  // The confirmation is asked again each time the menu opens.
  const closeModeration = menuButton(modButton, modBar, { onClose: () => { endConfirm.hidden = true; } });
  function showModeration() {
    say(lockButton, c.locked ? 'call.mod.unlock' : 'call.mod.lock');
    say(lobbyButton, c.lobbyOn ? 'call.mod.lobby.off' : 'call.mod.lobby.on');
  }

  async function findModerator() {
    if (!conference.hosted) return false;
    if (conference.created_by === me.user) return true;
    try {
      const log = await api.events();
      const create = log.entries.find((e) => e.type === 'conference.create');
      return !!create?.content?.moderators?.includes(me.id);
    } catch {
      return false;
    }
  }

  async function modAction(promise, doneKey, vars) {
    try {
      await promise;
      say(c.people.result, doneKey, vars);
      announce(doneKey, vars);
    } catch (err) {
      say(c.alert, 'call.mod.failed', { message: err.message });
    }
    c.refreshRoster();
  }

  function moderate(action, p) {
    const vars = { name: p.display_name };
    switch (action) {
      case 'mute': return modAction(api.signal({ kind: 'mute.request', ref: p.user }), 'call.mod.muted', vars);
      case 'remove': return modAction(api.remove(p.user), 'call.mod.removed', vars);
      case 'admit': return modAction(api.admit(p.user), 'call.lobby.admitted', vars);
      case 'deny': return modAction(api.deny(p.user), 'call.lobby.denied', vars);
    }
  }

  return { modBar, modButton, guestPanel: guestLinks.el, showModeration, findModerator, moderate };
}
