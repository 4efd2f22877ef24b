// The media session's events in a call: who is present, the tracks the
// SFU announces, mutes and removes, the remote tracks that arrive, and the
// session's end (spec/client-api.md §5).
import { say, announce } from './dom.js';
import { orgLabel } from './api.js';
import { callMembership } from './widget.js';

// mediaEvents gives call c the handlers of its MediaSession.
export function mediaEvents(c) {
  const { me, stage, infos } = c;

  function present(p) {
    stage.setPerson(p.user, { name: p.display_name, org: orgLabel(p), present: true, withheld: !!p.media_withheld });
    if (p.user !== me.user) stage.tile(p.user, 'camera');
  }

  function trackAdded(info) {
    if (info.owner === me.user) return;
    infos.set(info.id, info);
    // The stage tells the real size once the video shows.
    c.session.subscribe(info.id, info.kind === 'video' ? 640 : 0, info.kind === 'video' ? 360 : 0);
    if (info.kind === 'audio') stage.setPerson(info.owner, { micMuted: info.muted });
  }

  function trackMuted({ track, muted }) {
    const info = infos.get(track);
    if (!info) return;
    info.muted = muted;
    if (info.kind === 'audio') stage.setPerson(info.owner, { micMuted: muted });
    else stage.setVideoMuted(info.owner, info.source, muted);
    c.renderPeople();
  }

  const handlers = {
    joined(msg) {
      c.attempt = 0;
      say(c.status, 'call.connected');
      c.alert.textContent = '';
      present(msg.you);
      callMembership?.join(); // seen in the Matrix room's call (widget.js)
      msg.participants.forEach(present);
      msg.tracks.forEach(trackAdded);
      c.renderPeople();
      c.session.publish(c.stream, me.user).then(() => {
        c.session.setMuted('microphone', !c.micOn());
        c.session.setMuted('camera', !c.camOn());
        if (c.screen) c.session.share(c.screen);
        // Without a microphone too: the others see that they cannot
        // hear us, rather than wonder.
        if (!c.micOn()) c.sendSignal({ kind: 'mute', on: true });
      }).catch((err) => say(c.alert, 'call.publish.failed', { message: err.message }));
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
        if (info.source === 'screen') announce('call.share.by', { name: c.nameOf(info.owner) });
      }
      return true;
    },
    participant_joined(p) {
      present(p);
      announce('call.joined', { name: p.display_name, org: orgLabel(p) });
      c.refreshRoster();
    },
    // The host now shares this participant's media with our organisation,
    // or no longer does, as its organisation decided (§5.3).
    participant_updated(p) {
      const was = !!stage.people.get(p.user)?.withheld;
      present(p);
      if (was !== !!p.media_withheld) {
        announce(p.media_withheld ? 'call.withheld.on' : 'call.withheld.off', { name: p.display_name, org: p.organisation });
      }
      c.renderPeople();
    },
    participant_left({ user }) {
      const name = c.nameOf(user);
      stage.removeUser(user);
      stage.setPerson(user, { present: false });
      for (const [id, info] of infos) if (info.owner === user) { infos.delete(id); stage.silence(id); }
      announce('call.left', { name });
      c.refreshRoster();
    },
    speaker({ user }) {
      stage.setSpeaker(user);
    },
    signal: (sig) => c.onSignal(sig),
    removed({ reason }) {
      // "replaced": this user joined again from another page, which took
      // this session over; this page must not take it back.
      c.finish(reason === 'ended' || reason === 'replaced' ? reason : 'removed');
    },
    failed: (why) => c.reconnect(why),
  };

  return { handlers };
}
