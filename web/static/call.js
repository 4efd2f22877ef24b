// The call screen: waits in the lobby when it must, then runs a media
// session (call-media.js) and keeps it going across network blips, with the
// stage, the controls, the chat and the participants around it.
import { h, say, announce } from './dom.js';
import { t } from './i18n.js';
import { navigate, conferencePath } from './router.js';
import { icon } from './icons.js';
import { conferenceAPI } from './call-api.js';
import { orgLabel } from './api.js';
import { MediaSession } from './call-media.js';
import { Stage } from './call-tiles.js';
import { chatPanel, peoplePanel } from './call-panels.js';
import { menuButton } from './menu.js';

const reducedMotion = () => window.matchMedia('(prefers-reduced-motion: reduce)').matches;
const REACTIONS = ['👍', '👏', '😀', '❤️', '🎉'];
const LOBBY_POLL = 2000;
const ROSTER_POLL = 5000;
const STATS_EVERY = 3000;
const MAX_BACKOFF = 15000;
const END = {
  ended: 'call.end.ended', removed: 'call.end.removed', denied: 'call.end.denied',
  notin: 'call.end.notin', left: 'call.end.left', replaced: 'call.end.replaced',
};
const QUALITY = { good: 'call.quality.good', fair: 'call.quality.fair', poor: 'call.quality.poor' };

