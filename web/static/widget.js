// The client as a Matrix room widget (spec/client-api.md, "The client as a
// Matrix widget"). When a Matrix client such as Element shows this page in a
// room, this module speaks the widget API (postMessage) with it: it hands
// the client's OpenID token to the sign-in (matrix.js), and it writes the
// user's own MatrixRTC call membership, so that the room shows them in the
// call while they are in it. Outside a widget it does nothing.

// The membership state event and its lifetime: `expires` counts from
// `created_ts`; the membership is written again renewBefore its end, so it
// never lapses while the user stays, and lapses soon after a browser that
// vanished without a word.
const CALL_MEMBER = 'org.matrix.msc3401.call.member';
export const MEMBERSHIP_LIFETIME = 30 * 60 * 1000;
export const RENEW_BEFORE = 10 * 60 * 1000;
const API_VERSIONS = ['0.0.1', '0.0.2', 'org.matrix.msc2762', 'org.matrix.msc2871', 'org.matrix.msc2876', 'org.matrix.msc3819'];

// callMemberKey is the legacy MatrixRTC state key of one device's membership
// (the leading "_" lets a key name a user without being one).
export const callMemberKey = (userId, deviceId) => `_${userId}_${deviceId}_m.call`;

// membershipContent is what Element Call reads: the same shape the bridge
// writes for its ghosts, naming no focus (Entente's SFU is not one that
// Element Call can join).
export function membershipContent(deviceId, now, lifetime = MEMBERSHIP_LIFETIME) {
  return {
    application: 'm.call', call_id: '', scope: 'm.room', device_id: deviceId,
    expires: lifetime,
    focus_active: { type: 'livekit', focus_selection: 'oldest_membership' },
    foci_preferred: [],
    created_ts: now,
  };
}

// WidgetAPI is the widget's side of the postMessage protocol with the
// client hosting it (the "fromWidget" and "toWidget" directions).
class WidgetAPI {
  constructor(widgetId, capabilities) {
    this.widgetId = widgetId;
    this.capabilities = capabilities;
    this.pending = new Map(); // requestId → { resolve, reject }
    this.listeners = new Map(); // toWidget action → handler
    this.next = 0;
    // Resolves with the capabilities the client approved.
    this.allowed = new Set();
    this.approved = new Promise((resolve) => { this.approve = resolve; });
    window.addEventListener('message', (ev) => this.receive(ev));
  }

  receive(ev) {
    const m = ev.data;
    if (!m || ev.source !== window.parent || m.widgetId !== this.widgetId) return;
    if (m.api === 'fromWidget') {
      const p = this.pending.get(m.requestId);
      if (!p || !m.response) return;
      this.pending.delete(m.requestId);
      if (m.response.error) p.reject(new Error(m.response.error.message ?? 'widget API error'));
      else p.resolve(m.response);
      return;
    }
    if (m.api !== 'toWidget') return;
    let response = {};
    switch (m.action) {
      case 'capabilities':
        response = { capabilities: this.capabilities };
        break;
      case 'notify_capabilities':
        this.allowed = new Set(m.data?.approved ?? []);
        this.approve(this.allowed);
        break;
      case 'supported_api_versions':
        response = { supported_versions: API_VERSIONS };
        break;
      default:
        this.listeners.get(m.action)?.(m.data ?? {});
    }
    window.parent.postMessage({ ...m, response }, '*');
  }

  on(action, fn) { this.listeners.set(action, fn); }

  // post sends a fromWidget action at once and returns its request id.
  post(action, data) {
    const requestId = `entente-${Date.now()}-${this.next++}`;
    window.parent.postMessage({ api: 'fromWidget', widgetId: this.widgetId, requestId, action, data }, '*');
    return requestId;
  }

  // request sends a fromWidget action and resolves with the client's answer.
  request(action, data) {
    return new Promise((resolve, reject) => {
      this.pending.set(this.post(action, data), { resolve, reject });
    });
  }
}

