// The stage of the call screen: one tile per participant's camera and one
// per screen share, laid out as a grid or with one featured tile (speaker
// layout). Remote sound plays from hidden audio elements so that a tile
// can come and go without cutting anyone off.
import { h } from './dom.js';
import { t } from './i18n.js';

const key = (user, source) => `${user}|${source}`;

function initials(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('');
}

export class Stage {
  // onSize(trackId, width, height) is told the pixel size a remote video
  // is shown at, so that the SFU sends the layer that fits (spec §5.4).
  constructor({ onSize }) {
    this.onSize = onSize;
    this.tiles = new Map(); // key → tile
    this.people = new Map(); // user → { name, org, me, hand, micMuted }
    this.speaker = '';
    this.layout = 'grid';
    this.list = h('ul', { id: 'stage', class: 'stage layout-grid', i18nLabel: 'call.stage' });
    this.sounds = h('div', { id: 'sounds', hidden: true });
    this.el = h('div', { class: 'stage-wrap' }, this.list, this.sounds);
    this.sizes = new Map(); // track id → "w×h" last told
    this.resize = new ResizeObserver(() => this.reportSizes());
    // A tile's name and label are built from several texts: rebuilt when
    // the language changes.
    this.relabel = () => { for (const tile of this.tiles.values()) this.label(tile); };
    window.addEventListener('entente:language', this.relabel);
  }

  setPerson(user, p) {
    this.people.set(user, { hand: false, micMuted: false, ...this.people.get(user), ...p });
    for (const tile of this.tiles.values()) if (tile.user === user) this.label(tile);
  }

  person(user) {
    return this.people.get(user) ?? { name: user, org: '' };
  }

  tile(user, source) {
    let tile = this.tiles.get(key(user, source));
    if (tile) return tile;
    const video = h('video', { autoplay: true, playsinline: true });
    video.muted = true; // sound plays from the audio elements
    const name = h('span', { class: 'tile-name' });
    const org = h('span', { class: 'tile-org' });
    const badges = h('span', { class: 'tile-badges' });
    const placeholder = h('div', { class: 'tile-placeholder', 'aria-hidden': 'true' });
    const li = h('li', { class: 'tile', 'data-user': user, 'data-source': source },
      video, placeholder, h('p', { class: 'tile-caption' }, name, org, badges));
    tile = { user, source, li, video, name, org, badges, placeholder, trackId: '', videoMuted: true };
    this.tiles.set(key(user, source), tile);
    this.label(tile);
    this.place();
    this.resize.observe(li);
    return tile;
  }

  label(tile) {
    const p = this.person(tile.user);
    const who = p.me ? t('call.you', { name: p.name }) : p.name;
    tile.name.textContent = who;
    tile.org.textContent = p.org;
    tile.placeholder.textContent = initials(p.name);
    const badges = [];
    if (tile.source === 'camera' && p.micMuted) badges.push(h('span', { class: 'badge muted', i18n: 'call.badge.muted' }));
    if (tile.source === 'camera' && p.hand) badges.push(h('span', { class: 'badge hand', i18n: 'call.badge.hand' }));
    // The participant's organisation does not let its media reach ours
    // (spec/client-api.md §5.3): say so, rather than show a camera that
    // seems off.
    if (tile.source === 'camera' && p.withheld) badges.push(h('span', { class: 'badge withheld', i18n: 'call.badge.withheld' }));
    tile.badges.replaceChildren(...badges);
    const labelKey = tile.source === 'screen' ? 'call.tile.screen' : 'call.tile.camera';
    tile.li.setAttribute('aria-label', t(labelKey, { name: who, org: p.org }) +
      (p.micMuted && tile.source === 'camera' ? ', ' + t('call.badge.muted') : '') +
      (p.hand && tile.source === 'camera' ? ', ' + t('call.badge.hand') : '') +
      (p.withheld && tile.source === 'camera' ? ', ' + t('call.badge.withheld') : ''));
    tile.li.classList.toggle('withheld', !!p.withheld);
    tile.li.classList.toggle('video-off', tile.videoMuted);
  }

  // show plays track in the tile of its owner's source.
  show(user, source, track, trackId) {
    const tile = this.tile(user, source);
    tile.trackId = trackId ?? '';
    tile.video.srcObject = new MediaStream([track]);
    this.setVideoMuted(user, source, false);
    this.sizes.delete(tile.trackId);
    this.reportSizes();
  }

