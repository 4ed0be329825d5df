// The operator console. Plain JavaScript, no dependencies: every page is built
// from the public API (the same routes docs/api.md documents), with the tenant the
// operator entered. All text from the API goes into the page as text nodes
// (textContent), never as HTML.
'use strict';

const TENANT_KEY = 'focal.console.tenant';
const TOKEN_KEY = 'focal.console.token';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const POLL_MS = 1000;
const SEVERITIES = ['critical', 'warning', 'info'];
const STATUSES = ['pending', 'approved', 'deploying', 'deployed', 'rejected', 'superseded', 'expired'];
const SCENARIO_WORDS = { clean_graft: 'clean graft', gap_fill: 'gap fill', re_route: 're-route' };

// ----- small DOM helpers ------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'value') el.value = value;
    else if (key === 'checked') el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const main = () => document.getElementById('main');

// Replace an element's children, leaving out the null/false of conditional parts.
function put(el, ...nodes) {
  el.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

function show(...nodes) {
  const m = main();
  put(m, ...nodes);
}

function announce(text) {
  const s = document.getElementById('status');
  if (s) s.textContent = text;
}

function notice(kind, text) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

function fmtTime(value) {
  if (!value) return '—';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function badge(status) {
  return h('span', { class: `badge ${status}`, 'data-status': status }, status);
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function fieldId(name) {
  return 'f-' + name.replace(/[^a-z0-9_]+/gi, '-');
}

// ----- identity: tenant (kept in localStorage) and optional bearer token -----

function tenant() {
  return localStorage.getItem(TENANT_KEY) || '';
}

function token() {
  // The session's tab only: a bearer token is a credential.
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

function setupIdentity() {
  const params = new URLSearchParams(location.search);
  const fromLink = params.get('tenant');
  if (fromLink && UUID.test(fromLink)) localStorage.setItem(TENANT_KEY, fromLink.toLowerCase());
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
    localStorage.setItem(TENANT_KEY, value.toLowerCase());
    const t = tokenInput.value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
}

// ----- API --------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, body) {
    super(describeFailure(status, body));
    this.status = status;
    this.body = body;
  }
}

function describeFailure(status, body) {
  if (body && typeof body === 'object' && 'detail' in body) {
    if (typeof body.detail === 'string') return `${status}: ${body.detail}`;
    if (Array.isArray(body.detail)) {
      return `${status}: ` + body.detail.map((d) => `${(d.loc || []).join('.')}: ${d.msg}`).join('; ');
    }
  }
  return `${status}: ${typeof body === 'string' ? body.slice(0, 200) : 'request failed'}`;
}

async function api(method, path, body, accept) {
  const headers = { 'X-Tenant-ID': tenant(), Accept: accept || 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = text;
  if ((response.headers.get('content-type') || '').includes('json')) {
    try { data = JSON.parse(text); } catch (_) { data = text; }
  }
  if (!response.ok) throw new ApiFailure(response.status, data);
  return { status: response.status, data, headers: response.headers };
}

const get = async (path) => (await api('GET', path)).data;

function failed(error) {
  return notice('error', error instanceof ApiFailure ? error.message : `Could not reach the API: ${error.message}`);
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

function navigate(path) {
  history.pushState({}, '', path);
  route();
}

// ----- 1. plans list ------------------------------------------------------------

async function plansPage() {
  document.title = 'Plans · Migrations console';
  const params = new URLSearchParams(location.search);
  const state = {
    scenario: params.get('scenario_id') || '',
    status: params.get('status') || '',
    limit: Number(params.get('limit')) || 25,
    tokens: [null],
  };
  const scenarioInput = h('input', { id: 'filter-scenario', name: 'scenario_id', size: 38, value: state.scenario, placeholder: 'all scenarios' });
  const statusSelect = h('select', { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === state.status }, s)));
  const limitSelect = h('select', { id: 'filter-limit', name: 'limit' },
    [10, 25, 50, 100].map((n) => h('option', { value: n, selected: n === state.limit }, String(n))));
  const results = h('div', { id: 'plans-results' });
  const form = h('form', { class: 'row panel', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    state.scenario = scenarioInput.value.trim();
    state.status = statusSelect.value;
    state.limit = Number(limitSelect.value);
    state.tokens = [null];
    const q = new URLSearchParams();
    if (state.scenario) q.set('scenario_id', state.scenario);
    if (state.status) q.set('status', state.status);
    if (state.limit !== 25) q.set('limit', state.limit);
    history.replaceState({}, '', '/console/plans' + (q.toString() ? `?${q}` : ''));
    load();
  } },
  h('div', { class: 'field' }, h('label', { for: 'filter-scenario' }, 'Scenario ID'), scenarioInput),
  h('div', { class: 'field' }, h('label', { for: 'filter-status' }, 'Status'), statusSelect),
  h('div', { class: 'field' }, h('label', { for: 'filter-limit' }, 'Per page'), limitSelect),
  h('button', { type: 'submit', class: 'primary' }, 'Show plans'));
  show(h('h1', {}, 'Migration plans'), form, results);

  async function load() {
    put(results, h('p', {}, 'Loading…'));
    const q = new URLSearchParams({ limit: String(state.limit) });
    if (state.scenario) q.set('scenario_id', state.scenario);
    if (state.status) q.set('plan_status', state.status);
    const pageToken = state.tokens[state.tokens.length - 1];
    if (pageToken) q.set('next_token', pageToken);
    let page;
    try {
      page = await get(`/migration-plans?${q}`);
    } catch (error) {
      put(results, failed(error));
      return;
    }
    const rows = page.plans.map((p) => h('tr', { 'data-plan-id': p.id },
      h('td', {}, fmtTime(p.created_at)),
      h('td', {}, p.scenario_name, h('br'), h('a', { href: `/console/plans?scenario_id=${encodeURIComponent(p.scenario_id)}`, class: 'mono', 'aria-label': `Only plans of ${p.scenario_name}` }, p.scenario_id)),
      h('td', {}, `v${p.from_version} → v${p.to_version}`),
      h('td', {}, badge(p.status)),
      h('td', { class: 'num' }, p.total_anchors),
      h('td', { class: 'num' }, p.estimated_sessions_affected),
      h('td', { class: 'num' }, p.warning_count),
      h('td', {}, h('a', { href: `/console/plans/${p.id}`, 'aria-label': `Review plan ${p.scenario_name} v${p.from_version} to v${p.to_version}` }, 'Review'))));
    const table = h('table', { id: 'plans-table' },
      h('caption', { class: 'visually-hidden' }, 'Migration plans, newest first'),
      h('thead', {}, h('tr', {}, ['Created', 'Scenario', 'Versions', 'Status'].map((t) => h('th', { scope: 'col' }, t)),
        ['Anchors', 'Sessions', 'Warnings'].map((t) => h('th', { scope: 'col', class: 'num' }, t)), h('th', { scope: 'col' }, 'Open'))),
      h('tbody', {}, rows));
    const pager = h('div', { class: 'pager' },
      h('button', { type: 'button', disabled: state.tokens.length === 1, onclick: () => { state.tokens.pop(); load(); } }, 'Previous page'),
      h('span', {}, `Page ${state.tokens.length} · ${plural(page.total, 'plan')} in all`),
      h('button', { type: 'button', disabled: !page.next_token, onclick: () => { state.tokens.push(page.next_token); load(); } }, 'Next page'));
    put(results, page.plans.length ? table : h('p', {}, 'No plans match.'), pager);
    announce(`${page.plans.length} plans shown`);
  }
  load();
}

// ----- 2–4. plan review, policies, approve / reject / deploy ------------------

async function reviewPage(planId) {
  document.title = 'Plan review · Migrations console';
  show(h('h1', {}, 'Plan review'), h('p', {}, 'Loading…'));
  let plan, summary;
  try {
    [plan, summary] = await Promise.all([get(`/migration-plans/${planId}`), get(`/migration-plans/${planId}/summary`)]);
  } catch (error) {
    show(h('h1', {}, 'Plan review'), failed(error));
    return;
  }
  document.title = `${plan.scenario_name} v${plan.from_version} → v${plan.to_version} · Migrations console`;
  const messages = h('div', { id: 'messages', 'aria-live': 'polite' });
  const diagramState = { anchor: '', radius: 3 };
  const anchorsState = { tokens: [null], page: null };
  const policyPanel = h('section', { id: 'policy-editor', 'aria-labelledby': 'policy-title', hidden: true });

  show(
    h('h1', {}, `${plan.scenario_name}: v${plan.from_version} → v${plan.to_version} `, badge(plan.status)),
    planMeta(plan),
    messages,
    actionsPanel(plan, messages),
    h('h2', {}, 'Summary'),
    summaryNumbers(summary),
    h('h2', {}, 'Diagrams'),
    diagramSection(),
    h('h2', { id: 'anchors-title' }, 'Anchors and their policies'),
    h('div', { id: 'anchors' }),
    editedSection(),
    policyPanel,
    h('h2', {}, 'Warnings'),
    warningsSection(summary.warnings || []),
    h('h2', {}, 'Fields to collect'),
    fieldsSection(summary.fields_to_collect || []),
  );
  loadAnchors();
  drawDiagrams();

  function diagramSection() {
    const select = h('select', { id: 'diagram-anchor', onchange: () => { diagramState.anchor = select.value; drawDiagrams(); } },
      h('option', { value: '' }, plan.summary && plan.summary.total_anchors > 0 ? 'whole flow (or the entry’s neighbourhood when large)' : 'whole flow'));
    const radius = h('input', { id: 'diagram-radius', type: 'number', min: 1, max: 25, value: diagramState.radius, size: 4 });
    return h('div', {},
      h('form', { class: 'row', onsubmit: (e) => {
        e.preventDefault();
        diagramState.anchor = select.value;
        diagramState.radius = Math.max(1, Math.min(25, Number(radius.value) || 3));
        drawDiagrams();
      } },
      h('div', { class: 'field' }, h('label', { for: 'diagram-anchor' }, 'Centre on anchor'), select),
      h('div', { class: 'field' }, h('label', { for: 'diagram-radius' }, 'Radius (transitions)'), radius),
      h('button', { type: 'submit' }, 'Redraw')),
      h('div', { class: 'diagrams' },
        h('figure', {}, h('figcaption', {}, `Before: version ${plan.from_version}`), h('div', { class: 'diagram', id: 'diagram-v1', tabindex: 0, 'aria-label': `Diagram of version ${plan.from_version}` })),
        h('figure', {}, h('figcaption', {}, `After: version ${plan.to_version}`), h('div', { class: 'diagram', id: 'diagram-v2', tabindex: 0, 'aria-label': `Diagram of version ${plan.to_version}` }))));
  }

  async function drawDiagrams() {
    for (const side of ['v1', 'v2']) {
      const box = document.getElementById(`diagram-${side}`);
      put(box, h('p', {}, 'Drawing…'));
      const q = new URLSearchParams({ side });
      if (diagramState.anchor) {
        q.set('anchor', diagramState.anchor);
        q.set('radius', String(diagramState.radius));
      }
      try {
        const { data } = await api('GET', `/migration-plans/${planId}/diagram?${q}`, undefined, 'image/svg+xml');
        const doc = new DOMParser().parseFromString(data, 'image/svg+xml');
        const svg = doc.documentElement;
        if (svg.nodeName !== 'svg') throw new Error('not an SVG');
        // Unique marker ids per side (both diagrams live in one document).
        const node = document.importNode(svg, true);
        node.querySelectorAll('title#diagram-title').forEach((t) => { t.id = `diagram-title-${side}`; });
        node.setAttribute('aria-labelledby', `diagram-title-${side}`);
        // Anchors are buttons: click, or Tab to one and press Enter or Space.
        node.querySelectorAll('g.step[data-anchor]').forEach((g) => {
          const name = g.querySelector('text') ? g.querySelector('text').textContent : g.getAttribute('data-anchor');
          const centre = () => {
            diagramState.anchor = g.getAttribute('data-anchor');
            ensureAnchorOption(diagramState.anchor, name);
            document.getElementById('diagram-anchor').value = diagramState.anchor;
            drawDiagrams();
          };
          g.setAttribute('tabindex', '0');
          g.setAttribute('role', 'button');
          g.setAttribute('aria-label', `Centre the diagrams on ${name}`);
          g.addEventListener('click', centre);
          g.addEventListener('keydown', (e) => {
            if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); centre(); }
          });
        });
        put(box, node);
      } catch (error) {
        put(box, failed(error));
      }
    }
  }

  function ensureAnchorOption(hash, name) {
    const select = document.getElementById('diagram-anchor');
    if (![...select.options].some((o) => o.value === hash)) select.append(h('option', { value: hash }, name));
  }

  async function loadAnchors() {
    const box = document.getElementById('anchors');
    const q = new URLSearchParams({ limit: '25' });
    const pageToken = anchorsState.tokens[anchorsState.tokens.length - 1];
    if (pageToken) q.set('next_token', pageToken);
    let page;
    try {
      page = await get(`/migration-plans/${planId}/anchors?${q}`);
    } catch (error) {
      put(box, failed(error));
      return;
    }
    anchorsState.page = page;
    for (const a of page.anchors) ensureAnchorOption(a.anchor_content_hash, a.anchor_name);
    const counts = summary.sessions_by_anchor || {};
    const rows = page.anchors.map((a) => {
      const policy = page.anchor_policies[a.anchor_content_hash];
      return h('tr', { 'data-anchor': a.anchor_content_hash },
        h('th', { scope: 'row' }, a.anchor_name),
        h('td', { class: `scenario-${a.migration_scenario}` }, SCENARIO_WORDS[a.migration_scenario] || a.migration_scenario),
        h('td', { class: 'num' }, counts[a.anchor_content_hash] ?? 0),
        h('td', {}, policyText(policy)),
        h('td', {},
          h('button', { type: 'button', onclick: () => { diagramState.anchor = a.anchor_content_hash; document.getElementById('diagram-anchor').value = a.anchor_content_hash; drawDiagrams(); }, 'aria-label': `Centre the diagrams on ${a.anchor_name}` }, 'Centre diagram'),
          ' ',
          h('button', { type: 'button', class: 'edit-policy', disabled: plan.status !== 'pending', onclick: () => openPolicy(a.anchor_content_hash, a.anchor_name, policy, false), 'aria-label': `Edit the policy of ${a.anchor_name}` }, 'Edit policy')));
    });
    put(box,
      h('table', { id: 'anchors-table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Anchor'), h('th', { scope: 'col' }, 'Migration'), h('th', { scope: 'col', class: 'num' }, 'Sessions'), h('th', { scope: 'col' }, 'Policy'), h('th', { scope: 'col' }, 'Actions'))),
        h('tbody', {}, rows)),
      h('div', { class: 'pager' },
        h('button', { type: 'button', disabled: anchorsState.tokens.length === 1, onclick: () => { anchorsState.tokens.pop(); loadAnchors(); } }, 'Previous anchors'),
        h('span', {}, `Page ${anchorsState.tokens.length} of the anchors (${summary.total_anchors} in all)`),
        h('button', { type: 'button', disabled: !page.next_token, onclick: () => { anchorsState.tokens.push(page.next_token); loadAnchors(); } }, 'Next anchors')),
      plan.status === 'pending' ? null : h('p', { class: 'muted' }, `Policies can be edited while the plan is pending; it is ${plan.status}.`));
  }

  function editedSection() {
    const edited = (plan.transformation_map && plan.transformation_map.edited_steps) || [];
    if (!edited.length) return null;
    return h('div', {},
      h('h3', {}, `Edited steps (${edited.length})`),
      h('ul', {}, edited.map((e) => h('li', {}, `✎ ${e.anchor_name} (was “${e.node_name_v1}”) — `,
        h('button', { type: 'button', disabled: plan.status !== 'pending', onclick: () => openPolicy(e.anchor_content_hash, e.anchor_name, (plan.anchor_policies || {})[e.anchor_content_hash], true) }, 'Edit policy')))));
  }

  function openPolicy(hash, name, policy, edited) {
    policy = policy || { anchor_content_hash: hash, anchor_name: name, scope_filter: {}, update_downstream: true, force_scenario: null };
    const scope = policy.scope_filter || {};
    const list = (v) => (v || []).join(', ');
    const errors = h('div', { class: 'form-errors', id: 'policy-form-errors', role: 'alert' });
    const field = (key, label, control, help) => {
      control.id = fieldId(key);
      control.setAttribute('data-field', key);
      const helpId = help ? `${control.id}-help` : null;
      if (helpId) control.setAttribute('aria-describedby', helpId);
      const isBox = control.type === 'checkbox';
      return h('div', { class: isBox ? 'field inline' : 'field', 'data-field-wrapper': key },
        isBox ? control : null,
        h('label', { for: control.id }, label),
        isBox ? null : control,
        help ? h('span', { class: 'help', id: helpId }, help) : null,
        h('p', { class: 'field-error', id: `${control.id}-error`, hidden: true }));
    };
    const text = (value) => h('input', { type: 'text', value: value ?? '', size: 50 });
    const number = (value) => h('input', { type: 'text', inputmode: 'numeric', value: value ?? '', size: 8 });
    const conditions = h('textarea', { rows: 4, cols: 60, spellcheck: 'false' });
    conditions.value = (scope.custom_conditions || []).join('\n');
    const downstream = h('input', { type: 'checkbox', checked: policy.update_downstream !== false });
    const force = h('select', {},
      h('option', { value: '' }, 'as planned'),
      Object.entries(SCENARIO_WORDS).map(([value, words]) => h('option', { value, selected: policy.force_scenario === value }, words)));
    const behavior = edited ? h('select', {},
      h('option', { value: 'stay', selected: (policy.edited_step_behavior || 'stay') === 'stay' }, 'stay on the edited step'),
      h('option', { value: 'relocate_to_nearest_anchor', selected: policy.edited_step_behavior === 'relocate_to_nearest_anchor' }, 'relocate to the nearest anchor')) : null;
    const controls = {
      include_channels: text(list(scope.include_channels)),
      exclude_channels: text(list(scope.exclude_channels)),
      include_current_nodes: text(list(scope.include_current_nodes)),
      exclude_current_nodes: text(list(scope.exclude_current_nodes)),
      min_session_age_days: number(scope.min_session_age_days),
      max_session_age_days: number(scope.max_session_age_days),
    };
    const form = h('form', { id: 'policy-form', novalidate: true, onsubmit: save },
      h('fieldset', {}, h('legend', {}, 'Scope: which sessions migrate'),
        field('scope_filter.include_channels', 'Only these channels', controls.include_channels, 'Comma-separated, e.g. whatsapp, web. Empty: every channel.'),
        field('scope_filter.exclude_channels', 'Not these channels', controls.exclude_channels, 'Comma-separated.'),
        field('scope_filter.include_current_nodes', 'Only sessions at these steps', controls.include_current_nodes, 'Step ids, comma-separated. Empty: every step.'),
        field('scope_filter.exclude_current_nodes', 'Not sessions at these steps', controls.exclude_current_nodes, 'Step ids, comma-separated.'),
        field('scope_filter.min_session_age_days', 'Minimum session age (days)', controls.min_session_age_days),
        field('scope_filter.max_session_age_days', 'Maximum session age (days)', controls.max_session_age_days),
        field('scope_filter.custom_conditions', 'Conditions (CEL, one per line)', conditions, 'Every condition must hold, e.g. variables.age >= 18')),
      h('fieldset', {}, h('legend', {}, 'Migration'),
        field('update_downstream', 'Update downstream steps (teleport into the new flow)', downstream),
        field('force_scenario', 'Force migration scenario', force),
        behavior ? field('edited_step_behavior', 'Sessions at this edited step', behavior) : null),
      errors,
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary', id: 'save-policy' }, 'Save policy'),
        h('button', { type: 'button', onclick: () => { policyPanel.hidden = true; } }, 'Close')));
    put(policyPanel, h('h2', { id: 'policy-title' }, `Policy: ${name}`), form);
    policyPanel.hidden = false;
    controls.include_channels.focus();

    function splitList(value) {
      return value.split(',').map((s) => s.trim()).filter(Boolean);
    }
    function numberOrRaw(value) {
      const t = value.trim();
      if (!t) return null;
      // Anything but an integer goes as typed: the API's 422 names the field.
      return /^-?\d+$/.test(t) ? Number(t) : t;
    }
    async function save(event) {
      event.preventDefault();
      clearErrors();
      const updated = {
        anchor_content_hash: hash,
        anchor_name: policy.anchor_name || name,
        scope_filter: {
          include_channels: splitList(controls.include_channels.value),
          exclude_channels: splitList(controls.exclude_channels.value),
          include_current_nodes: splitList(controls.include_current_nodes.value),
          exclude_current_nodes: splitList(controls.exclude_current_nodes.value),
          min_session_age_days: numberOrRaw(controls.min_session_age_days.value),
          max_session_age_days: numberOrRaw(controls.max_session_age_days.value),
          custom_conditions: conditions.value.split('\n').map((s) => s.trim()).filter(Boolean),
        },
        update_downstream: downstream.checked,
        force_scenario: force.value || null,
      };
      if (behavior) updated.edited_step_behavior = behavior.value;
      try {
        await api('PUT', `/migration-plans/${planId}/policies`, { policies: { [hash]: updated } });
        put(messages, notice('ok', `Policy of ${name} saved.`));
        policyPanel.hidden = true;
        loadAnchors();
      } catch (error) {
        if (error instanceof ApiFailure && error.status === 422 && Array.isArray(error.body.detail)) {
          showFieldErrors(error.body.detail);
        } else {
          put(errors, failed(error));
        }
      }
    }
    function clearErrors() {
      put(errors);
      form.querySelectorAll('.field-error').forEach((p) => { p.hidden = true; p.textContent = ''; });
      form.querySelectorAll('[aria-invalid]').forEach((c) => {
        c.removeAttribute('aria-invalid');
        const help = c.id + '-help';
        if (document.getElementById(help)) c.setAttribute('aria-describedby', help);
        else c.removeAttribute('aria-describedby');
      });
    }
    // A 422 `loc` is ["body", "policies", <hash>, <field>..., <index>?]: the field
    // path picks the control; an index (a custom condition) is named in the message.
    function showFieldErrors(details) {
      let first = null;
      const unplaced = [];
      for (const d of details) {
        const loc = d.loc || [];
        const rest = loc[0] === 'body' && loc[1] === 'policies' && loc[2] === hash ? loc.slice(3) : null;
        const key = rest ? rest.filter((p) => typeof p === 'string').join('.') : '';
        const index = rest ? rest.find((p) => typeof p === 'number') : undefined;
        const control = key ? form.querySelector(`[data-field="${CSS.escape(key)}"]`) : null;
        const message = index === undefined ? d.msg : `Condition ${index + 1}: ${d.msg}`;
        if (!control) {
          unplaced.push(`${loc.join('.')}: ${d.msg}`);
          continue;
        }
        const slot = document.getElementById(`${control.id}-error`);
        slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
        slot.hidden = false;
        control.setAttribute('aria-invalid', 'true');
        const described = [slot.id, control.id + '-help'].filter((id) => document.getElementById(id));
        control.setAttribute('aria-describedby', described.join(' '));
        first = first || control;
      }
      if (unplaced.length) put(errors, h('ul', {}, unplaced.map((u) => h('li', {}, u))));
      announce('The policy was not saved: see the errors next to the fields');
      (first || errors).focus && (first || errors).focus();
    }
  }
}

