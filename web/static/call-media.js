// One media session of spec/client-api.md §5: the signalling WebSocket and
// its two RTCPeerConnections, publish (we offer) and subscribe (the SFU
// offers), so that offers never collide. A session lives until it fails or
// is closed; the call screen makes a new one to reconnect.
import { mediaURL } from './call-api.js';

// Simulcast layers of spec §5.4: a quarter, half and full size.
const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];

// A peer connection "disconnected" this long is treated as failed: a short
// network blip recovers by itself, a longer one needs a new session.
const DISCONNECTED_GRACE = 5000;

// msidsByMid reads "a=msid:<owner> <track>" per m-section: the SFU names each
// track by its track info's id (spec §5.3).
function msidsByMid(sdp) {
  const out = new Map();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const mid = /\r?\na=mid:(\S+)/.exec(section)?.[1];
    const msid = /\r?\na=msid:(\S+) (\S+)/.exec(section);
    if (mid && msid) out.set(mid, { owner: msid[1], track: msid[2] });
  }
  return out;
}

// CandidateGate holds local candidates until the description they belong
// to has been sent (spec §5.2).
class CandidateGate {
  constructor(send) {
    this.send = send;
    this.open = false;
    this.pending = [];
  }
  add(c) {
    if (this.open) this.send(c);
    else this.pending.push(c);
  }
  release() {
    this.open = true;
    this.pending.forEach(this.send);
    this.pending = [];
  }
}

export class MediaSession {
  // handlers: joined, track_added, track_removed, track_muted,
  // participant_joined, participant_updated, participant_left, speaker,
  // signal, removed, error
  // (each with the server's message), remoteTrack(info, track), and
  // failed(why) once the session cannot go on.
  constructor(conference, handlers) {
    this.conference = conference;
    this.handlers = handlers;
    this.closed = false;
    this.chain = Promise.resolve();
    this.pub = null;
    this.sub = null;
    this.senders = new Map(); // source → RTCRtpTransceiver
    this.mine = new Map(); // source → track id the SFU gave it
    this.muted = new Map(); // source → muted, as we want it announced
    this.subMids = new Map(); // mid → { owner, track } from the last offer
    this.bound = new Map(); // mid → track id handed to remoteTrack
    this.pubAnswered = null;
    this.pubChain = null;
    this.timers = new Set();
  }

  connect() {
    this.ws = new WebSocket(mediaURL(this.conference));
    this.ws.onopen = () => this.send({ type: 'join' });
    this.ws.onmessage = (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      // Messages are handled one after the other: a candidate must meet
      // the description it belongs to already applied.
      this.chain = this.chain.then(() => this.handle(msg)).catch((err) => this.fail('signalling: ' + err.message));
    };
    // After the messages before it: a `removed` just received must end
    // the call, not be dropped for a reconnection. 1012 (service restart)
    // is a replica of the node draining: reconnect at once.
    const why = { 1008: 'policy', 1012: 'restart' };
    this.ws.onclose = (e) => {
      this.chain = this.chain.then(() => this.fail(why[e.code] || 'closed'));
    };
  }

  send(msg) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  fail(why) {
    if (this.closed) return;
    this.close(false);
    this.handlers.failed?.(why);
  }

  close(leave = true) {
    if (this.closed) return;
    this.closed = true;
    if (leave) this.send({ type: 'leave' });
    for (const t of this.timers) clearTimeout(t);
    this.ws.onclose = null;
    this.ws.close();
    this.pub?.close();
    this.sub?.close();
  }

  watch(pc) {
    let timer = 0;
    pc.onconnectionstatechange = () => {
      clearTimeout(timer);
      this.timers.delete(timer);
      if (pc.connectionState === 'failed') this.fail('ice');
      if (pc.connectionState === 'disconnected') {
        timer = setTimeout(() => this.fail('ice'), DISCONNECTED_GRACE);
        this.timers.add(timer);
      }
    };
  }

