// The public API client: the operator's identity (tenant in localStorage, an
// optional bearer token for this tab only) and the calls, with the API's
// FastAPI-style errors turned into readable messages.

import { notice } from './dom.js';

const TENANT_KEY = 'focal.console.tenant';
const TOKEN_KEY = 'focal.console.token';
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// ----- identity: tenant (kept in localStorage) and optional bearer token -----

export function tenant() {
  return localStorage.getItem(TENANT_KEY) || '';
}

export function token() {
  // The session's tab only: a bearer token is a credential.
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

// Keep `id` (a UUID) as the tenant of this browser.
export function setTenant(id) {
  localStorage.setItem(TENANT_KEY, id.toLowerCase());
}

// Keep a bearer token for this tab, or forget it when empty.
export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// ----- calls --------------------------------------------------------------------

export class ApiFailure extends Error {
  constructor(status, body) {
    super(describeFailure(status, body));
    this.status = status;
    this.body = body;
  }
}

function describeFailure(status, body) {
  if (body && typeof body === 'object' && 'detail' in body) {
    if (typeof body.detail === 'string') return `${status}: ${body.detail}`;
    if (Array.isArray(body.detail)) {
      return `${status}: ` + body.detail.map((d) => `${(d.loc || []).join('.')}: ${d.msg}`).join('; ');
    }
  }
  return `${status}: ${typeof body === 'string' ? body.slice(0, 200) : 'request failed'}`;
}

export async function api(method, path, body, accept) {
  const headers = { 'X-Tenant-ID': tenant(), Accept: accept || 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = text;
  if ((response.headers.get('content-type') || '').includes('json')) {
    try { data = JSON.parse(text); } catch (_) { data = text; }
  }
  if (!response.ok) throw new ApiFailure(response.status, data);
  return { status: response.status, data, headers: response.headers };
}

export const get = async (path) => (await api('GET', path)).data;

export function failed(error) {
  return notice('error', error instanceof ApiFailure ? error.message : `Could not reach the API: ${error.message}`);
}