function planMeta(plan) {
  const items = [
    ['Plan', h('code', {}, plan.id)],
    ['Created', `${fmtTime(plan.created_at)}${plan.created_by ? ` by ${plan.created_by}` : ''}`],
  ];
  if (plan.approved_at) items.push(['Approved', `${fmtTime(plan.approved_at)}${plan.approved_by ? ` by ${plan.approved_by}` : ''}`]);
  if (plan.rejected_at) items.push(['Rejected', `${fmtTime(plan.rejected_at)}${plan.rejected_by ? ` by ${plan.rejected_by}` : ''}${plan.rejection_reason ? `: ${plan.rejection_reason}` : ''}`]);
  if (plan.deployed_at) items.push(['Deployed', fmtTime(plan.deployed_at)]);
  if (plan.expires_at && (plan.status === 'pending' || plan.status === 'approved')) items.push(['Expires', fmtTime(plan.expires_at)]);
  return h('p', { class: 'muted' }, items.map(([k, v], i) => [i ? ' · ' : '', `${k}: `, v]));
}

function actionsPanel(plan, messages) {
  const links = h('p', {},
    h('a', { href: `/console/plans/${plan.id}/events` }, 'Applied migrations (events)'), ' · ',
    h('a', { href: `/console/plans/${plan.id}/progress` }, 'Deployment progress'), ' · ',
    h('a', { href: `/console/preview` }, 'Preview a session'));
  const panel = h('section', { class: 'panel', id: 'actions', 'aria-label': 'Decision' });
  if (plan.status === 'pending') {
    const approvedBy = h('input', { id: 'approved-by', size: 24 });
    const rejectedBy = h('input', { id: 'rejected-by', size: 24 });
    const reason = h('textarea', { id: 'reject-reason', rows: 2, cols: 50 });
    const reasonError = h('p', { class: 'field-error', id: 'reject-reason-error', hidden: true });
    panel.append(
      h('form', { class: 'row', id: 'approve-form', onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api('POST', `/migration-plans/${plan.id}/approve`, approvedBy.value.trim() ? { approved_by: approvedBy.value.trim() } : {});
          announce('Plan approved');
          reviewPage(plan.id);
        } catch (error) { put(messages, failed(error)); }
      } },
      h('div', { class: 'field' }, h('label', { for: 'approved-by' }, 'Approved by'), approvedBy),
      h('button', { type: 'submit', class: 'primary', id: 'approve-button' }, 'Approve plan')),
      h('form', { class: 'row', id: 'reject-form', onsubmit: async (e) => {
        e.preventDefault();
        if (!reason.value.trim()) {
          reasonError.textContent = 'Give a reason for rejecting the plan.';
          reasonError.hidden = false;
          reason.setAttribute('aria-invalid', 'true');
          reason.setAttribute('aria-describedby', reasonError.id);
          reason.focus();
          return;
        }
        try {
          const body = { reason: reason.value.trim() };
          if (rejectedBy.value.trim()) body.rejected_by = rejectedBy.value.trim();
          await api('POST', `/migration-plans/${plan.id}/reject`, body);
          announce('Plan rejected');
          reviewPage(plan.id);
        } catch (error) { put(messages, failed(error)); }
      } },
      h('div', { class: 'field' }, h('label', { for: 'reject-reason' }, 'Reason for rejecting'), reason, reasonError),
      h('div', { class: 'field' }, h('label', { for: 'rejected-by' }, 'Rejected by'), rejectedBy),
      h('button', { type: 'submit', class: 'danger', id: 'reject-button' }, 'Reject plan')));
  } else if (plan.status === 'approved') {
    panel.append(h('p', {}, 'Approved. Deploying activates the new version and marks the sessions to migrate.'),
      h('button', { type: 'button', class: 'primary', id: 'deploy-button', onclick: async (e) => {
        e.target.disabled = true;
        try {
          await api('POST', `/migration-plans/${plan.id}/deploy`);
          navigate(`/console/plans/${plan.id}/progress`);
        } catch (error) {
          e.target.disabled = false;
          put(messages, failed(error));
        }
      } }, 'Deploy'));
  } else {
    panel.append(h('p', {}, 'Status: ', badge(plan.status)));
  }
  panel.append(links);
  return panel;
}