export function startCall({ conference, me, stream: given, queued }) {
  const api = conferenceAPI(conference.id);
  const main = document.getElementById('main');
  // The user's own media: what the pre-join screen handed over, and the
  // devices turned on later in the call.
  const stream = given ?? new MediaStream();
  let mic = stream.getAudioTracks()[0] ?? null;
  let cam = stream.getVideoTracks()[0] ?? null;
  let session = null;
  let stopped = false;
  let ended = false;
  let attempt = 0;
  let roster = null;
  let moderator = false;
  let screen = null; // the screen share's track
  let lastStats = null;
  let wasParticipant = false; // seen in the roster: gone from it means removed
  let wasWaiting = false; // seen in the lobby: gone from both means denied
  const timers = new Set();
  const infos = new Map(); // track id → track info
  const later = (fn, ms) => {
    const id = setTimeout(() => { timers.delete(id); fn(); }, ms);
    timers.add(id);
    return id;
  };

  // --- the page ---
  const status = h('p', { id: 'call-status', role: 'status', 'aria-live': 'polite', i18n: queued ? 'call.queued' : 'call.connecting' });
  const alert = h('p', { id: 'call-alert', class: 'error', role: 'alert' });
  const quality = h('p', { id: 'call-quality', class: 'quality', 'data-level': 'unknown', i18n: 'call.quality.unknown' });
  const stage = new Stage({ onSize: (id, w, hgt) => session?.subscribe(id, w, hgt) });
  const chat = chatPanel({
    send: async (text) => {
      const sig = await api.signal({ kind: 'chat', text });
      showChat(sig);
    },
  });
  const people = peoplePanel({ me: me.user, isModerator: () => moderator, act: moderate });

  // A control is an icon with its label; on a narrow screen the label is
  // kept for screen readers and shown as a tooltip.
  const labelled = (attrs, key, iconName) => {
    const label = h('span', { class: 'label', i18n: key });
    const b = h('button', { type: 'button', ...attrs }, icon(iconName), label);
    b.label = label;
    b.title = label.textContent;
    return b;
  };
  const say2 = (b, key) => { say(b.label, key); b.title = b.label.textContent; };
  const toggle = (id, key, pressed, onclick, iconName) =>
    labelled({ id, 'aria-pressed': String(pressed), onclick }, key, iconName);
  const micButton = toggle('call-mic', 'call.mic', mic?.enabled ?? false, () => setMic(!micOn()), 'mic');
  const camButton = toggle('call-camera', 'call.camera', cam?.enabled ?? false, () => setCamera(!camOn()), 'camera');
  const shareButton = toggle('call-share', 'call.share', false, () => (screen ? stopShare() : startShare()), 'screen');
  shareButton.classList.add('plain-toggle');
  const handButton = toggle('call-hand', 'call.hand', false, () => raiseHand(handButton.getAttribute('aria-pressed') !== 'true'), 'hand');
  handButton.classList.add('plain-toggle');
  const layoutButton = toggle('call-layout', 'call.layout.speaker', false, () => {
    const speaker = stage.layout !== 'speaker';
    stage.setLayout(speaker ? 'speaker' : 'grid');
    layoutButton.setAttribute('aria-pressed', String(speaker));
    announce(speaker ? 'call.layout.speaker.on' : 'call.layout.grid.on');
  }, 'layout');
  layoutButton.classList.add('plain-toggle');
  const panelButton = (id, key, panel, focus, iconName) => {
    const b = toggle(id, key, false, () => {
      panel.hidden = !panel.hidden;
      b.setAttribute('aria-pressed', String(!panel.hidden));
      if (!panel.hidden) focus();
    }, iconName);
    b.classList.add('plain-toggle');
    b.setAttribute('aria-controls', panel.id);
    return b;
  };
  const chatButton = panelButton('call-chat', 'call.chat', chat.el, () => chat.input.focus(), 'chat');
  const peopleButton = panelButton('call-people', 'call.people', people.el, () => people.el.querySelector('h2').focus(), 'people');
  people.el.querySelector('h2').tabIndex = -1;
  const reactions = h('div', { class: 'reactions', role: 'group', i18nLabel: 'call.react.group' },
    REACTIONS.map((r) => h('button', { type: 'button', class: 'reaction', 'data-reaction': r, text: r, i18nLabel: 'call.react', vars: { reaction: r }, onclick: () => sendSignal({ kind: 'reaction', text: r }) })));
  const leaveButton = labelled({ id: 'call-leave', class: 'danger', onclick: leave }, 'call.leave', 'leave');

  // Moderators' actions sit in a menu the Moderation button opens
  // (menu.js); each item says what it will do ("Lock the conference"). An
  // action done closes the menu; ending asks for a confirmation first.
  let locked = !!conference.locked;
  let lobbyOn = !!conference.lobby;
  const modDo = (promise) => { closeModeration(true); return modAction(promise, 'call.mod.done'); };
  const lockButton = h('button', { type: 'button', id: 'mod-lock', i18n: locked ? 'call.mod.unlock' : 'call.mod.lock', onclick: () =>
    modDo(locked ? api.unlock() : api.lock()) });
  const lobbyButton = h('button', { type: 'button', id: 'mod-lobby', i18n: lobbyOn ? 'call.mod.lobby.off' : 'call.mod.lobby.on', onclick: () =>
    modDo(api.lobby(!lobbyOn)) });
  const endConfirm = h('button', { type: 'button', id: 'mod-end-confirm', class: 'danger', hidden: true, i18n: 'call.mod.end.confirm', onclick: () => modDo(api.end()) });
  const endButton = h('button', { type: 'button', id: 'mod-end', class: 'danger', i18n: 'call.mod.end', onclick: () => { endConfirm.hidden = false; endConfirm.focus(); } });
  const modBar = h('div', { id: 'moderation', class: 'moderation' }, lockButton, lobbyButton, endButton, endConfirm);
  const modButton = labelled({ id: 'call-moderation', class: 'plain-toggle', hidden: true }, 'call.mod.group', 'shield');
  // The confirmation is asked again each time the menu opens.
  const closeModeration = menuButton(modButton, modBar, { onClose: () => { endConfirm.hidden = true; } });
  function showModeration() {
    say(lockButton, locked ? 'call.mod.unlock' : 'call.mod.lock');
    say(lobbyButton, lobbyOn ? 'call.mod.lobby.off' : 'call.mod.lobby.on');
  }

  const group = (key, ...buttons) => h('div', { class: 'control-group', role: 'group', i18nLabel: key }, buttons);
  const controls = h('div', { id: 'call-controls', class: 'call-controls', role: 'toolbar', i18nLabel: 'call.controls' },
    group('call.group.devices', micButton, camButton),
    group('call.group.share', shareButton, handButton, reactions),
    group('call.group.view', layoutButton, chatButton, peopleButton, modButton),
    group('call.group.leave', leaveButton));
  controls.addEventListener('keydown', toolbarKeys);

  const waiting = h('p', { id: 'call-waiting', class: 'waiting', hidden: true, i18n: 'call.waiting' });
  const back = h('a', { id: 'call-back', href: '/', 'data-route': true, i18n: 'prejoin.back' });
  // After Leave (or a takeover), the way back in: the pre-join screen.
  const rejoin = h('button', { type: 'button', id: 'call-rejoin', class: 'primary', i18n: 'call.rejoin', onclick: () => navigate(conferencePath(conference.id)) });
  const after = h('div', { id: 'call-after', class: 'actions', hidden: true }, rejoin, back);
  const callArea = h('div', { class: 'call-area' }, stage.el, h('div', { class: 'call-side' }, people.el, chat.el));
  main.classList.add('wide');
  main.replaceChildren(
    h('div', { class: 'call-head' },
      h('h1', { id: 'call-title', i18n: 'call.title', vars: { title: conference.title } }),
      quality),
    status, alert, waiting, after, callArea, modBar, controls);
  main.focus();

  stage.setPerson(me.user, { name: me.display_name, org: me.node.name, me: true, micMuted: !micOn() });
  if (cam) stage.show(me.user, 'camera', cam, '');
  stage.setVideoMuted(me.user, 'camera', !camOn());

  // --- own media ---
  function micOn() { return micButton.getAttribute('aria-pressed') === 'true'; }
  function camOn() { return camButton.getAttribute('aria-pressed') === 'true'; }

  function setMic(on, why) {
    if (!mic) {
      if (on) startDevice('microphone');
      return;
    }
    mic.enabled = on;
    micButton.setAttribute('aria-pressed', String(on));
    stage.setPerson(me.user, { micMuted: !on });
    session?.setMuted('microphone', !on);
    sendSignal({ kind: 'mute', on: !on });
    announce(why ?? (on ? 'call.mic.on' : 'call.mic.off'), why ? { org: '' } : undefined);
    renderPeople();
  }

  function setCamera(on) {
    if (!cam) {
      if (on) startDevice('camera');
      return;
    }
    cam.enabled = on;
    camButton.setAttribute('aria-pressed', String(on));
    stage.setVideoMuted(me.user, 'camera', !on);
    session?.setMuted('camera', !on);
    announce(on ? 'call.camera.on' : 'call.camera.off');
  }

  // startDevice asks for a device the call started without (not ready, the
  // user skipped it, or the browser refused it then): a user can always
  // turn their camera or microphone on once the browser allows it.
  async function startDevice(source) {
    const audio = source === 'microphone';
    let track;
    try {
      const s = await navigator.mediaDevices.getUserMedia(audio ? { audio: true } : { video: true });
      track = audio ? s.getAudioTracks()[0] : s.getVideoTracks()[0];
    } catch {
      if (!stopped) say(alert, 'call.device.failed');
      return;
    }
    if (stopped || (audio ? mic : cam)) {
      track.stop();
      return;
    }
    alert.textContent = '';
    stream.addTrack(track);
    if (audio) {
      mic = track;
      setMic(true);
    } else {
      cam = track;
      stage.show(me.user, 'camera', cam, '');
      setCamera(true);
    }
    await session?.addDevice(source, track, stream);
  }

  async function startShare() {
    let s;
    try {
      s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (err) {
      if (err.name !== 'NotAllowedError' && err.name !== 'AbortError') say(alert, 'call.share.failed');
      return;
    }
    if (stopped) {
      s.getTracks().forEach((x) => x.stop());
      return;
    }
    screen = s.getVideoTracks()[0];
    screen.addEventListener('ended', stopShare);
    shareButton.setAttribute('aria-pressed', 'true');
    say2(shareButton, 'call.share.stop');
    stage.show(me.user, 'screen', screen, '');
    announce('call.share.on');
    await session?.share(screen);
  }

  async function stopShare() {
    if (!screen) return;
    screen.stop();
    screen = null;
    shareButton.setAttribute('aria-pressed', 'false');
    say2(shareButton, 'call.share');
    stage.remove(me.user, 'screen');
    announce('call.share.off');
    await session?.share(null);
  }

  function raiseHand(on) {
    handButton.setAttribute('aria-pressed', String(on));
    sendSignal({ kind: 'hand', on });
  }

  // Signals go through the API so that they cross organisations; the
  // echo over the WebSocket applies them here too.
  async function sendSignal(sig) {
    try {
      const out = await api.signal(sig);
      onSignal(out);
    } catch (err) {
      if (!stopped) say(alert, 'call.signal.failed', { message: err.message });
    }
  }

  // --- what others do ---
  const stateOf = (user) => {
    const p = stage.people.get(user);
    return { inCall: !!p?.present, micMuted: !!p?.micMuted, hand: !!p?.hand, withheld: !!p?.present && !!p?.withheld };
  };
  const nameOf = (user) => stage.people.get(user)?.name ?? roster?.participants?.find((p) => p.user === user)?.display_name ?? user.split('@')[0];

  function showChat(sig) {
    const mine = sig.user === me.user;
    if (!chat.add(sig, mine ? me.display_name : nameOf(sig.user), mine)) return;
    if (sig.user !== me.user) announce('call.chat.new', { name: sig.as || nameOf(sig.user), text: sig.text });
  }

  function onSignal(sig) {
    switch (sig.kind) {
      case 'chat':
        showChat(sig);
        break;
      case 'chat.edit':
      case 'chat.redact':
        chat.change(sig);
        break;
      case 'hand':
        stage.setPerson(sig.user, { hand: !!sig.on });
        if (sig.user !== me.user && sig.on) announce('call.hand.raised', { name: nameOf(sig.user) });
        break;
      case 'mute':
        stage.setPerson(sig.user, { micMuted: !!sig.on });
        break;
      case 'reaction':
        showReaction(sig);
        break;
      case 'mute.request':
        if (sig.ref === me.user && micOn()) {
          setMic(false, 'call.mic.muted.by');
          say(alert, 'call.mic.muted.by');
        }
        break;
    }
    renderPeople();
  }

  function showReaction(sig) {
    const tile = stage.tiles.get(`${sig.user}|camera`);
    if (tile) {
      const bubble = h('span', { class: 'reaction-bubble' + (reducedMotion() ? '' : ' animated'), 'aria-hidden': 'true', text: sig.text });
      tile.li.append(bubble);
      later(() => bubble.remove(), 4000);
    }
    announce('call.react.by', { name: sig.user === me.user ? t('call.you', { name: me.display_name }) : nameOf(sig.user), reaction: sig.text });
  }

  function present(p) {
    stage.setPerson(p.user, { name: p.display_name, org: orgLabel(p), present: true, withheld: !!p.media_withheld });
    if (p.user !== me.user) stage.tile(p.user, 'camera');
  }

  function trackAdded(info) {
    if (info.owner === me.user) return;
    infos.set(info.id, info);
    // The stage tells the real size once the video shows.
    session.subscribe(info.id, info.kind === 'video' ? 640 : 0, info.kind === 'video' ? 360 : 0);
    if (info.kind === 'audio') stage.setPerson(info.owner, { micMuted: info.muted });
  }

  function trackMuted({ track, muted }) {
    const info = infos.get(track);
    if (!info) return;
    info.muted = muted;
    if (info.kind === 'audio') stage.setPerson(info.owner, { micMuted: muted });
    else stage.setVideoMuted(info.owner, info.source, muted);
    renderPeople();
  }

  const handlers = {
    joined(msg) {
      attempt = 0;
      say(status, 'call.connected');
      alert.textContent = '';
      present(msg.you);
      msg.participants.forEach(present);
      msg.tracks.forEach(trackAdded);
      renderPeople();
      session.publish(stream, me.user).then(() => {
        session.setMuted('microphone', !micOn());
        session.setMuted('camera', !camOn());
        if (screen) session.share(screen);
        // Without a microphone too: the others see that they cannot
        // hear us, rather than wonder.
        if (!micOn()) sendSignal({ kind: 'mute', on: true });
      }).catch((err) => say(alert, 'call.publish.failed', { message: err.message }));
    },
    track_added: trackAdded,
    track_removed({ track }) {
      infos.delete(track);
      stage.removeTrack(track);
    },
    track_muted: trackMuted,
    remoteTrack(named, track) {
      const info = infos.get(named.track);
      if (!info) return false;
      if (info.kind === 'audio') stage.play(info.id, track, info.owner);
      else {
        stage.show(info.owner, info.source, track, info.id);
        stage.setVideoMuted(info.owner, info.source, info.muted);
        if (info.source === 'screen') announce('call.share.by', { name: nameOf(info.owner) });
      }
      return true;
    },
    participant_joined(p) {
      present(p);
      announce('call.joined', { name: p.display_name, org: orgLabel(p) });
      refreshRoster();
    },
    // The host now shares this participant's media with our organisation,
    // or no longer does, as its organisation decided (§5.3).
    participant_updated(p) {
      const was = !!stage.people.get(p.user)?.withheld;
      present(p);
      if (was !== !!p.media_withheld) {
        announce(p.media_withheld ? 'call.withheld.on' : 'call.withheld.off', { name: p.display_name, org: p.organisation });
      }
      renderPeople();
    },
    participant_left({ user }) {
      const name = nameOf(user);
      stage.removeUser(user);
      stage.setPerson(user, { present: false });
      for (const [id, info] of infos) if (info.owner === user) { infos.delete(id); stage.silence(id); }
      announce('call.left', { name });
      refreshRoster();
    },
    speaker({ user }) {
      stage.setSpeaker(user);
    },
    signal: onSignal,
    removed({ reason }) {
      // "replaced": this user joined again from another page, which took
      // this session over; this page must not take it back.
      finish(reason === 'ended' || reason === 'replaced' ? reason : 'removed');
    },
    failed: reconnect,
  };

  // --- the session and its recovery ---
  function connect() {
    if (stopped) return;
    waiting.hidden = true;
    session = new MediaSession(conference.id, handlers);
    session.connect();
  }

  // reconnect runs when the WebSocket or a peer connection failed. The
  // roster says whether to try again: we may have been removed, or the
  // conference ended, while we could not hear it.
  async function reconnect() {
    if (stopped) return;
    session = null;
    stage.clear();
    infos.clear();
    stage.setPerson(me.user, { present: true });
    if (cam) stage.show(me.user, 'camera', cam, '');
    stage.setVideoMuted(me.user, 'camera', !camOn());
    if (screen) stage.show(me.user, 'screen', screen, '');
    const delay = Math.min(MAX_BACKOFF, 1000 * 2 ** attempt);
    attempt++;
    say(status, 'call.reconnecting', { seconds: Math.round(delay / 1000) });
    later(async () => {
      const where = await admission();
      if (where === 'in') connect();
      else if (where === 'unknown') reconnect();
    }, delay);
  }

  // admission reads the host's roster: 'in' (a participant), 'waiting'
  // (in the lobby; polls until admitted), 'out' (ended or removed; the
  // screen says so), or 'unknown' (the roster cannot be read now).
  async function admission() {
    try {
      roster = await api.roster();
    } catch (err) {
      if (err.status === 410) {
        finish('ended');
        return 'out';
      }
      return 'unknown';
    }
    if (stopped) return 'out';
    renderPeople();
    if (roster.ended) {
      finish('ended');
      return 'out';
    }
    if (roster.participants.some((p) => p.user === me.user)) {
      wasParticipant = true;
      return 'in';
    }
    const inLobby = roster.lobby?.some((p) => p.user === me.user);
    wasWaiting ||= inLobby;
    // A join sent to a host that has not answered yet shows in no list.
    if (inLobby || (queued && !wasWaiting && !wasParticipant)) {
      waiting.hidden = false;
      say(status, 'call.waiting');
      later(async () => {
        if (await admission() === 'in') {
          announce('call.admitted');
          connect();
        }
      }, LOBBY_POLL);
      return 'waiting';
    }
    finish(wasParticipant ? 'removed' : wasWaiting ? 'denied' : 'notin');
    return 'out';
  }

  // finish ends the call for a reason the user is told: ended, removed,
  // denied or left.
  function finish(reason) {
    if (ended) return;
    ended = true;
    stopped = true;
    session?.close(false);
    session = null;
    for (const id of timers) clearTimeout(id);
    timers.clear();
    stage.clear();
    stream.getTracks().forEach((x) => x.stop());
    screen?.stop();
    callArea.hidden = true;
    controls.hidden = true;
    modBar.hidden = true;
    waiting.hidden = true;
    // No connection any more: its quality would be stale.
    quality.hidden = true;
    after.hidden = false;
    rejoin.hidden = reason !== 'left' && reason !== 'replaced';
    say(status, END[reason]);
    if (reason !== 'left') say(alert, END[reason]);
  }

  async function leave() {
    session?.close(true);
    session = null;
    finish('left');
    try {
      await api.leave();
    } catch {
      // Leaving the media is what counts; the log catches up later.
    }
  }

  // --- roster, moderation and quality, polled ---
  async function refreshRoster() {
    try {
      roster = await api.roster();
    } catch {
      return;
    }
    if (roster.participants.some((p) => p.user === me.user)) wasParticipant = true;
    renderPeople();
    if (moderator) {
      locked = !!roster.locked;
      lobbyOn = !!roster.lobby_on;
      showModeration();
    }
  }

  function renderPeople() {
    people.render(roster, stateOf);
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
      say(people.result, doneKey, vars);
      announce(doneKey, vars);
    } catch (err) {
      say(alert, 'call.mod.failed', { message: err.message });
    }
    refreshRoster();
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

  async function measure() {
    if (session && !session.closed) {
      try {
        const s = await session.stats();
        if (lastStats) {
          const received = s.received - lastStats.received;
          const lost = s.lost - lastStats.lost;
          const loss = received + lost > 0 ? lost / (received + lost) : 0;
          const level = loss > 0.08 || s.rtt > 0.5 ? 'poor' : loss > 0.02 || s.rtt > 0.25 ? 'fair' : 'good';
          quality.dataset.level = level;
          say(quality, QUALITY[level], { loss: { number: loss * 100, digits: 1 }, rtt: { number: Math.round(s.rtt * 1000) } });
        }
        lastStats = s;
      } catch {
        // A closing connection has no statistics; the next round will.
      }
    }
    if (!stopped) later(measure, STATS_EVERY);
  }

  function pollRoster() {
    if (stopped) return;
    refreshRoster().finally(() => later(pollRoster, moderator ? LOBBY_POLL : ROSTER_POLL));
  }

  // Arrow keys move along the toolbar (WAI-ARIA toolbar pattern); Tab
  // leaves it.
  function toolbarKeys(e) {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const buttons = [...controls.querySelectorAll('button:not([disabled])')];
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    e.preventDefault();
    buttons[(i + (e.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length].focus();
  }

  (async () => {
    moderator = await findModerator();
    if (stopped) return;
    if (moderator) {
      modButton.hidden = false;
    }
    const where = await admission();
    if (where === 'in') connect(); else if (where === 'unknown') {
      reconnect();
    }
    pollRoster();
    measure();
  })();

  return {
    stop() {
      if (!ended) session?.close(true);
      stopped = true;
      session = null;
      for (const id of timers) clearTimeout(id);
      stage.clear();
      window.removeEventListener('entente:language', stage.relabel);
      stream.getTracks().forEach((x) => x.stop());
      screen?.stop();
      main.classList.remove('wide');
    },
  };
}
