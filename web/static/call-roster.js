// What a call polls: the host's roster (the participants panel, and the
// moderation menu's state for a moderator) and the connection's quality.
import { say } from './dom.js';
import { LOBBY_POLL } from './call-connection.js';

const ROSTER_POLL = 5000;
const STATS_EVERY = 3000;
const QUALITY = { good: 'call.quality.good', fair: 'call.quality.fair', poor: 'call.quality.poor' };

// rosterPolling gives call c its roster and quality rounds.
export function rosterPolling(c) {
  async function refreshRoster() {
    try {
      c.roster = await c.api.roster();
    } catch {
      return;
    }
    if (c.roster.participants.some((p) => p.user === c.me.user)) c.wasParticipant = true;
    renderPeople();
    if (c.moderator) {
      c.locked = !!c.roster.locked;
      c.lobbyOn = !!c.roster.lobby_on;
      c.showModeration();
    }
  }

  function renderPeople() {
    c.people.render(c.roster, c.stateOf);
  }

  async function measure() {
    if (c.session && !c.session.closed) {
      try {
        const s = await c.session.stats();
        if (c.lastStats) {
          const received = s.received - c.lastStats.received;
          const lost = s.lost - c.lastStats.lost;
          const loss = received + lost > 0 ? lost / (received + lost) : 0;
          const level = loss > 0.08 || s.rtt > 0.5 ? 'poor' : loss > 0.02 || s.rtt > 0.25 ? 'fair' : 'good';
          c.quality.dataset.level = level;
          say(c.quality, QUALITY[level], { loss: { number: loss * 100, digits: 1 }, rtt: { number: Math.round(s.rtt * 1000) } });
        }
        c.lastStats = s;
      } catch {
        // A closing connection has no statistics; the next round will.
      }
    }
    if (!c.stopped) c.later(measure, STATS_EVERY);
  }

  function pollRoster() {
    if (c.stopped) return;
    refreshRoster().finally(() => c.later(pollRoster, c.moderator ? LOBBY_POLL : ROSTER_POLL));
  }

  return { refreshRoster, renderPeople, measure, pollRoster };
}