  async handle(msg) {
    if (this.closed) return;
    switch (msg.type) {
      case 'joined':
        this.iceServers = msg.ice_servers ?? [];
        this.openSubscribe();
        break;
      case 'publish_answer':
        await this.pub.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        this.pubGate.release();
        this.pubAnswered?.();
        break;
      case 'subscribe_offer':
        await this.answerSubscribe(msg.sdp);
        break;
      case 'candidate': {
        const pc = msg.pc === 'publish' ? this.pub : this.sub;
        await pc?.addIceCandidate(msg.candidate).catch(() => {});
        break;
      }
      case 'track_added':
        if (msg.owner === this.me) {
          if (msg.source === 'screen' && !this.senders.has('screen')) {
            // The share stopped before the SFU named it.
            this.send({ type: 'unpublish', track: msg.id });
            break;
          }
          this.mine.set(msg.source, msg.id);
          if (this.muted.get(msg.source) !== msg.muted && this.muted.has(msg.source)) this.setMuted(msg.source, this.muted.get(msg.source));
        }
        break;
      case 'error':
        // A refused publish offer leaves nothing to wait for.
        if (msg.code === 'bad_sdp' || msg.code === 'bad_request') this.pubAnswered?.();
        break;
    }
    this.handlers[msg.type]?.(msg);
  }

  openSubscribe() {
    this.sub = new RTCPeerConnection({ iceServers: this.iceServers });
    this.watch(this.sub);
    this.subGate = new CandidateGate((c) => this.send({ type: 'candidate', pc: 'subscribe', candidate: c }));
    this.sub.onicecandidate = (e) => e.candidate && this.subGate.add(e.candidate.toJSON());
    this.sub.ontrack = (e) => this.deliver(e.transceiver);
  }

  // deliver hands the track an m-section now carries to the call screen,
  // once per track id. The SFU reuses the m-section of a track that went
  // for the next one; when both happen within one offer (a publisher who
  // left and came back), its direction does not change and the browser
  // fires no track event: without this the rejoined publisher would stay
  // dark. So every offer is checked, not only the track events.
  deliver(transceiver) {
    const named = this.subMids.get(transceiver.mid);
    const track = transceiver.receiver?.track;
    if (!named || !track || this.bound.get(transceiver.mid) === named.track) return;
    // The call screen answers false for a track it does not know (yet).
    if (this.handlers.remoteTrack?.(named, track) !== false) this.bound.set(transceiver.mid, named.track);
  }

  async answerSubscribe(sdp) {
    const named = msidsByMid(sdp);
    for (const [mid, n] of named) this.subMids.set(mid, n);
    // An m-section without a track (its track went) forgets the last one,
    // so that the same track id coming back is handed over again.
    for (const mid of this.subMids.keys()) {
      if (!named.has(mid)) {
        this.subMids.delete(mid);
        this.bound.delete(mid);
      }
    }
    await this.sub.setRemoteDescription({ type: 'offer', sdp });
    for (const t of this.sub.getTransceivers()) this.deliver(t);
    const answer = await this.sub.createAnswer();
    await this.sub.setLocalDescription(answer);
    this.send({ type: 'subscribe_answer', sdp: this.sub.localDescription.sdp });
    this.subGate.release();
  }

  // publish sends the camera and microphone of stream; either may be
  // missing. me is our user ref, to recognise our own tracks.
  async publish(stream, me) {
    this.me = me;
    this.pub = new RTCPeerConnection({ iceServers: this.iceServers ?? [] });
    this.watch(this.pub);
    this.pubGate = new CandidateGate((c) => this.send({ type: 'candidate', pc: 'publish', candidate: c }));
    this.pub.onicecandidate = (e) => e.candidate && this.pubGate.add(e.candidate.toJSON());
    const mic = stream?.getAudioTracks()[0];
    const cam = stream?.getVideoTracks()[0];
    if (mic) this.senders.set('microphone', this.pub.addTransceiver(mic, { direction: 'sendonly', streams: [stream] }));
    if (cam) {
      this.senders.set('camera', this.pub.addTransceiver(cam, { direction: 'sendonly', streams: [stream], sendEncodings: SIMULCAST.map((e) => ({ ...e })) }));
    }
    if (mic || cam) await this.offer();
  }

