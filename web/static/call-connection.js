// A call's media session and its recovery: connecting, reconnecting with
// backoff after a failure, the admission the host's roster gives (in, in
// the lobby, out), and the end of the call, told to the user.
import { say, announce } from './dom.js';
import { MediaSession } from './call-media.js';
import { callMembership } from './widget.js';

export const LOBBY_POLL = 2000;
const FIRST_BACKOFF = 250;
const MAX_BACKOFF = 15000;
const END = {
  ended: 'call.end.ended', removed: 'call.end.removed', denied: 'call.end.denied',
  notin: 'call.end.notin', left: 'call.end.left', replaced: 'call.end.replaced',
};

// connection gives call c its session's life cycle.
export function connection(c) {
  const { conference, me, stage } = c;

  function connect() {
    if (c.stopped) return;
    c.waiting.hidden = true;
    c.session = new MediaSession(conference.id, c.handlers);
    c.session.connect();
  }

  // reconnect runs when the WebSocket or a peer connection failed. The
  // roster says whether to try again: we may have been removed, or the
  // conference ended, while we could not hear it. A replica of the node
  // going away says 'restart' (WebSocket 1012): the conference is already
  // waiting on another replica, so the client comes back at once. Other
  // failures back off from a quarter of a second, with jitter so that a
  // whole conference whose replica died does not come back in one burst,
  // and the first tries fit in the few seconds a failover takes.
  async function reconnect(why) {
    if (c.stopped) return;
    c.session = null;
    stage.clear();
    c.infos.clear();
    stage.setPerson(me.user, { present: true });
    if (c.cam) stage.show(me.user, 'camera', c.cam, '');
    stage.setVideoMuted(me.user, 'camera', !c.camOn());
    if (c.screen) stage.show(me.user, 'screen', c.screen, '');
    const delay = why === 'restart' ? 0
      : Math.min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** c.attempt) * (0.8 + 0.4 * Math.random());
    c.attempt++;
    say(c.status, 'call.reconnecting', { seconds: Math.ceil(delay / 1000) });
    c.later(async () => {
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
      c.roster = await c.api.roster();
    } catch (err) {
      if (err.status === 410) {
        finish('ended');
        return 'out';
      }
      return 'unknown';
    }
    if (c.stopped) return 'out';
    c.renderPeople();
    if (c.roster.ended) {
      finish('ended');
      return 'out';
    }
    if (c.roster.participants.some((p) => p.user === me.user)) {
      c.wasParticipant = true;
      return 'in';
    }
    const inLobby = c.roster.lobby?.some((p) => p.user === me.user);
    c.wasWaiting ||= inLobby;
    // A join sent to a host that has not answered yet shows in no list.
    if (inLobby || (c.queued && !c.wasWaiting && !c.wasParticipant)) {
      c.waiting.hidden = false;
      say(c.status, 'call.waiting');
      c.later(async () => {
        if (await admission() === 'in') {
          announce('call.admitted');
          connect();
        }
      }, LOBBY_POLL);
      return 'waiting';
    }
    finish(c.wasParticipant ? 'removed' : c.wasWaiting ? 'denied' : 'notin');
    return 'out';
  }

  // finish ends the call for a reason the user is told: ended, removed,
  // denied or left.
  function finish(reason) {
    if (c.ended) return;
    c.ended = true;
    c.stopped = true;
    callMembership?.leave();
    c.session?.close(false);
    c.session = null;
    for (const id of c.timers) clearTimeout(id);
    c.timers.clear();
    stage.clear();
    c.stream.getTracks().forEach((x) => x.stop());
    c.screen?.stop();
    c.callArea.hidden = true;
    c.controls.hidden = true;
    c.modBar.hidden = true;
    c.guestPanel.hidden = true;
    c.waiting.hidden = true;
    // No connection any more: its quality would be stale.
    c.quality.hidden = true;
    c.after.hidden = false;
    c.rejoin.hidden = reason !== 'left' && reason !== 'replaced';
    say(c.status, END[reason]);
    if (reason !== 'left') say(c.alert, END[reason]);
  }

  async function leave() {
    c.session?.close(true);
    c.session = null;
    finish('left');
    try {
      await c.api.leave();
    } catch {
      // Leaving the media is what counts; the log catches up later.
    }
  }

  return { connect, reconnect, admission, finish, leave };
}
