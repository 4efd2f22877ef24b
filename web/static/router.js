// The client's routes: "/app/conference/{id}" is the pre-join screen, any
// other path the home screen. The server answers every /app/ path with the
// same page.
export function parseRoute(pathname) {
  const m = pathname.match(/^\/app\/conference\/([^/]+)\/?$/);
  if (m) return { name: 'prejoin', id: decodeURIComponent(m[1]) };
  return { name: 'home' };
}

export function conferencePath(id) {
  return '/app/conference/' + encodeURIComponent(id);
}

export function navigate(path) {
  history.pushState(null, '', path);
  window.dispatchEvent(new Event('entente:navigate'));
}

// followLinks lets same-page links navigate without reloading.
export function followLinks(root) {
  root.addEventListener('click', (e) => {
    const a = e.target.closest('a[data-route]');
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(a.getAttribute('href'));
  });
}
