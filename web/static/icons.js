// The call screen's icons: small inline SVGs drawn with the text colour,
// hidden from screen readers (every control has its text label).
const NS = 'http://www.w3.org/2000/svg';

// Each icon is a list of SVG path data on a 24×24 grid, stroked.
const PATHS = {
  mic: ['M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z', 'M5 11a7 7 0 0 0 14 0', 'M12 18v3'],
  camera: ['M3 7h12v10H3z', 'M15 10l6-3v10l-6-3'],
  screen: ['M3 4h18v12H3z', 'M8 20h8', 'M12 16v4', 'M12 13V7', 'M9 10l3-3 3 3'],
  hand: ['M8 13V6a1.5 1.5 0 0 1 3 0v5', 'M11 11V4.5a1.5 1.5 0 0 1 3 0V11', 'M14 11V6a1.5 1.5 0 0 1 3 0v7a7 7 0 0 1-7 7 6 6 0 0 1-5-3l-2-4a1.5 1.5 0 0 1 2.5-1.5L8 13'],
  layout: ['M3 4h18v11H3z', 'M3 18h5', 'M10 18h4', 'M16 18h5'],
  chat: ['M4 5h16v10H9l-5 4z'],
  people: ['M9 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6z', 'M3 20a6 6 0 0 1 12 0', 'M16 5a3 3 0 0 1 0 6', 'M18 14a5 5 0 0 1 3 6'],
  shield: ['M12 3l8 3v6c0 4-3.5 7.5-8 9-4.5-1.5-8-5-8-9V6z', 'M9 12l2 2 4-4'],
  leave: ['M4 15c5-5 11-5 16 0l-2 3-3-1v-2a9 9 0 0 0-6 0v2l-3 1z'],
};

export function icon(name) {
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', 'icon');
  for (const d of PATHS[name] ?? []) {
    const p = document.createElementNS(NS, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}
