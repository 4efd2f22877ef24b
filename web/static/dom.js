// Small DOM helpers: elements are built node by node, never from HTML
// strings, so text from the server can never become markup.
import { t } from './i18n.js';

// h makes an element. attrs: "on…" adds a listener, "i18n" (with "vars")
// gives translated text that follows language changes, "i18nLabel" the same
// for aria-label, "text" plain text; the rest are attributes (true → empty,
// false or null → absent).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'i18n' || k === 'i18nLabel' || k === 'vars') continue;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  if (attrs.i18n) say(el, attrs.i18n, attrs.vars);
  if (attrs.i18nLabel) {
    el.dataset.i18nLabel = attrs.i18nLabel;
    if (attrs.vars) el.dataset.i18nVars = JSON.stringify(attrs.vars);
    el.setAttribute('aria-label', t(attrs.i18nLabel, attrs.vars));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

// say sets an element's text from the i18n table; it is translated again
// when the language changes.
export function say(el, key, vars) {
  el.dataset.i18n = key;
  if (vars) el.dataset.i18nVars = JSON.stringify(vars);
  else delete el.dataset.i18nVars;
  el.textContent = t(key, vars);
}

// sayRaw shows text that has no translation (a server's message).
export function sayRaw(el, text) {
  delete el.dataset.i18n;
  delete el.dataset.i18nVars;
  el.textContent = text;
}

// announce tells screen readers about something that happened elsewhere on
// the page. The region is emptied first so that a repeated message is read.
export function announce(key, vars) {
  const region = document.getElementById('announcer');
  region.textContent = '';
  setTimeout(() => { region.textContent = t(key, vars); }, 100);
}

// field is a label above its control, with an optional hint.
export function field(control, labelKey, hintKey) {
  const hint = hintKey ? h('p', { class: 'hint', id: control.id + '-hint', i18n: hintKey }) : null;
  if (hint) control.setAttribute('aria-describedby', hint.id);
  return h('div', { class: 'field' }, h('label', { for: control.id, i18n: labelKey }), control, hint);
}

// keepFocus re-renders part of the page without losing the keyboard user's
// place: the focused control is found again by its data-focus key.
export function keepFocus(container, render) {
  const active = document.activeElement;
  const key = container.contains(active) ? active?.dataset?.focus : null;
  render();
  if (key) container.querySelector(`[data-focus="${CSS.escape(key)}"]`)?.focus();
}
