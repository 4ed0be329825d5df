// The review's two diagrams (V1 before, V2 after), drawn by the server as SVG
// and placed in the page; the anchors in them are buttons that centre both
// diagrams on that anchor.

import { api, failed } from './api.js';
import { h, put } from './dom.js';

// The diagrams of one plan: `section()` builds their controls and frames,
// `draw()` (re)draws both, `addAnchor(hash, name)` offers an anchor in the
// "Centre on anchor" list, `centre(hash, name)` centres both diagrams on it.
export function planDiagrams(planId, plan) {
  const diagramState = { anchor: '', radius: 3 };
  return { section: diagramSection, draw: drawDiagrams, addAnchor: ensureAnchorOption, centre };

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
        // Unique title ids per side: both diagrams live in one document (their
        // arrowheads' ids already differ, by version).
        const node = document.importNode(svg, true);
        node.querySelectorAll('title#diagram-title').forEach((t) => { t.id = `diagram-title-${side}`; });
        node.setAttribute('aria-labelledby', `diagram-title-${side}`);
        // Anchors are buttons: click, or Tab to one and press Enter or Space.
        node.querySelectorAll('g.step[data-anchor]').forEach((g) => {
          const name = g.querySelector('text') ? g.querySelector('text').textContent : g.getAttribute('data-anchor');
          const activate = () => centre(g.getAttribute('data-anchor'), name);
          g.setAttribute('tabindex', '0');
          g.setAttribute('role', 'button');
          g.setAttribute('aria-label', `Centre the diagrams on ${name}`);
          g.addEventListener('click', activate);
          g.addEventListener('keydown', (e) => {
            if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); activate(); }
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

  function centre(hash, name) {
    diagramState.anchor = hash;
    ensureAnchorOption(hash, name);
    document.getElementById('diagram-anchor').value = hash;
    drawDiagrams();
  }
}
