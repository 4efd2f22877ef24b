// The home screen: who you are, your conferences, invitations from other
// organisations, and creating a conference and inviting organisations to it.
import { api } from './api.js';
import { h, say, sayRaw, field, announce, keepFocus } from './dom.js';
import { conferencePath } from './router.js';
import { t } from './i18n.js';

const REFRESH_MS = 5000;

export function showHome(main, { me }) {
  const names = new Map([[me.node.did, me.node.name]]); // node DID → institution name
  let peers = [];
  let shown = { conferences: null, invitations: null }; // last rendered JSON, to skip identical refreshes

  const conferenceList = h('ul', { class: 'cards', id: 'conferences' });
  const conferenceStatus = h('p', { class: 'success', id: 'conference-status', 'aria-live': 'polite' });
  const invitationList = h('ul', { class: 'cards', id: 'invitations' });
  const invitationStatus = h('p', { class: 'success', id: 'invitation-status', 'aria-live': 'polite' });
  const invitePanel = h('div', { id: 'invite-panel' });

  // --- Create a conference ------------------------------------------------
  const title = h('input', { id: 'create-title', type: 'text', maxlength: 200, required: true });
  const createError = h('p', { class: 'error', id: 'create-error', role: 'alert' });
  const createForm = h('form', { id: 'create-form', novalidate: true },
    field(title, 'create.label'), createError,
    h('button', { type: 'submit', class: 'primary', id: 'create-submit', i18n: 'create.submit' }));
  createForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    createError.textContent = '';
    if (!title.value.trim()) {
      say(createError, 'create.missing');
      title.focus();
      return;
    }
    try {
      const { data: conf } = await api.createConference(title.value.trim());
      title.value = '';
      announce('create.done', { title: conf.title });
      await refresh();
      openInvite(conf);
    } catch (err) {
      showError(createError, err);
    }
  });

  // --- Invite organisations -----------------------------------------------
  function openInvite(conf) {
    const heading = h('h2', { id: 'invite-title', tabindex: '-1', i18n: 'invite.title', vars: { title: conf.title } });
    const result = h('div', { id: 'invite-result', 'aria-live': 'polite' });
    const others = peers.filter((p) => p.did !== conf.host);
    if (others.length === 0) {
      invitePanel.replaceChildren(h('section', { 'aria-labelledby': 'invite-title' }, heading, h('p', { i18n: 'invite.nopeers' })));
      heading.focus();
      return;
    }
    const boxes = others.map((p, i) => h('input', { type: 'checkbox', id: `invite-peer-${i}`, value: p.did }));
    const users = h('input', { id: 'invite-users', type: 'text', autocomplete: 'off', spellcheck: 'false' });
    const form = h('form', { id: 'invite-form', novalidate: true },
      h('fieldset', {},
        h('legend', { i18n: 'invite.institutions' }),
        ...others.map((p, i) => h('div', {}, boxes[i], ' ', h('label', { for: boxes[i].id, text: p.name })))),
      field(users, 'invite.users', 'invite.users.hint'),
      result,
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary', id: 'invite-submit', i18n: 'invite.submit' }),
        h('button', { type: 'button', id: 'invite-close', i18n: 'invite.close', onclick: () => { invitePanel.replaceChildren(); document.getElementById('create-title')?.focus(); } })));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      result.replaceChildren();
      const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
      if (chosen.length === 0) {
        result.append(h('p', { class: 'error', i18n: 'invite.none' }));
        boxes[0].focus();
        return;
      }
      const localparts = users.value.split(/[\s,;]+/).filter(Boolean);
      for (const did of chosen) {
        const org = names.get(did) ?? did;
        const line = h('p', {});
        try {
          await api.invite(conf.id, did, localparts);
          line.className = 'success';
          say(line, 'invite.sent', { org });
        } catch (err) {
          line.className = 'error';
          say(line, 'invite.failed', { org, message: errorText(err) });
        }
        result.append(line);
      }
      refresh();
    });
    invitePanel.replaceChildren(h('section', { 'aria-labelledby': 'invite-title' }, heading, form));
    heading.focus();
  }

  // --- Conferences ------------------------------------------------------------
  function renderConferences(conferences) {
    if (conferences.length === 0) {
      conferenceList.replaceChildren(h('li', { i18n: 'conferences.empty' }));
      return;
    }
    conferenceList.replaceChildren(...conferences.map((c) => {
      const state = c.ended ? 'state.ended' : c.locked ? 'state.locked' : 'state.open';
      const host = names.get(c.host) ?? c.host;
      return h('li', { 'data-conference': c.id },
        h('p', { class: 'card-title', text: c.title }),
        h('p', { class: 'meta' },
          h('span', { i18n: 'conferences.host', vars: { org: host } }), ' · ',
          h('span', { class: 'badge', i18n: state })),
        h('div', { class: 'actions' },
          c.ended ? null : h('a', { href: conferencePath(c.id), 'data-route': true, 'data-focus': `open-${c.id}`, i18n: 'conferences.open', i18nLabel: 'conferences.open.label', vars: { title: c.title } }),
          h('button', { type: 'button', 'data-focus': `copy-${c.id}`, i18n: 'conferences.copy', i18nLabel: 'conferences.copy.label', vars: { title: c.title }, onclick: () => copyLink(c) }),
          c.hosted && !c.ended ? h('button', { type: 'button', 'data-focus': `invite-${c.id}`, i18n: 'conferences.invite', i18nLabel: 'conferences.invite.label', vars: { title: c.title }, onclick: () => openInvite(c) }) : null));
    }));
  }

  async function copyLink(c) {
    const url = new URL(conferencePath(c.id), location.origin).href;
    try {
      await navigator.clipboard.writeText(url);
      say(conferenceStatus, 'copy.done', { title: c.title });
      conferenceStatus.className = 'success';
    } catch {
      say(conferenceStatus, 'copy.failed', { url });
      conferenceStatus.className = 'error';
    }
  }

  // --- Invitations ------------------------------------------------------------
  function renderInvitations(invitations) {
    if (invitations.length === 0) {
      invitationList.replaceChildren(h('li', { i18n: 'invitations.empty' }));
      return;
    }
    invitationList.replaceChildren(...invitations.map((inv) => {
      const from = inv.host_name || inv.host;
      return h('li', { 'data-invitation': inv.conference },
        h('p', { class: 'card-title', text: inv.title }),
        h('p', { class: 'meta', i18n: 'invitations.from', vars: { org: from, user: inv.invited_by } }),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'primary', 'data-focus': `accept-${inv.conference}`, i18n: 'invitations.accept', i18nLabel: 'invitations.accept.label', vars: { title: inv.title }, onclick: () => answer(inv, true) }),
          h('button', { type: 'button', 'data-focus': `decline-${inv.conference}`, i18n: 'invitations.decline', i18nLabel: 'invitations.decline.label', vars: { title: inv.title }, onclick: () => answer(inv, false) })));
    }));
  }

  async function answer(inv, accept) {
    const verb = accept ? 'accepted' : 'declined';
    try {
      const { status } = await api.answer(inv.conference, accept);
      invitationStatus.className = 'success';
      say(invitationStatus, status === 202 ? `invitations.${verb}.queued` : `invitations.${verb}.applied`, { title: inv.title });
    } catch (err) {
      invitationStatus.className = 'error';
      say(invitationStatus, 'invitations.failed', { title: inv.title, message: errorText(err) });
    }
    await refresh();
    // The answered invitation is gone: keep the keyboard in the section.
    if (!document.activeElement || document.activeElement === document.body) invitationStatus.focus();
  }

  // --- Refresh ----------------------------------------------------------------
  async function refresh() {
    try {
      const [p, c, i] = await Promise.all([api.peers(), api.conferences(), api.invitations()]);
      peers = p.data;
      for (const peer of peers) names.set(peer.did, peer.name);
      for (const [key, list, render, data] of [
        ['conferences', conferenceList, renderConferences, c.data],
        ['invitations', invitationList, renderInvitations, i.data],
      ]) {
        const json = JSON.stringify(data);
        if (json === shown[key]) continue;
        shown[key] = json;
        keepFocus(list, () => render(data));
      }
    } catch (err) {
      if (err.status === 401) window.dispatchEvent(new Event('entente:navigate'));
      // Otherwise the next refresh tries again; the lists keep what they show.
    }
  }

  main.append(
    h('h1', { i18n: 'home.title' }),
    h('p', { id: 'whoami', i18n: 'home.whoami', vars: { name: me.display_name, user: me.id, org: me.unit ? `${me.unit} · ${me.node.name}` : me.node.name } }),
    h('section', { 'aria-labelledby': 'invitations-title' },
      h('h2', { id: 'invitations-title', i18n: 'invitations.title' }), invitationStatus, invitationList),
    h('section', { 'aria-labelledby': 'conferences-title' },
      h('h2', { id: 'conferences-title', i18n: 'conferences.title' }), conferenceStatus, conferenceList),
    h('section', { 'aria-labelledby': 'create-title-heading' },
      h('h2', { id: 'create-title-heading', i18n: 'create.title' }), createForm),
    invitePanel,
  );
  invitationStatus.tabIndex = -1;
  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return { stop() { clearInterval(timer); } };
}

function errorText(err) {
  return err.status === 0 ? t('error.unreachable') : err.message;
}

function showError(el, err) {
  if (err.status === 0) say(el, 'error.unreachable');
  else sayRaw(el, err.message);
}