function summaryNumbers(s) {
  const items = [
    ['Anchors', s.total_anchors], ['Clean graft', s.anchors_with_clean_graft], ['Gap fill', s.anchors_with_gap_fill],
    ['Re-route', s.anchors_with_re_route], ['Steps deleted', s.nodes_deleted], ['Steps edited', s.steps_edited || 0],
    ['Sessions affected', s.estimated_sessions_affected], ['Warnings', (s.warnings || []).length],
  ];
  return h('dl', { class: 'numbers', id: 'summary-numbers' },
    items.map(([label, value]) => h('div', {}, h('dt', {}, label), h('dd', {}, String(value ?? 0)))));
}

function warningsSection(warnings) {
  if (!warnings.length) return h('p', { id: 'warnings' }, 'No warnings.');
  const LIMIT = 50;
  return h('div', { id: 'warnings' }, SEVERITIES.map((severity) => {
    const of = warnings.filter((w) => w.severity === severity);
    if (!of.length) return null;
    const item = (w) => h('li', {}, h('strong', {}, w.anchor_name), `: ${w.message}`,
      w.affected_sessions_estimate ? ` (about ${plural(w.affected_sessions_estimate, 'session')})` : '');
    const rest = of.slice(LIMIT);
    return h('section', { class: `panel severity-${severity}`, 'data-severity': severity },
      h('h3', {}, `${severity[0].toUpperCase()}${severity.slice(1)} (${of.length})`),
      h('ul', {}, of.slice(0, LIMIT).map(item)),
      rest.length ? h('details', {}, h('summary', {}, `${rest.length} more`), h('ul', {}, rest.map(item))) : null);
  }));
}