// CallMembership keeps one device's membership in the room: join writes it
// and renews it before it expires, leave writes {} (MatrixRTC's "left").
// send(content) writes the state event; the clock and timings can be given.
export class CallMembership {
  constructor({ deviceId, send, lifetime = MEMBERSHIP_LIFETIME, renewBefore = RENEW_BEFORE, now = () => Date.now() }) {
    Object.assign(this, { deviceId, send, lifetime, renewBefore, now });
    this.joined = false;
    this.timer = null;
    this.queue = Promise.resolve(); // writes go out in order
  }

  write(content) {
    this.queue = this.queue.then(() => this.send(content)).catch((err) => console.warn('call membership not written:', err.message));
    return this.queue;
  }

  join() {
    if (this.joined) return this.queue;
    this.joined = true;
    return this.renew();
  }

  renew() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.renew(), Math.max(1000, this.lifetime - this.renewBefore));
    return this.write(membershipContent(this.deviceId, this.now(), this.lifetime));
  }

  leave() {
    if (!this.joined) return this.queue;
    this.stop();
    return this.write({});
  }

  // stop forgets the membership without writing anything.
  stop() {
    this.joined = false;
    clearTimeout(this.timer);
  }
}

// widgetParams are what the bridge's widget URL carries (the client fills
// in its template variables): the widget id, the user and their device.
function widgetParams() {
  const p = new URLSearchParams(location.search);
  const widgetId = p.get('widgetId');
  if (!widgetId || window.parent === window) return null;
  const userId = p.get('userId') ?? '';
  const deviceId = p.get('deviceId') ?? '';
  // A client that does not fill in a variable leaves "$name" in place.
  const known = (v) => v !== '' && !v.startsWith('$');
  return { widgetId, userId: known(userId) ? userId : '', deviceId: known(deviceId) ? deviceId : '' };
}

function start() {
  const params = widgetParams();
  if (!params) return { api: null, membership: null };
  const { widgetId, userId, deviceId } = params;
  const key = userId && deviceId ? callMemberKey(userId, deviceId) : null;
  const capabilities = key
    ? [`org.matrix.msc2762.send.state_event:${CALL_MEMBER}#${key}`, `org.matrix.msc2762.receive.state_event:${CALL_MEMBER}#${key}`]
    : [];
  const api = new WidgetAPI(widgetId, capabilities);
  if (!key) return { api, membership: null };
  const may = (cap) => api.approved.then((set) => set.has(cap));
  const membership = new CallMembership({
    deviceId,
    send: async (content) => {
      if (!(await may(capabilities[0]))) throw new Error('the Matrix client did not allow writing the call membership');
      return api.request('send_event', { type: CALL_MEMBER, state_key: key, content });
    },
  });
  // A membership left behind by a page that closed without a word (a crash,
  // a lost connection) is cleared first: this device is not in the call yet.
  membership.queue = may(capabilities[1]).then(async (allowed) => {
    if (!allowed) return;
    const { events = [] } = await api.request('org.matrix.msc2876.read_events', { type: CALL_MEMBER, state_key: key });
    const leftover = events.some((e) => e.state_key === key && e.content && Object.keys(e.content).length > 0);
    if (leftover) await membership.send({});
  }).catch((err) => console.warn('leftover call membership not checked:', err.message));
  // Closing the tab or the widget: {} is posted at once, while the page is
  // still there to post it (a promise would settle after it is gone).
  window.addEventListener('pagehide', () => {
    if (!membership.joined) return;
    membership.stop();
    if (api.allowed.has(capabilities[0])) api.post('send_event', { type: CALL_MEMBER, state_key: key, content: {} });
  });
  return { api, membership };
}

const widget = start();

// widgetAPI is the widget API to the hosting Matrix client, or null when
// this page is not a widget.
export const widgetAPI = widget.api;

// callMembership is the user's call membership in the widget's room, or
// null when this page is not a widget or does not know the user's device.
export const callMembership = widget.membership;