  // addDevice sends a camera or microphone turned on after publish. Before
  // publish there is nothing to do: publish sends what stream holds then.
  async addDevice(source, track, stream) {
    if (!this.pub || this.closed) return;
    const t = this.senders.get(source);
    if (t) {
      await t.sender.replaceTrack(track);
      return;
    }
    const init = { direction: 'sendonly', streams: [stream] };
    if (source === 'camera') init.sendEncodings = SIMULCAST.map((e) => ({ ...e }));
    this.senders.set(source, this.pub.addTransceiver(track, init));
    await this.offer();
  }

  // share starts (track) or stops (null) the screen share. Stopping
  // withdraws the track (spec §5.2 `unpublish`): the others see it go at
  // once, and its m-section is retired, so a new share gets a new one.
  async share(track) {
    const t = this.senders.get('screen');
    if (track && t) {
      await t.sender.replaceTrack(track);
      return;
    }
    if (track) {
      this.senders.set('screen', this.pub.addTransceiver(track, { direction: 'sendonly', streams: [new MediaStream([track])] }));
      await this.offer();
      return;
    }
    if (!t) return;
    const id = this.mine.get('screen');
    if (id) this.send({ type: 'unpublish', track: id });
    this.senders.delete('screen');
    this.mine.delete('screen');
    this.muted.delete('screen');
    t.stop();
    await this.offer();
  }

  // offer renegotiates the publish connection; offers are chained so that
  // the next waits for the answer to the last.
  offer() {
    this.pubChain = (this.pubChain ?? Promise.resolve()).then(() => this.offerOnce());
    return this.pubChain;
  }

  async offerOnce() {
    const answered = new Promise((resolve) => { this.pubAnswered = resolve; });
    const offer = await this.pub.createOffer();
    await this.pub.setLocalDescription(offer);
    const tracks = [];
    for (const [source, t] of this.senders) {
      const kind = source === 'microphone' ? 'audio' : 'video';
      const entry = { mid: t.mid, kind, source, simulcast: source === 'camera' };
      const s = t.sender.track?.getSettings() ?? {};
      if (kind === 'video' && s.width && s.height) Object.assign(entry, { width: s.width, height: s.height });
      tracks.push(entry);
    }
    this.send({ type: 'publish_offer', sdp: this.pub.localDescription.sdp, tracks });
    await answered;
  }

  // setMuted announces that one of our tracks is muted (spec §5.2 `mute`).
  // The state is kept so that a track the SFU names later is announced too.
  setMuted(source, muted) {
    this.muted.set(source, muted);
    const id = this.mine.get(source);
    if (id) this.send({ type: 'mute', track: id, muted });
  }

  subscribe(track, maxWidth = 0, maxHeight = 0) {
    this.send({ type: 'subscribe', track, max_width: Math.round(maxWidth), max_height: Math.round(maxHeight) });
  }

  // stats sums what both connections say about the network: packets lost
  // and received by us, and the round-trip time of the active path.
  async stats() {
    const out = { lost: 0, received: 0, rtt: 0 };
    for (const pc of [this.pub, this.sub]) {
      if (!pc) continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === 'inbound-rtp') {
          out.lost += Math.max(0, s.packetsLost ?? 0);
          out.received += s.packetsReceived ?? 0;
        }
        if (s.type === 'remote-inbound-rtp') out.lost += Math.max(0, s.packetsLost ?? 0);
        if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime) out.rtt = Math.max(out.rtt, s.currentRoundTripTime);
      });
    }
    return out;
  }
}
