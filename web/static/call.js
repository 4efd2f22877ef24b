// The call screen: waits in the lobby when it must, then runs a media
// session (call-media.js) and keeps it going across network blips, with the
// stage, the controls, the chat and the participants around it.
//
// startCall holds the call's state in one object, c, and gives it the
// behaviour of each concern: the user's own media (call-devices.js),
// signals (call-signals.js), the media session's events (call-tracks.js),
// the session's life cycle (call-connection.js), what is polled
// (call-roster.js), moderation (call-moderation.js) and the toolbar
// (call-controls.js).
import { h } from './dom.js';
import { navigate, conferencePath } from './router.js';
import { conferenceAPI } from './call-api.js';
import { Stage } from './call-tiles.js';
import { chatPanel, peoplePanel } from './call-panels.js';
import { callMembership } from './widget.js';
import { controlBar } from './call-controls.js';
import { ownMedia } from './call-devices.js';
import { signals } from './call-signals.js';
import { mediaEvents } from './call-tracks.js';
import { connection } from './call-connection.js';
import { rosterPolling } from './call-roster.js';
import { moderation } from './call-moderation.js';

export function startCall({ conference, me, stream: given, queued }) {
  const main = document.getElementById('main');
  // The user's own media: what the pre-join screen handed over, and the
  // devices turned on later in the call.
  const stream = given ?? new MediaStream();
  const c = {
    conference, me, queued, stream,
    api: conferenceAPI(conference.id),
    mic: stream.getAudioTracks()[0] ?? null,
    cam: stream.getVideoTracks()[0] ?? null,
    session: null,
    stopped: false,
    ended: false,
    attempt: 0,
    roster: null,
    moderator: false,
    screen: null, // the screen share's track
    lastStats: null,
    wasParticipant: false, // seen in the roster: gone from it means removed
    wasWaiting: false, // seen in the lobby: gone from both means denied
    locked: !!conference.locked,
    lobbyOn: !!conference.lobby,
    timers: new Set(),
    infos: new Map(), // track id → track info
  };
  c.later = (fn, ms) => {
    const id = setTimeout(() => { c.timers.delete(id); fn(); }, ms);
    c.timers.add(id);
    return id;
  };

  // --- the page ---
  c.status = h('p', { id: 'call-status', role: 'status', 'aria-live': 'polite', i18n: queued ? 'call.queued' : 'call.connecting' });
  c.alert = h('p', { id: 'call-alert', class: 'error', role: 'alert' });
  c.quality = h('p', { id: 'call-quality', class: 'quality', 'data-level': 'unknown', i18n: 'call.quality.unknown' });
  c.stage = new Stage({ onSize: (id, w, hgt) => c.session?.subscribe(id, w, hgt) });
  Object.assign(c, ownMedia(c), signals(c), mediaEvents(c), connection(c), rosterPolling(c), moderation(c));
  c.chat = chatPanel({
    send: async (text) => {
      const sig = await c.api.signal({ kind: 'chat', text });
      c.showChat(sig);
    },
  });
  c.people = peoplePanel({ me: me.user, isModerator: () => c.moderator, act: c.moderate });
  Object.assign(c, controlBar(c));

  c.waiting = h('p', { id: 'call-waiting', class: 'waiting', hidden: true, i18n: 'call.waiting' });
  const back = h('a', { id: 'call-back', href: '/', 'data-route': true, i18n: 'prejoin.back' });
  // After Leave (or a takeover), the way back in: the pre-join screen.
  c.rejoin = h('button', { type: 'button', id: 'call-rejoin', class: 'primary', i18n: 'call.rejoin', onclick: () => navigate(conferencePath(conference.id)) });
  c.after = h('div', { id: 'call-after', class: 'actions', hidden: true }, c.rejoin, back);
  c.callArea = h('div', { class: 'call-area' }, c.stage.el, h('div', { class: 'call-side' }, c.people.el, c.chat.el));
  main.classList.add('wide');
  main.replaceChildren(
    h('div', { class: 'call-head' },
      h('h1', { id: 'call-title', i18n: 'call.title', vars: { title: conference.title } }),
      c.quality),
    c.status, c.alert, c.waiting, c.after, c.callArea, c.modBar, c.guestPanel, c.controls);
  main.focus();

  c.stage.setPerson(me.user, { name: me.display_name, org: me.node.name, me: true, micMuted: !c.micOn() });
  if (c.cam) c.stage.show(me.user, 'camera', c.cam, '');
  c.stage.setVideoMuted(me.user, 'camera', !c.camOn());

  (async () => {
    c.moderator = await c.findModerator();
    if (c.stopped) return;
    if (c.moderator) {
      c.modButton.hidden = false;
    }
    const where = await c.admission();
    if (where === 'in') c.connect(); else if (where === 'unknown') {
      c.reconnect();
    }
    c.pollRoster();
    c.measure();
  })();

  return {
    stop() {
      if (!c.ended) c.session?.close(true);
      callMembership?.leave();
      c.stopped = true;
      c.session = null;
      for (const id of c.timers) clearTimeout(id);
      c.stage.clear();
      window.removeEventListener('entente:language', c.stage.relabel);
      stream.getTracks().forEach((x) => x.stop());
      c.screen?.stop();
      main.classList.remove('wide');
    },
  };
}
