// After the decision: the deployment's progress (polled until it is deployed)
// and the applied migrations, one event per migrated session.

import { api, get, failed } from './api.js';
import { h, put, show, announce, notice, fmtTime, badge, plural, navigate, SCENARIO_WORDS } from './dom.js';
import { progressChart, progressSamples } from './chart.js';

const POLL_MS = 1000;
// Once deployed, flagged sessions migrate as their customers come back: the
// page keeps following the drain, at a slower pace.
const DRAIN_POLL_MS = 10_000;

// ----- deployment progress ------------------------------------------------------

export async function progressPage(planId) {
  document.title = 'Deployment progress · Migrations console';
  const body = h('div', { id: 'progress' }, h('p', {}, 'Loading…'));
  show(h('h1', {}, 'Deployment progress'),
    h('p', {}, h('a', { href: `/console/plans/${planId}` }, 'Back to the plan review'), ' · ', h('a', { href: `/console/plans/${planId}/events` }, 'Applied migrations (events)')),
    body);
  let timer = null;
  const here = location.pathname;
  const refresh = () => { clearTimeout(timer); poll(); };
  // The controls outlive a poll while a confirmation is open and the rollout
  // has not changed: a count read a second later must not close the question.
  const controls = { element: null, key: '', latest: null };
  const samples = progressSamples();
  let announced = '';
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
    if (location.pathname !== here) return;
    controls.latest = st;
    samples.add(st);
    const marked = st.sessions_marked || 0;
    const applied = st.migrations_applied || 0;
    const percent = st.percent ?? 100;
    const by = st.migrations_by_scenario || {};
    const numbers = [
      ['Rollout', `${percent}%`],
      ['Sessions marked', marked], ['Migrations applied', applied], ['Pending', st.migrations_pending],
      ['Applied without a flag', st.migrations_applied_unflagged || 0], ['Clean graft', by.clean_graft || 0],
      ['Gap fill', by.gap_fill || 0], ['Re-route', by.re_route || 0], ['Checkpoint blocks', st.checkpoint_blocks],
      ['Outcomes reported', st.reported_outcomes || 0], ['Reported failures', st.reported_failures || 0],
      ['Failed marking pages', st.pages_failed || 0], ['Resumptions', st.resumptions || 0],
    ];
    if (st.status === 'withdrawing' || st.status === 'withdrawn' || (st.flags_withdrawn || 0) > 0) {
      numbers.splice(4, 0, ['Flags withdrawn', st.flags_withdrawn || 0]);
    }
    const done = st.status === 'deployed';
    const key = `${st.status}|${percent}`;
    if (!(controls.element && controls.key === key && controls.element.dataset.asking)) {
      controls.key = key;
      controls.element = rolloutControls(planId, () => controls.latest, refresh);
    }
    put(body,
      h('p', { class: 'deploy-status' }, 'Status: ', badge(st.status),
        h('span', { id: 'rollout-percent' }, reach(st.status, percent)),
        done ? (percent < 100
          ? ` — every session of the ${percent}% cohort is marked; they migrate when their customers next write. The others stay on the current version until a ramp.`
          : ` — every eligible session is marked; they migrate when their customers next write.`) : ''),
      h('label', { for: 'applied-progress' }, `Migrations applied: ${applied} of ${marked} marked sessions`),
      h('progress', { id: 'applied-progress', max: Math.max(marked, 1), value: Math.min(applied, Math.max(marked, 1)) }),
      h('dl', { class: 'numbers', id: 'progress-numbers' }, numbers.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, String(v ?? 0))))),
      h('p', { class: 'muted' }, `Deployed at: ${fmtTime(st.deployed_at)} · last marking progress: ${fmtTime(st.last_progress_at)} · last migration: ${fmtTime(st.last_migration_at)}`),
      (st.pages_failed || 0) > 0 && (st.status === 'deploying' || st.status === 'withdrawing')
        ? notice('error', `${plural(st.pages_failed, 'marking page')} failed: re-drive the dead-letter queue (docs/operations.md, “Marking fan-out”).`) : null,
      st.status === 'paused'
        ? notice('warning', `Rollout paused: nothing is applied and marking is stopped. ${plural(st.migrations_pending || 0, 'flagged session')} keep their flags and stay on their version until you resume.`) : null,
      st.status === 'halted'
        ? h('div', { class: 'notice error', role: 'alert', id: 'halt-banner' }, `Rollout halted by its guard: ${st.halt_reason || 'a threshold was crossed'}. Nothing is applied and marking is stopped until you resume.`) : null,
      st.status === 'withdrawing'
        ? h('div', { class: 'notice warning', role: 'status', id: 'withdrawing-banner' }, `Withdrawing the rollout: nothing more is applied, and the flags not yet applied are being cleared (${st.flags_withdrawn || 0} so far, ${plural(st.migrations_pending || 0, 'flag')} left).`) : null,
      st.status === 'withdrawn'
        ? h('div', { class: 'notice ok', role: 'status', id: 'withdrawn-banner' }, `Rollout withdrawn: ${plural(st.flags_withdrawn || 0, 'flag')} cleared before they were applied; the from-version is current again. Sessions migrated before the withdrawal stay on the new version (${applied + (st.migrations_applied_unflagged || 0)}).`) : null,
      progressChart(samples, st),
      guardFigures(st),
      controls.element,
      st.status === 'withdrawn' ? returnPlan(planId) : null,
      done ? h('button', { type: 'button', onclick: refresh }, 'Refresh counts') : null);
    if (st.status === 'deploying' || st.status === 'approved' || st.status === 'withdrawing') {
      timer = setTimeout(poll, POLL_MS);
    } else if (done && (st.migrations_pending || 0) > 0) {
      timer = setTimeout(poll, DRAIN_POLL_MS);
    }
    const said = done ? `Deployment finished: deployed at ${percent}%` : st.status === 'withdrawn' ? 'Rollout withdrawn' : '';
    if (said && said !== announced) announce(said);
    announced = said;
  }
  poll();
}

