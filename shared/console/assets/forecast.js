// The outcome forecast on the plan review: what reconcile will answer the live
// sessions once the plan is deployed, per action and per anchor, the fields
// most often missing and the checkpoint blocks — read from
// GET /migration-plans/{id}/forecast, and read again after a policy is saved.

import { get, failed } from './api.js';
import { h, put, plural } from './dom.js';

const ACTIONS = [
  ['teleport', 'Teleport'],
  ['collect', 'Collect fields'],
  ['execute_action', 'Execute an action'],
  ['exit_scenario', 'Exit the scenario'],
  ['continue', 'Continue'],
];
// Parts of `continue` shown apart.
const CONTINUE_PARTS = [
  ['excluded_by_scope', 'excluded by the scope filter'],
  ['pinned', 'pinned on their version'],
];
const ANCHOR_ROWS = 12;
const FIELD_ROWS = 10;

// A count is a number, or {estimate, low, high} when the forecast sampled.
const value = (count) => (typeof count === 'number' ? count : (count && count.estimate) || 0);
const text = (count) => (typeof count === 'number'
  ? String(count)
  : `≈ ${count.estimate} (${count.low}–${count.high})`);

// The section, empty until `load()` fills it.
export function forecastSection(planId) {
  const box = h('section', { id: 'forecast', 'aria-labelledby': 'forecast-title', 'aria-live': 'polite' });
  async function load() {
    put(box, h('h2', { id: 'forecast-title' }, 'Forecast'), h('p', { class: 'muted' }, 'Deciding every live session…'));
    let forecast;
    try {
      forecast = await get(`/migration-plans/${planId}/forecast`);
    } catch (error) {
      put(box, h('h2', { id: 'forecast-title' }, 'Forecast'), failed(error));
      return;
    }
    put(box, ...render(forecast));
  }
  return { element: box, load };
}

function render(f) {
  const total = Math.max(1, f.sessions_considered);
  const how = f.exact
    ? `Every one of the ${plural(f.sessions_considered, 'live session')} decided as reconcile will decide it once the plan is deployed.`
    : `Estimated from ${plural(f.sample_size, 'session')} sampled of ${f.sessions_considered}; ranges are 95% intervals.`;
  return [
    h('h2', { id: 'forecast-title' }, 'Forecast'),
    h('p', { class: 'muted', id: 'forecast-basis', 'data-revision': f.plan_revision, 'data-exact': String(f.exact) },
      how, ` Policies of revision ${f.plan_revision}.`),
    actionBars(f.outcomes, total),
    h('h3', {}, 'By anchor'),
    anchorTable(f.by_anchor),
    h('h3', {}, 'Fields most often missing'),
    fieldList(f.fields_missing),
  ];
}

// A bar `fraction` wide. The width goes through the CSS object model: the
// console's security policy refuses inline style attributes.
function segment(fraction, kind, title) {
  const el = h('span', { class: `bar bar-${kind}`, title });
  el.style.width = `${(Math.max(0, Math.min(1, fraction)) * 100).toFixed(1)}%`;
  return el;
}

function bar(fraction, kind) {
  return h('span', { class: 'bar-track', 'aria-hidden': 'true' }, segment(fraction, kind));
}

function actionBars(outcomes, total) {
  const rows = ACTIONS.map(([key, label]) => h('tr', { 'data-action': key },
    h('th', { scope: 'row' }, label),
    h('td', {}, bar(value(outcomes[key]) / total, key)),
    h('td', { class: 'num', 'data-count': value(outcomes[key]) }, text(outcomes[key]))));
  for (const [key, label] of CONTINUE_PARTS) {
    rows.push(h('tr', { 'data-action': key, class: 'sub' },
      h('th', { scope: 'row' }, `… of which ${label}`),
      h('td', {}, bar(value(outcomes[key]) / total, 'continue')),
      h('td', { class: 'num', 'data-count': value(outcomes[key]) }, text(outcomes[key]))));
  }
  rows.push(h('tr', { 'data-action': 'blocked_by_checkpoint', class: 'blocked' },
    h('th', { scope: 'row' }, 'Blocked by a checkpoint'),
    h('td', {}, bar(value(outcomes.blocked_by_checkpoint) / total, 'blocked')),
    h('td', { class: 'num', 'data-count': value(outcomes.blocked_by_checkpoint) }, text(outcomes.blocked_by_checkpoint))));
  return h('table', { id: 'forecast-actions', class: 'bars' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Reconcile will answer'), h('th', { scope: 'col' }, 'Share'), h('th', { scope: 'col', class: 'num' }, 'Sessions'))),
    h('tbody', {}, rows));
}

// One stacked bar per anchor (its actions in proportion), the largest first.
function anchorTable(anchors) {
  const withSessions = anchors.filter((a) => value(a.sessions) > 0)
    .sort((a, b) => value(b.sessions) - value(a.sessions));
  if (!withSessions.length) return h('p', { id: 'forecast-anchors' }, 'No live sessions at the steps this plan migrates.');
  const row = (a) => {
    const n = Math.max(1, value(a.sessions));
    const parts = ACTIONS.map(([key, label]) => {
      const c = value(a.outcomes[key]);
      return c ? segment(c / n, key, `${label}: ${text(a.outcomes[key])}`) : null;
    });
    const blocked = value(a.outcomes.blocked_by_checkpoint);
    return h('tr', { 'data-step': a.v1_step_id },
      h('th', { scope: 'row' }, a.anchor_name, a.kind === 'anchor' ? '' : h('span', { class: 'muted' }, ` (${a.kind.replace('_', ' ')})`)),
      h('td', { class: 'num' }, text(a.sessions)),
      h('td', {}, h('span', { class: 'bar-track stacked', role: 'img', 'aria-label': ACTIONS.map(([key, label]) => `${label} ${text(a.outcomes[key])}`).join(', ') }, parts)),
      h('td', { class: 'num', 'data-blocked': blocked }, blocked ? text(a.outcomes.blocked_by_checkpoint) : '—'));
  };
  const rest = withSessions.slice(ANCHOR_ROWS);
  const head = () => h('thead', {}, h('tr', {}, ['Anchor', 'Sessions', 'What reconcile will answer', 'Checkpoint blocks'].map((t) => h('th', { scope: 'col' }, t))));
  return h('div', { id: 'forecast-anchors' },
    h('table', { class: 'bars' }, head(), h('tbody', {}, withSessions.slice(0, ANCHOR_ROWS).map(row))),
    rest.length ? h('details', {}, h('summary', {}, `${rest.length} more anchors`), h('table', { class: 'bars' }, head(), h('tbody', {}, rest.map(row)))) : null,
    h('p', { class: 'legend muted' }, ACTIONS.map(([key, label]) => h('span', {}, h('span', { class: `swatch bar-${key}` }), ` ${label} `))));
}

function fieldList(fields) {
  const entries = Object.entries(fields || {}).sort((a, b) => value(b[1]) - value(a[1]));
  if (!entries.length) return h('p', { id: 'forecast-fields' }, 'No session will be asked for a field.');
  return h('ol', { id: 'forecast-fields' }, entries.slice(0, FIELD_ROWS).map(([field, count]) =>
    h('li', { 'data-field': field }, h('code', {}, field), `: ${text(count)} ${value(count) === 1 ? 'session' : 'sessions'}`)));
}