  setVideoMuted(user, source, muted) {
    const tile = this.tiles.get(key(user, source));
    if (!tile) return;
    tile.videoMuted = muted;
    // A stopped screen share leaves the stage; a camera turned off shows
    // the person's initials.
    tile.li.hidden = source === 'screen' && muted;
    this.label(tile);
    this.place();
  }

  play(trackId, track, user) {
    let audio = this.sounds.querySelector(`audio[data-track="${CSS.escape(trackId)}"]`);
    if (!audio) {
      audio = h('audio', { autoplay: true, 'data-track': trackId, 'data-user': user });
      this.sounds.append(audio);
    }
    audio.srcObject = new MediaStream([track]);
  }

  silence(trackId) {
    this.sounds.querySelector(`audio[data-track="${CSS.escape(trackId)}"]`)?.remove();
  }

  remove(user, source) {
    const tile = this.tiles.get(key(user, source));
    if (!tile) return;
    this.resize.unobserve(tile.li);
    tile.li.remove();
    this.tiles.delete(key(user, source));
    this.place();
  }

  removeUser(user) {
    for (const tile of [...this.tiles.values()]) if (tile.user === user) this.remove(user, tile.source);
  }

  removeTrack(trackId) {
    for (const tile of [...this.tiles.values()]) {
      if (tile.trackId !== trackId) continue;
      if (tile.source === 'screen') this.remove(tile.user, 'screen');
      else {
        tile.video.srcObject = null;
        tile.trackId = '';
        this.setVideoMuted(tile.user, tile.source, true);
      }
    }
    this.silence(trackId);
  }

  setSpeaker(user) {
    this.speaker = user;
    for (const tile of this.tiles.values()) tile.li.classList.toggle('speaking', tile.user === user && tile.source === 'camera');
    this.place();
  }

  setLayout(layout) {
    this.layout = layout;
    this.list.classList.remove('layout-grid', 'layout-speaker');
    this.list.classList.add('layout-' + layout);
    this.place();
  }

  // featured is the tile the speaker layout shows large: a screen share
  // first, then whoever speaks, then anyone but us.
  featured() {
    const visible = [...this.tiles.values()].filter((x) => !x.li.hidden);
    return visible.find((x) => x.source === 'screen') ??
      visible.find((x) => x.user === this.speaker && x.source === 'camera') ??
      visible.find((x) => !this.person(x.user).me) ?? visible[0];
  }

  place() {
    // A screen share is the main view in either layout, with the cameras
    // in a strip.
    const screen = [...this.tiles.values()].find((x) => x.source === 'screen' && !x.li.hidden);
    this.list.classList.toggle('has-screen', !!screen);
    const featured = this.layout === 'speaker' ? this.featured() : screen ?? null;
    const order = [...this.tiles.values()].sort((a, b) =>
      (b === featured) - (a === featured) || (a.source === 'screen' ? -1 : 0) - (b.source === 'screen' ? -1 : 0));
    // CSS order, not moving elements, so that playing videos are left alone.
    order.forEach((tile, i) => {
      tile.li.classList.toggle('featured', tile === featured);
      tile.li.style.order = String(i);
      if (tile.li.parentNode !== this.list) this.list.append(tile.li);
    });
    this.list.dataset.count = String(order.filter((x) => !x.li.hidden).length);
    this.reportSizes();
  }

  reportSizes() {
    const ratio = window.devicePixelRatio || 1;
    for (const tile of this.tiles.values()) {
      if (!tile.trackId || this.person(tile.user).me) continue;
      const w = Math.round(tile.li.clientWidth * ratio);
      const hgt = Math.round(tile.li.clientHeight * ratio);
      if (!w || !hgt) continue;
      const size = `${w}×${hgt}`;
      if (this.sizes.get(tile.trackId) === size) continue;
      this.sizes.set(tile.trackId, size);
      this.onSize(tile.trackId, w, hgt);
    }
  }

  clear() {
    this.resize.disconnect();
    for (const tile of this.tiles.values()) tile.video.srcObject = null;
    this.tiles.clear();
    this.list.replaceChildren();
    this.sounds.replaceChildren();
    this.sizes.clear();
  }
}
