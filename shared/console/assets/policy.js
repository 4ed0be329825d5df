// A policy of one anchor (or edited step): the editor, with the API's 422s
// shown next to the fields their `loc` names, and the one-line summary of the
// anchors table.

import { api, failed, ApiFailure } from './api.js';
import { h, put, announce, notice, plural, fieldId, SCENARIO_WORDS } from './dom.js';

// Open the editor of the policy of anchor `hash` (named `name`) in `panel`;
// `policy` is its current one (none: the default), `edited` says whether it is an
// edited step's. On save, a message goes to `messages` and `onSaved` runs.
export function openPolicy({ planId, panel, messages, onSaved }, hash, name, policy, edited) {
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
      h('button', { type: 'button', onclick: () => { panel.hidden = true; } }, 'Close')));
  put(panel, h('h2', { id: 'policy-title' }, `Policy: ${name}`), form);
  panel.hidden = false;
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
      panel.hidden = true;
      onSaved();
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

export function policyText(policy) {
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
