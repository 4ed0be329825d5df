// The progress page's charts: marked, applied and pending over time as the page
// sees them (one sample per poll, kept while the page is open), and the flagged
// sessions migrated per minute in the last hour with the drain's ETA, as the
// deployment status reports them (counted by the server, so they survive a reload).

import { h, fmtTime, plural } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 480;
const HEIGHT = 140;
const PAD = 6;
// Samples kept: ten minutes at one poll a second.
const MAX_SAMPLES = 600;
const SERIES = [
  ['sessions_marked', 'marked', 'Marked'],
  ['migrations_applied', 'applied', 'Applied'],
  ['migrations_pending', 'pending', 'Pending'],
];

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child);
  return el;
}

// The samples of one progress page.
export function progressSamples() {
  const samples = [];
  return {
    add(st) {
      samples.push({ at: Date.now(), ...Object.fromEntries(SERIES.map(([field]) => [field, st[field] || 0])) });
      if (samples.length > MAX_SAMPLES) samples.shift();
    },
    all: () => samples,
  };
}

// Lines of marked, applied and pending over the samples' time span.
function overTime(all) {
  // A single sample is drawn as a level line across the chart.
  const samples = all.length === 1 ? [all[0], { ...all[0], at: all[0].at + 1 }] : all;
  const first = samples[0].at;
  const span = Math.max(samples[samples.length - 1].at - first, 1);
  const top = Math.max(1, ...samples.flatMap((x) => SERIES.map(([field]) => x[field])));
  const x = (at) => PAD + ((at - first) / span) * (WIDTH - 2 * PAD);
  const y = (n) => HEIGHT - PAD - (n / top) * (HEIGHT - 2 * PAD);
  const lines = SERIES.map(([field, name]) => s('polyline', {
    class: `line-${name}`,
    'data-last': samples[samples.length - 1][field],
    points: samples.map((p) => `${x(p.at).toFixed(1)},${y(p[field]).toFixed(1)}`).join(' '),
  }));
  return s('svg', { id: 'progress-lines', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-labelledby': 'progress-lines-title' },
    s('title', { id: 'progress-lines-title' }, `Marked, applied and pending since this page opened (at most ${top})`),
    s('line', { class: 'axis', x1: PAD, y1: HEIGHT - PAD, x2: WIDTH - PAD, y2: HEIGHT - PAD }),
    s('text', { class: 'scale', x: PAD + 2, y: PAD + 10 }, String(top)),
    lines);
}

// One bar per minute of the last hour (the current minute last).
function perMinute(drain, now) {
  const minute = 60_000;
  const end = Math.floor(now / minute) * minute;
  const counts = new Map((drain.applied_per_minute || []).map((m) => [Date.parse(m.minute), m.applied]));
  const top = Math.max(1, ...counts.values());
  const slot = (WIDTH - 2 * PAD) / 60;
  const bars = [];
  for (let i = 0; i < 60; i += 1) {
    const n = counts.get(end - (59 - i) * minute) || 0;
    if (!n) continue;
    const height = (n / top) * (HEIGHT - 2 * PAD);
    bars.push(s('rect', { class: 'bar-applied', x: (PAD + i * slot).toFixed(1), y: (HEIGHT - PAD - height).toFixed(1), width: Math.max(slot - 1, 1).toFixed(1), height: height.toFixed(1), 'data-applied': n },
      s('title', {}, `${n} at ${fmtTime(new Date(end - (59 - i) * minute).toISOString())}`)));
  }
  return s('svg', { id: 'applied-per-minute', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-labelledby': 'applied-per-minute-title' },
    s('title', { id: 'applied-per-minute-title' }, `Flagged sessions migrated per minute in the last hour (at most ${top} a minute)`),
    s('line', { class: 'axis', x1: PAD, y1: HEIGHT - PAD, x2: WIDTH - PAD, y2: HEIGHT - PAD }),
    s('text', { class: 'scale', x: PAD + 2, y: PAD + 10 }, `${top} a minute`),
    bars);
}

function drainText(st) {
  const drain = st.drain || {};
  const pace = `${plural(drain.applied_last_hour || 0, 'flagged session')} migrated in the last hour`;
  if (drain.eta) return `${pace}; at that pace the last of ${plural(st.migrations_pending || 0, 'pending session')} will have migrated by ${fmtTime(drain.eta)}.`;
  if (!(st.migrations_pending > 0)) return `${pace}; none pending.`;
  return `${pace}; no estimate while ${st.status === 'deployed' || st.status === 'deploying' ? 'none migrated in the last hour' : `the rollout is ${st.status}`}.`;
}

// How quiet the pending sessions are: they migrate only when their conversation comes back.
function quietText(st) {
  const q = (st.drain || {}).pending_by_last_activity;
  if (!q || !(st.migrations_pending > 0)) return '';
  return `Pending sessions by last activity: ${q.under_1d} today, ${q.from_1d_to_7d} 1–6 days ago, ${q.from_7d_to_30d} 7–29 days ago, ${q.over_30d} 30 days ago or more.`;
}

export function progressChart(samples, st) {
  return h('section', { class: 'panel', id: 'progress-chart', 'aria-label': 'Progress over time' },
    h('h2', {}, 'Progress over time'),
    h('p', { id: 'drain' }, drainText(st)),
    h('p', { id: 'quiet' }, quietText(st)),
    h('div', { class: 'charts' },
      h('figure', {}, overTime(samples.all()),
        h('figcaption', {}, SERIES.map(([, name, label]) => h('span', { class: `key key-${name}` }, label)), ' since this page opened')),
      h('figure', {}, perMinute(st.drain || {}, Date.now()),
        h('figcaption', {}, 'Migrated per minute, last 60 minutes'))));
}