function fieldsSection(fields) {
  if (!fields.length) return h('p', { id: 'fields' }, 'No fields to collect.');
  return h('table', { id: 'fields' },
    h('thead', {}, h('tr', {}, ['Field', 'Why', 'Anchors', 'From the conversation?'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, fields.map((f) => h('tr', {},
      h('th', { scope: 'row' }, `${f.display_name} `, h('code', {}, f.field_name)),
      h('td', {}, f.reason),
      h('td', {}, (f.affected_anchors || []).join(', ')),
      h('td', {}, f.can_extract_from_conversation ? 'yes' : 'no')))));
}

function policyText(policy) {
  if (!policy) return '—';
  const s = policy.scope_filter || {};
  const parts = [];
  if ((s.include_channels || []).length) parts.push(`channels: ${s.include_channels.join(', ')}`);
  if ((s.exclude_channels || []).length) parts.push(`not channels: ${s.exclude_channels.join(', ')}`);
  if ((s.include_current_nodes || []).length) parts.push(`${s.include_current_nodes.length} steps only`);
  if ((s.exclude_current_nodes || []).length) parts.push(`${s.exclude_current_nodes.length} steps excluded`);
  if (s.min_session_age_days != null) parts.push(`age ≥ ${s.min_session_age_days} d`);
  if (s.max_session_age_days != null) parts.push(`age ≤ ${s.max_session_age_days} d`);
  if ((s.custom_conditions || []).length) parts.push(plural(s.custom_conditions.length, 'condition'));
  if (policy.update_downstream === false) parts.push('downstream not updated');
  if (policy.force_scenario) parts.push(`forced: ${SCENARIO_WORDS[policy.force_scenario] || policy.force_scenario}`);
  if (policy.edited_step_behavior) parts.push(policy.edited_step_behavior.replace(/_/g, ' '));
  return parts.length ? parts.join('; ') : 'every session, as planned';
}

// ----- 4. deployment progress ------------------------------------------------------

async function progressPage(planId) {
  document.title = 'Deployment progress · Migrations console';
  const body = h('div', { id: 'progress' }, h('p', {}, 'Loading…'));
  show(h('h1', {}, 'Deployment progress'),
    h('p', {}, h('a', { href: `/console/plans/${planId}` }, 'Back to the plan review'), ' · ', h('a', { href: `/console/plans/${planId}/events` }, 'Applied migrations (events)')),
    body);
  let timer = null;
  const here = location.pathname;
  async function poll() {
    if (location.pathname !== here) return; // the operator left the page
    let st;
    try {
      st = await get(`/migration-plans/${planId}/deployment-status`);
    } catch (error) {
      put(body, failed(error));
      timer = setTimeout(poll, POLL_MS * 3);
      return;
    }
    const marked = st.sessions_marked || 0;
    const applied = st.migrations_applied || 0;
    const by = st.migrations_by_scenario || {};
    const numbers = [
      ['Sessions marked', marked], ['Migrations applied', applied], ['Pending', st.migrations_pending],
      ['Applied without a flag', st.migrations_applied_unflagged || 0], ['Clean graft', by.clean_graft || 0],
      ['Gap fill', by.gap_fill || 0], ['Re-route', by.re_route || 0], ['Checkpoint blocks', st.checkpoint_blocks],
      ['Failed marking pages', st.pages_failed || 0], ['Resumptions', st.resumptions || 0],
    ];
    const done = st.status === 'deployed';
    put(body,
      h('p', { class: 'deploy-status' }, 'Status: ', badge(st.status),
        done ? ` — every eligible session is marked; they migrate when their customers next write.` : ''),
      h('label', { for: 'applied-progress' }, `Migrations applied: ${applied} of ${marked} marked sessions`),
      h('progress', { id: 'applied-progress', max: Math.max(marked, 1), value: Math.min(applied, Math.max(marked, 1)) }),
      h('dl', { class: 'numbers', id: 'progress-numbers' }, numbers.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, String(v ?? 0))))),
      h('p', { class: 'muted' }, `Deployed at: ${fmtTime(st.deployed_at)} · last marking progress: ${fmtTime(st.last_progress_at)} · last migration: ${fmtTime(st.last_migration_at)}`),
      (st.pages_failed || 0) > 0 && st.status === 'deploying'
        ? notice('error', `${plural(st.pages_failed, 'marking page')} failed: re-drive the dead-letter queue (docs/operations.md, “Marking fan-out”).`) : null,
      done ? h('button', { type: 'button', onclick: () => { clearTimeout(timer); poll(); } }, 'Refresh counts') : null);
    if (st.status === 'deploying' || st.status === 'approved') {
      timer = setTimeout(poll, POLL_MS);
    } else if (done) {
      announce('Deployment finished: deployed');
    }
  }
  poll();
}

