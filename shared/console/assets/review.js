// The plan review: the plan, its summary, both diagrams, the anchors and their
// policies, warnings and fields to collect; approve, reject or deploy it.

import { api, get, failed } from './api.js';
import { h, put, show, announce, badge, plural, fmtTime, navigate, SCENARIO_WORDS } from './dom.js';
import { planDiagrams } from './diagram.js';
import { openPolicy as openPolicyEditor, policyText } from './policy.js';
import { forecastSection } from './forecast.js';

const SEVERITIES = ['critical', 'warning', 'info'];

export async function reviewPage(planId) {
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
  const diagrams = planDiagrams(planId, plan);
  const anchorsState = { tokens: [null], page: null };
  const policyPanel = h('section', { id: 'policy-editor', 'aria-labelledby': 'policy-title', hidden: true });
  const forecast = forecastSection(planId);

  // The summary and the forecast come before the decision: what approving
  // will do to the live sessions is read before the Approve button.
  show(
    h('h1', {}, `${plan.scenario_name}: v${plan.from_version} → v${plan.to_version} `, badge(plan.status)),
    planMeta(plan),
    messages,
    h('h2', {}, 'Summary'),
    summaryNumbers(summary),
    forecast.element,
    actionsPanel(plan, summary, messages),
    historyPanel(plan),
    h('h2', {}, 'Diagrams'),
    diagrams.section(),
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
  forecast.load();
  diagrams.draw();

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
    for (const a of page.anchors) diagrams.addAnchor(a.anchor_content_hash, a.anchor_name);
    const counts = summary.sessions_by_anchor || {};
    const rows = page.anchors.map((a) => {
      const policy = page.anchor_policies[a.anchor_content_hash];
      return h('tr', { 'data-anchor': a.anchor_content_hash },
        h('th', { scope: 'row' }, a.anchor_name),
        h('td', { class: `scenario-${a.migration_scenario}` }, SCENARIO_WORDS[a.migration_scenario] || a.migration_scenario),
        h('td', { class: 'num' }, counts[a.anchor_content_hash] ?? 0),
        h('td', {}, policyText(policy)),
        h('td', {},
          h('button', { type: 'button', onclick: () => diagrams.centre(a.anchor_content_hash, a.anchor_name), 'aria-label': `Centre the diagrams on ${a.anchor_name}` }, 'Centre diagram'),
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
    // A saved policy changes the plan's revision, and the forecast with it.
    const onSaved = () => { loadAnchors(); forecast.load(); };
    openPolicyEditor({ planId, panel: policyPanel, messages, onSaved }, hash, name, policy, edited);
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

// The plan's status changes, oldest first, with who asked for each.
function historyPanel(plan) {
  const records = plan.transitions || [];
  if (!records.length) return null;
  const detail = (r) => [r.percent != null ? `${r.percent}%` : '', r.reason || ''].filter(Boolean).join(' · ');
  return h('section', { class: 'panel', id: 'history', 'aria-label': 'History' },
    h('h2', {}, 'History'),
    h('table', {},
      h('thead', {}, h('tr', {}, ['When', 'Change', 'By', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, records.map((r) => h('tr', {},
        h('td', {}, fmtTime(r.at)),
        h('td', {}, `${r.from} → ${r.to}`),
        h('td', {}, r.by || '—'),
        h('td', {}, detail(r)))))));
}

function actionsPanel(plan, summary, messages) {
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
    const eligible = summary.estimated_sessions_affected || 0;
    const percent = h('input', { type: 'range', id: 'deploy-percent', name: 'percent', min: 1, max: 100, step: 1, value: 100, 'aria-describedby': 'deploy-cohort' });
    const cohort = h('output', { id: 'deploy-cohort', for: 'deploy-percent' });
    const explain = h('p', { id: 'deploy-explain' });
    const describe = () => {
      const p = Number(percent.value);
      cohort.textContent = `${p}% — ≈ ${Math.round((eligible * p) / 100)} of ${plural(eligible, 'eligible session')}`;
      explain.textContent = p === 100
        ? 'Approved. Deploying activates the new version and marks the sessions to migrate.'
        : `Approved. Deploying to ${p}% marks only that cohort (a stable share of the sessions, decided per session); the current version stays current for the others until you ramp the rollout to 100% from the progress page.`;
    };
    percent.addEventListener('input', describe);
    percent.addEventListener('change', describe);
    describe();
    panel.append(explain,
      h('div', { class: 'field percent-field' }, h('label', { for: 'deploy-percent' }, 'Sessions to reach'), h('div', { class: 'row' }, percent, cohort)),
      h('button', { type: 'button', class: 'primary', id: 'deploy-button', onclick: async (e) => {
        e.target.disabled = true;
        try {
          await api('POST', `/migration-plans/${plan.id}/deploy`, { percent: Number(percent.value) });
          navigate(`/console/plans/${plan.id}/progress`);
        } catch (error) {
          e.target.disabled = false;
          put(messages, failed(error));
        }
      } }, 'Deploy'));
  } else {
    const rolled = ['deploying', 'deployed', 'paused', 'halted', 'withdrawing', 'withdrawn'].includes(plan.status);
    panel.append(h('p', {}, 'Status: ', badge(plan.status),
      rolled && plan.percent != null && plan.percent < 100 ? ` · rolled out to ${plan.percent}% of the sessions` : '',
      rolled ? (plan.status.startsWith('withdraw') ? ' · see the ' : ' · pause, ramp or withdraw it on the ') : '',
      rolled ? h('a', { href: `/console/plans/${plan.id}/progress` }, 'deployment progress page') : ''));
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
