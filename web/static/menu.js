// A menu button (WAI-ARIA Authoring Practices, "Menu Button"): a button
// that opens a list of actions. Enter, Space or ArrowDown opens it on the
// first action, ArrowUp on the last; in the menu the arrows, Home and End
// move between actions, Escape closes it and gives focus back to the
// button, Tab closes it and goes on. An action that is done closes the menu.

// menuButton wires button to menu. The menu's items are the buttons inside
// it, given role "menuitem"; hidden ones are skipped. The menu opens above
// the button (a control bar sits at the bottom of the window), within the
// window. onClose runs each time it closes. It returns close(refocus).
export function menuButton(button, menu, { onClose } = {}) {
  menu.setAttribute('role', 'menu');
  if (button.id) menu.setAttribute('aria-labelledby', button.id);
  button.setAttribute('aria-haspopup', 'menu');
  button.setAttribute('aria-controls', menu.id);
  button.setAttribute('aria-expanded', 'false');
  menu.hidden = true;
  const items = () => [...menu.querySelectorAll('button')].filter((b) => !b.hidden && !b.disabled);
  for (const b of menu.querySelectorAll('button')) {
    b.setAttribute('role', 'menuitem');
    b.tabIndex = -1;
  }

  const place = () => {
    const r = button.getBoundingClientRect();
    menu.style.bottom = `${Math.max(0, innerHeight - r.top + 4)}px`;
    menu.style.right = `${Math.max(0, innerWidth - r.right)}px`;
  };
  const open = (which) => {
    menu.hidden = false;
    place();
    button.setAttribute('aria-expanded', 'true');
    const list = items();
    (which === 'last' ? list[list.length - 1] : list[0])?.focus();
  };
  const close = (refocus) => {
    if (menu.hidden) return;
    menu.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    onClose?.();
    if (refocus) button.focus();
  };

  button.addEventListener('click', () => (menu.hidden ? open('first') : close(false)));
  button.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      e.stopPropagation();
      open(e.key === 'ArrowUp' ? 'last' : 'first');
    }
  });
  menu.addEventListener('keydown', (e) => {
    const list = items();
    const i = list.indexOf(document.activeElement);
    let next = -1;
    switch (e.key) {
      case 'ArrowDown': next = (i + 1) % list.length; break;
      case 'ArrowUp': next = (i - 1 + list.length) % list.length; break;
      case 'Home': next = 0; break;
      case 'End': next = list.length - 1; break;
      case 'Escape':
        e.preventDefault();
        close(true);
        return;
      case 'Tab':
        close(false);
        return;
      default:
        return;
    }
    e.preventDefault();
    list[next]?.focus();
  });
  // A click or focus elsewhere closes the menu.
  menu.addEventListener('focusout', (e) => {
    if (!menu.contains(e.relatedTarget) && e.relatedTarget !== button && e.relatedTarget !== null) close(false);
  });
  const outside = (e) => {
    if (!menu.isConnected) document.removeEventListener('pointerdown', outside);
    else if (!menu.contains(e.target) && !button.contains(e.target)) close(false);
  };
  document.addEventListener('pointerdown', outside);
  return close;
}
