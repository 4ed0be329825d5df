// The plans list: newest first, filtered by scenario and status, paged.

import { get, failed } from './api.js';
import { h, put, show, announce, fmtTime, badge, plural } from './dom.js';

const STATUSES = ['pending', 'approved', 'deploying', 'deployed', 'paused', 'halted', 'withdrawing', 'withdrawn', 'rejected', 'superseded', 'expired'];

export async function plansPage() {
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