// ----- 5. session preview (reconcile dry run) ------------------------------------

async function previewPage() {
  document.title = 'Session preview · Migrations console';
  const params = new URLSearchParams(location.search);
  const sessionInput = h('input', { id: 'preview-session', size: 40, required: true, value: params.get('session_id') || '' });
  const known = h('textarea', { id: 'preview-known', rows: 3, cols: 60, spellcheck: 'false', placeholder: '{"age": 34}', 'aria-describedby': 'preview-known-help' });
  const knownError = h('p', { class: 'field-error', id: 'preview-known-error', hidden: true });
  const result = h('div', { id: 'preview-result', 'aria-live': 'polite' });
  const form = h('form', { class: 'panel', id: 'preview-form', onsubmit: run },
    h('div', { class: 'field' }, h('label', { for: 'preview-session' }, 'Session ID'), sessionInput),
    h('div', { class: 'field' }, h('label', { for: 'preview-known' }, 'Known fields (JSON object, optional)'), known,
      h('span', { class: 'help', id: 'preview-known-help' }, 'What the runtime knows now, as it would send it to reconcile.'), knownError),
    h('button', { type: 'submit', class: 'primary', id: 'preview-button' }, 'Preview reconcile'));
  show(h('h1', {}, 'Session preview'),
    h('p', {}, 'What reconcile would do to a session now: nothing is written (a dry run).'),
    form, result);
  if (sessionInput.value) run();
  else sessionInput.focus();

  async function run(event) {
    if (event) event.preventDefault();
    knownError.hidden = true;
    known.removeAttribute('aria-invalid');
    const id = sessionInput.value.trim();
    if (!id) { sessionInput.setAttribute('aria-invalid', 'true'); sessionInput.focus(); return; }
    sessionInput.removeAttribute('aria-invalid');
    let knownFields = {};
    if (known.value.trim()) {
      try {
        knownFields = JSON.parse(known.value);
        if (!knownFields || typeof knownFields !== 'object' || Array.isArray(knownFields)) throw new Error('not an object');
      } catch (_) {
        knownError.textContent = 'Known fields must be a JSON object, e.g. {"age": 34}.';
        knownError.hidden = false;
        known.setAttribute('aria-invalid', 'true');
        known.setAttribute('aria-describedby', 'preview-known-help preview-known-error');
        known.focus();
        return;
      }
    }
    put(result, h('p', {}, 'Asking…'));
    const path = `/sessions/${encodeURIComponent(id)}`;
    let session, answer;
    try {
      session = await get(path);
      answer = await api('POST', `${path}/reconcile`, { dry_run: true, known_fields: knownFields });
    } catch (error) {
      if (error instanceof ApiFailure && error.status === 422 && Array.isArray(error.body.detail)) {
        const msgs = error.body.detail.map((d) => `${(d.loc || []).slice(1).join('.')}: ${d.msg}`);
        knownError.textContent = msgs.join(' ');
        knownError.hidden = false;
        known.setAttribute('aria-invalid', 'true');
        put(result);
      } else {
        put(result, failed(error));
      }
      return;
    }
    const r = answer.data;
    const names = await stepNames(session);
    const stepName = (stepId) => stepId ? `${names.get(stepId) || 'unknown step'} (${stepId})` : '—';
    const rows = [
      ['Action', h('strong', { id: 'preview-action' }, r.action)],
      ['Target step', stepName(r.target_step_id)],
      ['Migration scenario', r.migration_scenario ? SCENARIO_WORDS[r.migration_scenario] : '—'],
      ['Fields to collect', (r.collect_fields || []).length ? r.collect_fields.join(', ') : 'none'],
      ['Fields to confirm', (r.confirm_fields || []).length ? r.confirm_fields.join(', ') : 'none'],
      ['Required actions to run', (r.execute_action_ids || []).length ? r.execute_action_ids.join(', ') : 'none'],
      ['Blocked by a checkpoint', r.blocked_by_checkpoint ? `yes — ${r.checkpoint_warning || ''}` : 'no'],
      ['Message to the customer', r.user_message || '—'],
      ['Reason', r.reason || r.teleport_reason || '—'],
    ];
    const flag = session.pending_migration;
    put(result,
      h('h2', {}, 'The session now'),
      h('table', { id: 'preview-session-now' }, h('tbody', {},
        h('tr', {}, h('th', { scope: 'row' }, 'Scenario'), h('td', {}, h('code', {}, session.active_scenario_id), ` version ${session.active_scenario_version}`)),
        h('tr', {}, h('th', { scope: 'row' }, 'Step'), h('td', {}, stepName(session.active_step_id))),
        h('tr', {}, h('th', { scope: 'row' }, 'Channel'), h('td', {}, session.channel)),
        h('tr', {}, h('th', { scope: 'row' }, 'Pending migration'), h('td', {}, flag
          ? [h('a', { href: `/console/plans/${flag.migration_plan_id}` }, `plan to version ${flag.target_version}`), ` (marked ${fmtTime(flag.marked_at)})`] : 'none')),
        h('tr', {}, h('th', { scope: 'row' }, 'Revision'), h('td', {}, String(session.revision))))),
      h('h2', {}, 'Reconcile would'),
      h('table', { id: 'preview-answer' }, h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v))))),
      notice('ok', `Nothing was changed: this was a dry run (the session is still at revision ${session.revision}).`));
    announce(`Reconcile would: ${r.action}`);
  }
}

