// The user's own media in a call: the microphone and camera turned on and
// off, a device turned on that the call started without, the screen share
// and the raised hand.
import { say, announce } from './dom.js';
import { say2 } from './call-controls.js';

// ownMedia gives call c its device actions.
export function ownMedia(c) {
  const { me } = c;
  function micOn() { return c.micButton.getAttribute('aria-pressed') === 'true'; }
  function camOn() { return c.camButton.getAttribute('aria-pressed') === 'true'; }

  function setMic(on, why) {
    if (!c.mic) {
      if (on) startDevice('microphone');
      return;
    }
    c.mic.enabled = on;
    c.micButton.setAttribute('aria-pressed', String(on));
    c.stage.setPerson(me.user, { micMuted: !on });
    c.session?.setMuted('microphone', !on);
    c.sendSignal({ kind: 'mute', on: !on });
    announce(why ?? (on ? 'call.mic.on' : 'call.mic.off'), why ? { org: '' } : undefined);
    c.renderPeople();
  }

  function setCamera(on) {
    if (!c.cam) {
      if (on) startDevice('camera');
      return;
    }
    c.cam.enabled = on;
    c.camButton.setAttribute('aria-pressed', String(on));
    c.stage.setVideoMuted(me.user, 'camera', !on);
    c.session?.setMuted('camera', !on);
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
      if (!c.stopped) say(c.alert, 'call.device.failed');
      return;
    }
    if (c.stopped || (audio ? c.mic : c.cam)) {
      track.stop();
      return;
    }
    c.alert.textContent = '';
    c.stream.addTrack(track);
    if (audio) {
      c.mic = track;
      setMic(true);
    } else {
      c.cam = track;
      c.stage.show(me.user, 'camera', c.cam, '');
      setCamera(true);
    }
    await c.session?.addDevice(source, track, c.stream);
  }

  async function startShare() {
    let s;
    try {
      s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (err) {
      if (err.name !== 'NotAllowedError' && err.name !== 'AbortError') say(c.alert, 'call.share.failed');
      return;
    }
    if (c.stopped) {
      s.getTracks().forEach((x) => x.stop());
      return;
    }
    c.screen = s.getVideoTracks()[0];
    c.screen.addEventListener('ended', stopShare);
    c.shareButton.setAttribute('aria-pressed', 'true');
    say2(c.shareButton, 'call.share.stop');
    c.stage.show(me.user, 'screen', c.screen, '');
    announce('call.share.on');
    await c.session?.share(c.screen);
  }

  async function stopShare() {
    if (!c.screen) return;
    c.screen.stop();
    c.screen = null;
    c.shareButton.setAttribute('aria-pressed', 'false');
    say2(c.shareButton, 'call.share');
    c.stage.remove(me.user, 'screen');
    announce('call.share.off');
    await c.session?.share(null);
  }

  function raiseHand(on) {
    c.handButton.setAttribute('aria-pressed', String(on));
    c.sendSignal({ kind: 'hand', on });
  }

  return { micOn, camOn, setMic, setCamera, startDevice, startShare, stopShare, raiseHand };
}
