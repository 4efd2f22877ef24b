// What participants tell each other in a call: chat, raised hands, mute
// states, reactions and a moderator's request to mute, sent as signals
// through the API and heard back over the media WebSocket.
import { h, say, announce } from './dom.js';
import { t } from './i18n.js';

const reducedMotion = () => window.matchMedia('(prefers-reduced-motion: reduce)').matches;

// signals gives call c its signal handling and the names it shows.
export function signals(c) {
  const { me } = c;

  // Signals go through the API so that they cross organisations; the
  // echo over the WebSocket applies them here too.
  async function sendSignal(sig) {
    try {
      const out = await c.api.signal(sig);
      onSignal(out);
    } catch (err) {
      if (!c.stopped) say(c.alert, 'call.signal.failed', { message: err.message });
    }
  }

  const stateOf = (user) => {
    const p = c.stage.people.get(user);
    return { inCall: !!p?.present, micMuted: !!p?.micMuted, hand: !!p?.hand, withheld: !!p?.present && !!p?.withheld };
  };
  const nameOf = (user) => c.stage.people.get(user)?.name ?? c.roster?.participants?.find((p) => p.user === user)?.display_name ?? user.split('@')[0];

  function showChat(sig) {
    const mine = sig.user === me.user;
    if (!c.chat.add(sig, mine ? me.display_name : nameOf(sig.user), mine)) return;
    if (sig.user !== me.user) announce('call.chat.new', { name: sig.as || nameOf(sig.user), text: sig.text });
  }

  function onSignal(sig) {
    switch (sig.kind) {
      case 'chat':
        showChat(sig);
        break;
      case 'chat.edit':
      case 'chat.redact':
        c.chat.change(sig);
        break;
      case 'hand':
        c.stage.setPerson(sig.user, { hand: !!sig.on });
        if (sig.user !== me.user && sig.on) announce('call.hand.raised', { name: nameOf(sig.user) });
        break;
      case 'mute':
        c.stage.setPerson(sig.user, { micMuted: !!sig.on });
        break;
      case 'reaction':
        showReaction(sig);
        break;
      case 'mute.request':
        if (sig.ref === me.user && c.micOn()) {
          c.setMic(false, 'call.mic.muted.by');
          say(c.alert, 'call.mic.muted.by');
        }
        break;
    }
    c.renderPeople();
  }

  function showReaction(sig) {
    const tile = c.stage.tiles.get(`${sig.user}|camera`);
    if (tile) {
      const bubble = h('span', { class: 'reaction-bubble' + (reducedMotion() ? '' : ' animated'), 'aria-hidden': 'true', text: sig.text });
      tile.li.append(bubble);
      c.later(() => bubble.remove(), 4000);
    }
    announce('call.react.by', { name: sig.user === me.user ? t('call.you', { name: me.display_name }) : nameOf(sig.user), reaction: sig.text });
  }

  return { sendSignal, stateOf, nameOf, showChat, onSignal };
}
