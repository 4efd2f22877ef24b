// The call's toolbar: the user's devices, sharing, reactions, the view and
// its panels, and Leave, grouped and reachable with the arrow keys.
import { h, say, announce } from './dom.js';
import { icon } from './icons.js';

const REACTIONS = ['👍', '👏', '😀', '❤️', '🎉'];

// A control is an icon with its label; on a narrow screen the label is
// kept for screen readers and shown as a tooltip.
export const labelled = (attrs, key, iconName) => {
  const label = h('span', { class: 'label', i18n: key });
  const b = h('button', { type: 'button', ...attrs }, icon(iconName), label);
  b.label = label;
  b.title = label.textContent;
  return b;
};
export const say2 = (b, key) => { say(b.label, key); b.title = b.label.textContent; };
const toggle = (id, key, pressed, onclick, iconName) =>
  labelled({ id, 'aria-pressed': String(pressed), onclick }, key, iconName);

// controlBar builds the toolbar of call c; its buttons act through c.
export function controlBar(c) {
  const { stage, chat, people } = c;
  const micButton = toggle('call-mic', 'call.mic', c.mic?.enabled ?? false, () => c.setMic(!c.micOn()), 'mic');
  const camButton = toggle('call-camera', 'call.camera', c.cam?.enabled ?? false, () => c.setCamera(!c.camOn()), 'camera');
  const shareButton = toggle('call-share', 'call.share', false, () => (c.screen ? c.stopShare() : c.startShare()), 'screen');
  shareButton.classList.add('plain-toggle');
  const handButton = toggle('call-hand', 'call.hand', false, () => c.raiseHand(handButton.getAttribute('aria-pressed') !== 'true'), 'hand');
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
    REACTIONS.map((r) => h('button', { type: 'button', class: 'reaction', 'data-reaction': r, text: r, i18nLabel: 'call.react', vars: { reaction: r }, onclick: () => c.sendSignal({ kind: 'reaction', text: r }) })));
  const leaveButton = labelled({ id: 'call-leave', class: 'danger', onclick: c.leave }, 'call.leave', 'leave');

  const group = (key, ...buttons) => h('div', { class: 'control-group', role: 'group', i18nLabel: key }, buttons);
  const controls = h('div', { id: 'call-controls', class: 'call-controls', role: 'toolbar', i18nLabel: 'call.controls' },
    group('call.group.devices', micButton, camButton),
    group('call.group.share', shareButton, handButton, reactions),
    group('call.group.view', layoutButton, chatButton, peopleButton, c.modButton),
    group('call.group.leave', leaveButton));
  controls.addEventListener('keydown', toolbarKeys);

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

  return { controls, micButton, camButton, shareButton, handButton };
}
