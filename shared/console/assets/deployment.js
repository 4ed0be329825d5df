// After the decision: the deployment's progress (polled until it is deployed)
// and the applied migrations, one event per migrated session.

import { api, get, failed } from './api.js';
import { h, put, show, announce, notice, fmtTime, badge, plural, SCENARIO_WORDS } from './dom.js';

const POLL_MS = 1000;

// ----- deployment progress ------------------------------------------------------

export async function progressPage(planId) {
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
      st.status === 'paused'
        ? notice('warning', `Rollout paused: nothing is applied and marking is stopped. ${plural(st.migrations_pending || 0, 'flagged session')} keep their flags and stay on their version until you resume.`) : null,
      st.status === 'halted'
        ? h('div', { class: 'notice error', role: 'alert', id: 'halt-banner' }, `Rollout halted by its guard: ${st.halt_reason || 'a threshold was crossed'}. Nothing is applied and marking is stopped until you resume.`) : null,
      guardFigures(st),
      rolloutControls(planId, st, () => { clearTimeout(timer); poll(); }),
      done ? h('button', { type: 'button', onclick: () => { clearTimeout(timer); poll(); } }, 'Refresh counts') : null);
    if (st.status === 'deploying' || st.status === 'approved') {
      timer = setTimeout(poll, POLL_MS);
    } else if (done) {
      announce('Deployment finished: deployed');
    }
  }
  poll();
}

// The guard's thresholds against the figures they are checked on.
function guardFigures(st) {
  const guard = st.guard;
  if (!guard) return null;
  const applied = (st.migrations_applied || 0) + (st.migrations_applied_unflagged || 0);
  const rate = (n) => (applied ? (n / applied).toFixed(3) : '—');
  const rows = [];
  if (guard.max_exit_rate != null) rows.push(['Exit rate', rate(st.migrations_exited || 0), guard.max_exit_rate]);
  if (guard.max_checkpoint_block_rate != null) rows.push(['Checkpoint-block rate', rate(st.checkpoint_blocks || 0), guard.max_checkpoint_block_rate]);
  return h('div', { class: 'panel', id: 'guard-figures' },
    h('h2', {}, 'Rollout guard'),
    h('p', { class: 'muted' }, applied >= guard.min_sessions
      ? `Checked after every migration (${applied} applied, from ${guard.min_sessions} on).`
      : `Not checked yet: ${applied} of ${guard.min_sessions} migrations applied.`),
    h('table', {},
      h('thead', {}, h('tr', {}, ['Figure', 'Now', 'Halts above'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map(([k, now, max]) => h('tr', {}, h('td', {}, k), h('td', {}, String(now)), h('td', {}, String(max)))))));
}

// Pause (deploying or deployed) or resume (paused or halted), each behind a confirmation
// that says how many sessions it affects.
function rolloutControls(planId, st, refresh) {
  const pending = st.migrations_pending || 0;
  let action;
  if (st.status === 'deploying' || st.status === 'deployed') {
    action = {
      id: 'pause', label: 'Pause rollout', route: 'pause', kind: 'danger',
      says: `Pausing stops marking and applying at once: ${plural(pending, 'flagged session')} not yet migrated keep their flags and stay on their version; reconcile answers “rollout paused”. Migrations already applied stay.`,
    };
  } else if (st.status === 'paused' || st.status === 'halted') {
    action = {
      id: 'resume', label: 'Resume rollout', route: 'resume', kind: 'primary',
      says: `Resuming lets ${plural(pending, 'flagged session')} migrate on their next message; unfinished marking goes on.`,
    };
  } else {
    return null;
  }
  const box = h('div', { class: 'rollout-controls', id: 'rollout-controls' });
  const ask = () => put(box,
    h('p', { id: `${action.id}-says` }, action.says),
    h('button', { type: 'button', class: action.kind, id: `${action.id}-confirm`, onclick: async (e) => {
      e.target.disabled = true;
      try {
        await api('POST', `/migration-plans/${planId}/${action.route}`);
        announce(action.id === 'pause' ? 'Rollout paused' : 'Rollout resumed');
        refresh();
      } catch (error) {
        e.target.disabled = false;
        box.append(failed(error));
      }
    } }, `Confirm: ${action.label.toLowerCase()}`),
    ' ',
    h('button', { type: 'button', id: `${action.id}-cancel`, onclick: () => put(box, first()) }, 'Cancel'));
  const first = () => h('button', { type: 'button', class: action.kind, id: `${action.id}-button`, onclick: ask }, action.label);
  put(box, first());
  return box;
}

// ----- events ---------------------------------------------------------------------

export async function eventsPage(planId) {
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
