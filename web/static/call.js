// The call screen. For now it only says that the call is connecting; the
// media connection is added here.
import { h } from './dom.js';

export function startCall({ conference, token, me, stream, devices, queued }) {
  const main = document.getElementById('main');
  main.replaceChildren(
    h('h1', { id: 'call-title', i18n: 'call.title', vars: { title: conference.title } }),
    h('p', { id: 'call-status', role: 'status', i18n: queued ? 'call.queued' : 'call.connecting' }),
  );
  main.focus();
  return {
    stop() {
      stream?.getTracks().forEach((t) => t.stop());
    },
  };
}