/// Names of the steps of the session's version and of the current version.
async function stepNames(session) {
  const names = new Map();
  const sid = session.active_scenario_id;
  const add = (s) => (s.steps || []).forEach((st) => { if (!names.has(st.id)) names.set(st.id, st.name); });
  try { add(await get(`/scenarios/${sid}`)); } catch (_) { /* names are a nicety */ }
  try { add(await get(`/scenarios/${sid}/versions/${session.active_scenario_version}`)); } catch (_) { /* idem */ }
  return names;
}

// ----- 6. events ---------------------------------------------------------------------

async function eventsPage(planId) {
  document.title = 'Applied migrations · Migrations console';
  const tokens = [null];
  const box = h('div', { id: 'events' });
  show(h('h1', {}, 'Applied migrations'),
    h('p', {}, h('a', { href: `/console/plans/${planId}` }, 'Back to the plan review'), ' · ', h('a', { href: `/console/plans/${planId}/progress` }, 'Deployment progress')),
    box);
  async function load() {
    const q = new URLSearchParams({ limit: '25' });
    const t = tokens[tokens.length - 1];
    if (t) q.set('next_token', t);
    let page;
    try {
      page = await get(`/migration-plans/${planId}/events?${q}`);
    } catch (error) {
      put(box, failed(error));
      return;
    }
    const rows = page.events.map((e) => h('tr', {},
      h('td', {}, fmtTime(e.at)),
      h('td', {}, h('a', { href: `/console/preview?session_id=${encodeURIComponent(e.session_id)}` }, e.session_id)),
      h('td', {}, `v${e.from_version} → v${e.to_version}`),
      h('td', {}, e.migration_scenario ? SCENARIO_WORDS[e.migration_scenario] : '—'),
      h('td', {}, e.action),
      h('td', {}, Object.keys(e.fields_filled || {}).join(', ') || '—'),
      h('td', {}, (e.fields_asked || []).join(', ') || '—'),
      h('td', {}, e.blocked_by_checkpoint ? 'yes' : 'no')));
    put(box,
      page.events.length
        ? h('table', { id: 'events-table' },
          h('thead', {}, h('tr', {}, ['At', 'Session', 'Versions', 'Migration', 'Action', 'Fields filled', 'Fields asked', 'Checkpoint block'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, rows))
        : h('p', {}, 'No migrations applied yet.'),
      h('div', { class: 'pager' },
        h('button', { type: 'button', disabled: tokens.length === 1, onclick: () => { tokens.pop(); load(); } }, 'Previous page'),
        h('span', {}, `Page ${tokens.length}`),
        h('button', { type: 'button', disabled: !page.next_token, onclick: () => { tokens.push(page.next_token); load(); } }, 'Next page')));
  }
  load();
}

// ----- start -------------------------------------------------------------------------

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
