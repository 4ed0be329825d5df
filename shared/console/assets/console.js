// The operator console. Plain JavaScript, no dependencies: every page is built
// from the public API (the same routes docs/api.md documents), with the tenant the
// operator entered. All text from the API goes into the page as text nodes
// (textContent), never as HTML.
//
// This is the entry module (index.html loads it with type="module"): the identity
// bar, the router and start-up. Each page lives in its own module; every module is
// served as it is written, without a build step, and imports the others by
// relative URL.

import { UUID, tenant, token, setTenant, setToken } from './api.js';
import { h, show, announce, navigate, onNavigate } from './dom.js';
import { plansPage } from './plans.js';
import { reviewPage } from './review.js';
import { progressPage, eventsPage } from './deployment.js';
import { previewPage } from './preview.js';

// ----- identity: tenant (kept in localStorage) and optional bearer token -----

function setupIdentity() {
  const params = new URLSearchParams(location.search);
  const fromLink = params.get('tenant');
  if (fromLink && UUID.test(fromLink)) setTenant(fromLink);
  const form = document.getElementById('identity');
  const tenantInput = document.getElementById('tenant-input');
  const tokenInput = document.getElementById('token-input');
  tenantInput.value = tenant();
  tokenInput.value = token();
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = tenantInput.value.trim();
    if (!UUID.test(value)) {
      tenantInput.setAttribute('aria-invalid', 'true');
      announce('The tenant ID must be a UUID');
      tenantInput.focus();
      return;
    }
    tenantInput.removeAttribute('aria-invalid');
    setTenant(value);
    setToken(tokenInput.value.trim());
    route();
  });
}

// ----- router -----------------------------------------------------------------

function route() {
  const path = location.pathname.replace(/\/+$/, '') || '/';
  if (!UUID.test(tenant())) {
    show(
      h('h1', {}, 'Migrations console'),
      h('p', {}, 'Enter your tenant ID (a UUID) in the bar above, then choose “Use”. It is kept in this browser.'),
    );
    document.getElementById('tenant-input').focus();
    return;
  }
  let m;
  if (path === '/' || path === '/console' || path === '/console/plans') return plansPage();
  if ((m = path.match(/^\/console\/plans\/([0-9a-f-]{36})$/i))) return reviewPage(m[1]);
  if ((m = path.match(/^\/console\/plans\/([0-9a-f-]{36})\/progress$/i))) return progressPage(m[1]);
  if ((m = path.match(/^\/console\/plans\/([0-9a-f-]{36})\/events$/i))) return eventsPage(m[1]);
  if (path === '/console/preview') return previewPage();
  show(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '/console/plans' }, 'Back to the plans')));
}

// ----- start -------------------------------------------------------------------------

onNavigate(route);
document.addEventListener('click', (event) => {
  // Console links open without a reload (the tenant stays, history works).
  const a = event.target.closest && event.target.closest('a[href^="/console"]');
  if (!a || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', route);
document.addEventListener('DOMContentLoaded', () => {
  setupIdentity();
  route();
});
