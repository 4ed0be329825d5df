// Common UI: building elements, placing them in the page, and the small
// formatting every page shares. Text always goes in as text nodes (`h` appends
// strings with `append`, which never parses markup): the API's data is user input.

export const SCENARIO_WORDS = { clean_graft: 'clean graft', gap_fill: 'gap fill', re_route: 're-route' };

export function h(tag, attrs, ...children) {
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
export function put(el, ...nodes) {
  el.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

export function show(...nodes) {
  const m = main();
  put(m, ...nodes);
}

export function announce(text) {
  const s = document.getElementById('status');
  if (s) s.textContent = text;
}

export function notice(kind, text) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

export function fmtTime(value) {
  if (!value) return '—';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function badge(status) {
  return h('span', { class: `badge ${status}`, 'data-status': status }, status);
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function fieldId(name) {
  return 'f-' + name.replace(/[^a-z0-9_]+/gi, '-');
}

// ----- navigation without a reload ---------------------------------------------

// The router lives in the entry module, which imports every page; the pages
// reach it through this hook rather than importing the entry back.
let router = () => {};

// Which function shows the page of the current location (set once at start).
export function onNavigate(showPage) {
  router = showPage;
}

export function navigate(path) {
  history.pushState({}, '', path);
  router();
}