// How far the rollout reaches, said for its status.
function reach(status, percent) {
  if (status === 'withdrawing' || status === 'withdrawn') return ` · was rolled out to ${percent}% of the sessions`;
  if (status === 'pending' || status === 'approved') return '';
  return percent < 100 ? ` · reaches ${percent}% of the sessions` : ' · reaches every session (100%)';
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
  if (guard.max_reported_failure_rate != null) rows.push(['Reported failure rate', rate(st.reported_failures || 0), guard.max_reported_failure_rate]);
  return h('div', { class: 'panel', id: 'guard-figures' },
    h('h2', {}, 'Rollout guard'),
    h('p', { class: 'muted' }, applied >= guard.min_sessions
      ? `Checked after every migration (${applied} applied, from ${guard.min_sessions} on).`
      : `Not checked yet: ${applied} of ${guard.min_sessions} migrations applied.`),
    h('table', {},
      h('thead', {}, h('tr', {}, ['Figure', 'Now', 'Halts above'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map(([k, now, max]) => h('tr', {}, h('td', {}, k), h('td', {}, String(now)), h('td', {}, String(max)))))),
    h('p', { id: 'reported-outcomes' },
      `Outcomes reported by the runtime: ${st.reported_outcomes || 0}, of which ${st.reported_failures || 0} failed`,
      guard.max_reported_failure_rate != null
        ? ` (${st.reported_failures || 0} of ${applied} applied migrations; halts above ${guard.max_reported_failure_rate}).`
        : '.'));
}

// One action behind a confirmation: the first button asks, the question says
// what the action does to how many sessions, then Confirm or Cancel.
function confirmed(box, action) {
  const first = () => h('div', { class: 'control', id: `${action.id}-control` },
    action.input || null,
    h('button', { type: 'button', class: action.kind, id: `${action.id}-button`, onclick: ask }, action.label));
  function ask() {
    const problem = action.check ? action.check() : null;
    if (problem) {
      put(part, first(), notice('error', problem));
      return;
    }
    box.dataset.asking = action.id;
    put(part, h('div', { class: 'control asking' },
      h('p', { id: `${action.id}-says` }, action.says()),
      h('button', { type: 'button', class: action.kind, id: `${action.id}-confirm`, onclick: async (e) => {
        e.target.disabled = true;
        try {
          await action.run();
          delete box.dataset.asking;
          announce(action.done);
          action.refresh();
        } catch (error) {
          e.target.disabled = false;
          part.append(failed(error));
        }
      } }, `Confirm: ${action.confirm ? action.confirm() : action.label.toLowerCase()}`),
      ' ',
      h('button', { type: 'button', id: `${action.id}-cancel`, onclick: () => { delete box.dataset.asking; put(part, first()); } }, 'Cancel')));
  }
  const part = h('div', {}, first());
  return part;
}

// Pause (deploying or deployed) or resume (paused or halted); ramp a partial
// rollout that is deployed; withdraw it (deploying, deployed, paused, halted).
// Each behind a confirmation that says how many sessions it affects, read from
// `latest()` (the newest status) when the question is asked.
function rolloutControls(planId, latest, refresh) {
  const st = latest();
  const box = h('div', { class: 'rollout-controls', id: 'rollout-controls' });
  const pending = () => latest().migrations_pending || 0;
  // Who acts, kept in the plan's history with each change (optional).
  const actor = h('input', { id: 'rollout-by', size: 20, maxlength: 200, autocomplete: 'name' });
  const post = (route, body = {}) => {
    const by = actor.value.trim();
    return api('POST', `/migration-plans/${planId}/${route}`, by ? { ...body, by } : body);
  };
  const parts = [h('div', { class: 'field inline' }, h('label', { for: 'rollout-by' }, 'Acting as'), actor)];
  if (st.status === 'deploying' || st.status === 'deployed') {
    parts.push(confirmed(box, {
      id: 'pause', label: 'Pause rollout', kind: 'danger', refresh, done: 'Rollout paused',
      says: () => `Pausing stops marking and applying at once: ${plural(pending(), 'flagged session')} not yet migrated keep their flags and stay on their version; reconcile answers “rollout paused”. Migrations already applied stay.`,
      run: () => post('pause'),
    }));
  } else if (st.status === 'paused' || st.status === 'halted') {
    parts.push(confirmed(box, {
      id: 'resume', label: 'Resume rollout', kind: 'primary', refresh, done: 'Rollout resumed',
      says: () => `Resuming lets ${plural(pending(), 'flagged session')} migrate on their next message; unfinished marking goes on.`,
      run: () => post('resume'),
    }));
  }
  const percent = st.percent ?? 100;
  if (st.status === 'deployed' && percent < 100) {
    const input = h('input', { type: 'number', id: 'ramp-percent', min: percent + 1, max: 100, step: 1, value: 100, size: 4 });
    const wanted = () => Number(input.value);
    parts.push(confirmed(box, {
      id: 'ramp', label: 'Ramp', kind: 'primary', refresh, done: 'Rollout ramped',
      input: h('span', { class: 'field inline' }, h('label', { for: 'ramp-percent' }, `Ramp from ${percent}% to`), input, '%'),
      check: () => (Number.isInteger(wanted()) && wanted() > percent && wanted() <= 100
        ? null : `Give a whole percent above ${percent} and at most 100.`),
      says: () => (wanted() === 100
        ? `Ramping to 100% marks every remaining eligible session and makes the new version current for all sessions. Sessions already in the ${percent}% cohort stay in it.`
        : `Ramping to ${wanted()}% marks the sessions the wider cohort adds (the ${percent}% cohort stays inside it); the current version stays current for the others.`),
      confirm: () => `ramp to ${wanted()}%`,
      run: () => post('deploy', { percent: wanted() }),
    }));
  }
  if (['deploying', 'deployed', 'paused', 'halted'].includes(st.status)) {
    parts.push(confirmed(box, {
      id: 'withdraw', label: 'Withdraw rollout', kind: 'danger', refresh, done: 'Withdrawing the rollout',
      says: () => `Withdrawing takes the rollout back: nothing more is applied, the flags of ${plural(pending(), 'flagged session')} not yet migrated are cleared, and the from-version becomes current again. Sessions already migrated stay on the new version. This cannot be undone; a later plan must go to a higher version.`,
      run: () => post('withdraw'),
    }));
  }
  if (parts.length === 1) return null;
  put(box, ...parts);
  return box;
}

// After a withdrawal: a plan from the current version (the from-version again)
// back to its own content, as the next version number. An ordinary plan to
// review like any other.
function returnPlan(planId) {
  const messages = h('div', { 'aria-live': 'polite' });
  return h('div', { class: 'panel', id: 'return-plan' },
    h('p', {}, 'Sessions that migrated before the withdrawal are still on the withdrawn version. A return plan proposes the from-version’s steps again as a new version, to review like any plan.'),
    h('button', { type: 'button', class: 'primary', id: 'return-plan-button', onclick: async (e) => {
      e.target.disabled = true;
      try {
        const plan = await get(`/migration-plans/${planId}`);
        const sid = plan.scenario_id;
        const [current, from] = await Promise.all([
          get(`/scenarios/${sid}`),
          get(`/scenarios/${sid}/versions/${plan.from_version}`),
        ]);
        const version = Math.max(plan.to_version, current.version) + 1;
        const content = { name: from.name, version, entry_step_id: from.entry_step_id, steps: from.steps };
        if (from.description != null) content.description = from.description;
        const created = await api('POST', `/scenarios/${sid}/migration-plan`, { new_scenario: content });
        announce(`Return plan to version ${version} prepared`);
        navigate(`/console/plans/${created.data.id}`);
      } catch (error) {
        e.target.disabled = false;
        put(messages, failed(error));
      }
    } }, 'Prepare a return plan'),
    messages);
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
