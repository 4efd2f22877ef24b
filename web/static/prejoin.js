// The pre-join screen: check camera and microphone, choose a display name,
// then join (POST /conferences/{id}/join) and hand over to the call screen.
import { api, getToken } from './api.js';
import { h, say, field, announce } from './dom.js';

const reducedMotion = () => window.matchMedia('(prefers-reduced-motion: reduce)').matches;

export function showPrejoin(main, { me, id }) {
  let conference = null;
  let stream = null;
  let audio = null; // the AudioContext feeding the level meter
  let meterTimer = 0;
  let call = null; // once joined, the call screen owns the stream
  let stopped = false;
  let joining = false; // Join was clicked: a late camera is not this screen's any more
  // devices: 'starting' while the browser has not answered (its permission
  // prompt may be open), then 'ready', 'failed' or 'skipped' (the user
  // chose to go on without them). Join waits for all but 'starting'.
  let devices = 'starting';

  const heading = h('h1', { id: 'prejoin-title', i18n: 'prejoin.title' });
  const confLine = h('p', { id: 'prejoin-conference', class: 'meta' });
  const message = h('p', { id: 'prejoin-message', class: 'error', role: 'status', 'aria-live': 'polite' });
  const video = h('video', { id: 'preview', class: 'preview', autoplay: true, muted: true, playsinline: true, i18nLabel: 'prejoin.preview' });
  video.muted = true; // the attribute alone does not mute a stream set later
  const name = h('input', { id: 'display-name', type: 'text', autocomplete: 'name', maxlength: 100, value: me.display_name });
  const camera = h('select', { id: 'camera' });
  const microphone = h('select', { id: 'microphone' });
  const meter = h('meter', { id: 'mic-level', min: 0, max: 1, low: 0.6, high: 0.9, optimum: 0.3, value: 0 });
  const micToggle = toggle('toggle-mic', 'prejoin.mic');
  const camToggle = toggle('toggle-camera', 'prejoin.camera');
  const join = h('button', { type: 'submit', class: 'primary', id: 'join', i18n: 'prejoin.join', disabled: true });
  const starting = h('p', { id: 'prejoin-devices', class: 'starting', role: 'status', i18n: 'prejoin.starting' });
  const skip = h('button', { type: 'button', id: 'skip-devices', i18n: 'prejoin.skip', onclick: () => {
    devices = 'skipped';
    starting.hidden = true;
    skip.hidden = true;
    usable(false);
    updateJoin();
    join.focus();
  } });
  const form = h('form', { id: 'prejoin-form', novalidate: true },
    field(name, 'prejoin.name', 'prejoin.name.hint'),
    field(camera, 'prejoin.camera.select'),
    field(microphone, 'prejoin.mic.select'),
    h('div', { class: 'field' }, h('label', { for: 'mic-level', i18n: 'prejoin.level' }), meter),
    // Join beside the device switches: in view without scrolling.
    h('div', { class: 'actions' }, micToggle, camToggle, join, h('a', { href: '/', 'data-route': true, i18n: 'prejoin.back' })));

  // Join is clickable once the conference is known and the devices have
  // answered (or the user chose to go without them): joining while the
  // permission prompt is open would leave the user without camera and
  // microphone for the whole call.
  function updateJoin() {
    join.disabled = !conference || conference.ended || joining || devices === 'starting';
    const waiting = devices === 'starting';
    starting.hidden = !waiting;
    skip.hidden = !waiting;
  }

  function toggle(elId, key) {
    const b = h('button', { type: 'button', id: elId, 'aria-pressed': 'true', i18n: key });
    b.addEventListener('click', () => {
      const on = b.getAttribute('aria-pressed') !== 'true';
      b.setAttribute('aria-pressed', String(on));
      applyToggles();
      announce(on ? `${key}.on` : `${key}.off`);
    });
    return b;
  }

  function applyToggles() {
    const micOn = micToggle.getAttribute('aria-pressed') === 'true';
    const camOn = camToggle.getAttribute('aria-pressed') === 'true';
    stream?.getAudioTracks().forEach((t) => { t.enabled = micOn; });
    stream?.getVideoTracks().forEach((t) => { t.enabled = camOn; });
  }

  // usable shows whether there is a camera and microphone to switch: a
  // toggle shown "on" for a device the browser refused would mislead.
  function usable(on) {
    for (const b of [micToggle, camToggle]) {
      if (b.disabled === !on) continue;
      b.disabled = !on;
      b.setAttribute('aria-pressed', String(on));
    }
  }

  function stopMedia() {
    clearInterval(meterTimer);
    audio?.close();
    audio = null;
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
  }

  async function openMedia() {
    if (!navigator.mediaDevices?.getUserMedia) {
      say(message, 'prejoin.insecure');
      devices = 'failed';
      updateJoin();
      return;
    }
    const constraints = {
      video: camera.value ? { deviceId: { exact: camera.value } } : true,
      audio: microphone.value ? { deviceId: { exact: microphone.value } } : true,
    };
    stopMedia();
    let s;
    try {
      s = await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      if (stopped || joining) return;
      const denied = err.name === 'NotAllowedError' || err.name === 'SecurityError';
      say(message, denied ? 'prejoin.denied' : err.name === 'NotFoundError' ? 'prejoin.nodevice' : 'prejoin.mediaerror');
      usable(false);
      if (devices === 'starting') devices = 'failed';
      updateJoin();
      return;
    }
    if (stopped || joining) {
      s.getTracks().forEach((t) => t.stop());
      return;
    }
    // Devices that arrive after the user skipped them are taken all the same.
    devices = 'ready';
    updateJoin();
    usable(true);
    stream = s;
    video.srcObject = stream;
    applyToggles();
    startMeter();
    await listDevices();
  }

  // Device names are only given once the user has allowed access, so the
  // lists are filled after getUserMedia.
  async function listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, track, labelKey) => {
      const current = track?.getSettings().deviceId ?? '';
      const options = devices.filter((d) => d.kind === kind).map((d, i) =>
        d.label ? h('option', { value: d.deviceId, text: d.label }) : h('option', { value: d.deviceId, i18n: labelKey, vars: { n: i + 1 } }));
      select.replaceChildren(...options);
      if (current) select.value = current;
    };
    fill(camera, 'videoinput', stream?.getVideoTracks()[0], 'prejoin.camera.n');
    fill(microphone, 'audioinput', stream?.getAudioTracks()[0], 'prejoin.mic.n');
  }

  function startMeter() {
    const track = stream?.getAudioTracks()[0];
    if (!track) return;
    audio = new AudioContext();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 512;
    audio.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    // A calmer meter when the user asked for less motion.
    meterTimer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const v of samples) sum += v * v;
      meter.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
    }, reducedMotion() ? 500 : 100);
  }

  async function loadConference() {
    try {
      ({ data: conference } = await api.conference(id));
    } catch (err) {
      if (stopped) return;
      say(message, err.status === 404 ? 'prejoin.notfound' : err.status === 410 ? 'prejoin.ended' : 'prejoin.loadfailed', { message: err.message });
      return;
    }
    if (stopped) return;
    say(heading, 'prejoin.title.conference', { title: conference.title });
    let org = conference.host === me.node.did ? me.node.name : conference.host;
    try {
      const { data: peers } = await api.peers();
      org = peers.find((p) => p.did === conference.host)?.name ?? org;
    } catch {
      // The DID still names the host.
    }
    if (stopped) return;
    say(confLine, 'prejoin.hostedby', { org });
    if (conference.ended) {
      say(message, 'prejoin.ended');
      return;
    }
    // Said before anyone tries; Join stays usable for when it is unlocked.
    if (conference.locked) say(message, 'prejoin.locked');
    updateJoin();
  }

  // isLocked reads the conference again: a refusal because it was locked
  // after this screen opened is told as such, not as the host's raw message.
  async function isLocked() {
    try {
      const { data } = await api.conference(id);
      return !!data.locked;
    } catch {
      return false;
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (join.disabled) return;
    joining = true;
    updateJoin();
    say(message, 'prejoin.joining');
    let status;
    try {
      ({ status } = await api.join(conference.id));
    } catch (err) {
      joining = false;
      updateJoin();
      if (err.status === 410) say(message, 'prejoin.ended');
      else if (err.status === 403 && await isLocked()) say(message, 'prejoin.locked');
      else if (err.status === 403) say(message, 'prejoin.forbidden', { message: err.message });
      else if (err.status === 0) say(message, 'error.unreachable');
      else say(message, 'prejoin.joinfailed', { message: err.message });
      return;
    }
    clearInterval(meterTimer);
    const { startCall } = await import('./call.js');
    const handed = stream;
    stream = null; // the call screen stops it now
    call = startCall({
      conference, token: getToken(), stream: handed, queued: status === 202,
      me: { ...me, display_name: name.value.trim() || me.display_name },
      devices: { camera: camera.value, microphone: microphone.value },
    });
  });

  camera.addEventListener('change', openMedia);
  microphone.addEventListener('change', openMedia);

  main.append(heading, confLine, message,
    h('div', { class: 'prejoin' },
      h('section', { 'aria-labelledby': 'preview-title' }, h('h2', { id: 'preview-title', i18n: 'prejoin.preview.title' }), video,
        h('div', { class: 'actions' }, starting, skip)),
      h('section', { 'aria-labelledby': 'settings-title' }, h('h2', { id: 'settings-title', i18n: 'prejoin.settings' }), form)));
  loadConference();
  openMedia();
  return {
    stop() {
      stopped = true;
      stopMedia();
      call?.stop?.();
    },
  };
}
