// Session preview: what reconcile would do to a session now, asked with
// `dry_run` so nothing is written.

import { api, get, failed, ApiFailure } from './api.js';
import { h, put, show, announce, notice, fmtTime, SCENARIO_WORDS } from './dom.js';

export async function previewPage() {
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

// Names of the steps of the session's version and of the current version.
async function stepNames(session) {
  const names = new Map();
  const sid = session.active_scenario_id;
  const add = (s) => (s.steps || []).forEach((st) => { if (!names.has(st.id)) names.set(st.id, st.name); });
  try { add(await get(`/scenarios/${sid}`)); } catch (_) { /* names are a nicety */ }
  try { add(await get(`/scenarios/${sid}/versions/${session.active_scenario_version}`)); } catch (_) { /* idem */ }
  return names;
}
