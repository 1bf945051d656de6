// The scimlink console: plain JavaScript over the admin API, served by the
// host under /console. Every call goes to /console/api/v1, the admin API
// behind the session cookie; every call that changes state carries the
// session's CSRF token. Pages are built with DOM calls only (no innerHTML),
// so nothing the directory or an application holds is ever read as markup.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
const main = document.getElementById('main');
const notice = document.getElementById('notice');

// The operations the audit trail records, with the seeds' names.
const OPERATIONS = [
  'idm_integration_activate', 'idm_integration_update', 'idm_integration_reauth',
  'idm_integration_delete', 'idm_integration_quarantine', 'idm_integration_resume',
  'user_lookup_provision', 'user_create_provision', 'user_update_provision',
  'user_password_provision', 'user_deprovision', 'user_delete_provision',
  'user_import', 'user_release', 'group_create_provision', 'group_update_provision',
  'group_delete_provision', 'deprovision_held', 'deprovision_approved',
  'deprovision_rejected', 'dead_letter_replay', 'sync_failed', 'sync_gave_up', 'reconcile',
];

class ApiFailure extends Error {
  constructor(status, error) {
    super(error?.message ?? `the host answered ${status}`);
    this.status = status;
    this.code = error?.code;
    this.field = error?.field;
  }
}

async function api(method, path, body, { poll = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  // A page refreshing itself says so: it does not keep the session alive.
  if (poll) headers['X-Console-Poll'] = '1';
  let payload;
  if (body instanceof Blob) {
    payload = body;
    headers['Content-Type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(`/console/api/v1${path}`, {
    method, headers, body: payload, credentials: 'same-origin',
  });
  if (response.status === 401) {
    window.location.assign('/console/sign-in');
    throw new ApiFailure(401, { message: 'the session has ended' });
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: { message: text } }; }
  if (!response.ok) throw new ApiFailure(response.status, data?.error);
  return data;
}

const get = (path) => api('GET', path);
const poll = (path) => api('GET', path, undefined, { poll: true });
const post = (path, body) => api('POST', path, body ?? {});
const enc = encodeURIComponent;

// Every item of a paged list, a thousand at a time.
async function all(path) {
  const items = [];
  const join = path.includes('?') ? '&' : '?';
  for (;;) {
    const page = await get(`${path}${join}offset=${items.length}&limit=1000`);
    items.push(...page.items);
    if (page.items.length === 0 || items.length >= page.total) return items;
  }
}

// h('p', {class: 'x'}, 'text', child): an element; strings become text.
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function say(text, kind = 'info') {
  notice.replaceChildren(h('p', { class: kind }, text));
  clearTimeout(say.timer);
  say.timer = setTimeout(() => notice.replaceChildren(), 8000);
}

function failure(error) {
  say(error instanceof ApiFailure ? error.message : String(error), 'error');
}

// Runs `work` for a button: disabled while it runs, failures said.
function action(label, work, attributes = {}) {
  const button = h('button', { type: 'button', ...attributes }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try { await work(button); } catch (error) { failure(error); } finally { button.disabled = false; }
  });
  return button;
}

// '1 account', '2 accounts'.
function count(number, one, many = `${one}s`) {
  return `${number} ${number === 1 ? one : many}`;
}

function when(text) {
  if (!text) return '—';
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? text : at.toLocaleString();
}

function field(label, input, help) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  const parts = [h('label', { for: id }, label), input];
  if (help) {
    const helpId = `${id}-help`;
    input.setAttribute('aria-describedby', helpId);
    parts.push(h('p', { class: 'help', id: helpId }, help));
  }
  return h('div', { class: 'field' }, parts);
}

function table(caption, headings, rows, empty = 'None.') {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'scroll', role: 'region', 'aria-label': caption, tabindex: 0 },
    h('table', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, headings.map((heading) => h('th', { scope: 'col' }, heading)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell)))))));
}

const BADGES = {
  inactive: 'Configured, inactive',
  active: 'Active',
  attention: 'Needs attention',
  quarantined: 'Quarantined',
};

function badge(overview) {
  return h('span', { class: `badge ${overview.badge}`, title: overview.badgeReason ?? '' },
    BADGES[overview.badge] ?? overview.badge);
}

function outcome(value) {
  return h('span', { class: `outcome ${value}` }, value);
}

// Timers that belong to the page shown: stopped when another is shown.
let timers = [];
function every(milliseconds, work) {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try { await work(); } catch (error) { if (error?.status !== 401) console.warn(error); } finally { running = false; }
  };
  timers.push(setInterval(tick, milliseconds));
  tick();
}

function show(title, ...content) {
  for (const timer of timers) clearInterval(timer);
  timers = [];
  document.title = `${title} · scimlink`;
  main.replaceChildren(h('h1', {}, title), ...content);
  main.focus({ preventScroll: true });
  for (const link of document.querySelectorAll('header nav a')) {
    const current = window.location.hash.startsWith(link.getAttribute('href'));
    if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
}

// ---------------------------------------------------------------- applications

async function applicationsPage(view) {
  const apps = await all('/apps');
  const rows = h('tbody');
  const listing = apps.length === 0
    ? h('p', { class: 'empty' }, 'No application yet.')
    : h('div', { class: 'scroll', role: 'region', 'aria-label': 'Applications', tabindex: 0 },
      h('table', {},
        h('caption', {}, 'Configured applications'),
        h('thead', {}, h('tr', {}, ['Application', 'Provisioning', 'Connector', 'Accounts linked',
          'Last activity', 'Failures (24 h)'].map((heading) => h('th', { scope: 'col' }, heading)))),
        rows));
  view.show('Applications',
    h('p', {}, h('a', { href: '#/apps/new', class: 'button' }, 'Add an application')),
    listing);
  view.every(3000, async () => {
    const overviews = await Promise.all(apps.map((app) => poll(`/apps/${enc(app.name)}/overview`)));
    rows.replaceChildren(...overviews.map((overview) => h('tr', {},
      h('td', {}, h('a', { href: `#/apps/${enc(overview.name)}` }, overview.label)),
      h('td', {}, badge(overview), overview.badgeReason ? h('span', { class: 'reason' }, ` ${overview.badgeReason}`) : null),
      h('td', {}, overview.connector, ' ', overview.connectorVersion ?? '(not served)'),
      h('td', {}, `${overview.usersLinked} of ${overview.usersInScope} users in scope`),
      h('td', {}, when(overview.lastActivity)),
      h('td', {}, String(overview.failures24h)))));
  });
}

function fillTemplate(template, settings) {
  return template.replace(/\{([a-zA-Z0-9_.-]+)\}/g, (whole, key) => settings[key] || whole);
}

async function applicationForm(view, name) {
  const [plugins, current] = await Promise.all([
    all('/plugins'),
    name ? get(`/apps/${enc(name)}`) : Promise.resolve(null),
  ]);
  const problem = h('div', { role: 'alert', class: 'problems' });
  const inputs = {};
  const connector = h('select', { id: 'connector', name: 'connector', disabled: !!current });
  for (const plugin of plugins) {
    connector.append(h('option', { value: plugin.name, selected: current?.connector === plugin.name },
      `${plugin.name} ${plugin.version}`));
  }
  const description = h('p', { class: 'help', id: 'connector-help' });
  connector.setAttribute('aria-describedby', 'connector-help');
  inputs.name = h('input', { id: 'name', name: 'name', required: true, pattern: '[a-z0-9\\-]{1,63}', value: current?.name ?? '', readonly: !!current, autocomplete: 'off' });
  inputs.label = h('input', { id: 'label', name: 'label', value: current?.label ?? '' });
  inputs.baseUrl = h('input', { id: 'baseUrl', name: 'baseUrl', type: 'text', inputmode: 'url', value: current?.baseUrl ?? '', autocomplete: 'off' });
  const resolved = h('output', { id: 'resolved', for: 'baseUrl', 'aria-live': 'polite' });
  inputs.token = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'new-password', required: !current });
  inputs.manageGroups = h('input', { id: 'manageGroups', type: 'checkbox', checked: current ? current.manageGroups : true });
  inputs.guardPercent = h('input', { id: 'guardPercent', type: 'number', min: 0, max: 100, step: 'any', value: current?.guard?.percent ?? '' });
  inputs.guardMinimum = h('input', { id: 'guardMinimum', type: 'number', min: 0, step: 1, value: current?.guard?.minimum ?? '' });
  const settingsBox = h('fieldset', {}, h('legend', {}, 'Settings'));
  let settingInputs = {};
  let template = null;

  const settingsNow = () => Object.fromEntries(Object.entries(settingInputs)
    .map(([key, input]) => [key, input.value.trim()]).filter(([, value]) => value !== ''));
  const updateResolved = () => {
    const url = inputs.baseUrl.value.trim() || template || '';
    resolved.value = url ? `Requests go to ${fillTemplate(url, settingsNow())}` : '';
  };
  const chooseConnector = () => {
    const plugin = plugins.find((candidate) => candidate.name === connector.value);
    description.textContent = plugin?.description ?? '';
    template = plugin?.baseUrlTemplate ?? plugin?.base_url_template ?? null;
    if (!current) inputs.baseUrl.placeholder = template ?? 'https://scim.example.com/v2';
    settingInputs = {};
    settingsBox.replaceChildren(h('legend', {}, 'Settings'));
    for (const setting of plugin?.settings ?? []) {
      const input = h('input', {
        id: `setting-${setting.key}`, name: setting.key, required: setting.required,
        value: current?.settings?.[setting.key] ?? '', autocomplete: 'off',
      });
      input.addEventListener('input', updateResolved);
      settingInputs[setting.key] = input;
      settingsBox.append(field(`${setting.key}${setting.required ? ' (required)' : ''}`, input, setting.description));
    }
    if (!plugin?.settings?.length) settingsBox.append(h('p', { class: 'help' }, 'This connector takes no settings.'));
    updateResolved();
  };
  connector.addEventListener('change', chooseConnector);
  inputs.baseUrl.addEventListener('input', updateResolved);

  // The guard's overrides as a whole: the window the form does not show is
  // kept; both fields emptied go back to the host's defaults.
  const guard = () => {
    const percent = inputs.guardPercent.value === '' ? undefined : Number(inputs.guardPercent.value);
    const minimum = inputs.guardMinimum.value === '' ? undefined : Number(inputs.guardMinimum.value);
    const windowSeconds = current?.guard?.windowSeconds;
    if (percent === undefined && minimum === undefined) {
      const had = current && Object.keys(current.guard ?? {}).length > 0;
      return had ? (windowSeconds === undefined ? {} : { windowSeconds }) : undefined;
    }
    return { percent, minimum, windowSeconds };
  };
  const showProblem = (error) => {
    for (const input of document.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
    const key = error.field?.replace(/^settings\./, 'setting-');
    const target = key ? document.getElementById(key) : null;
    if (target) {
      target.setAttribute('aria-invalid', 'true');
      target.focus();
    }
    problem.replaceChildren(h('p', { class: 'error' }, error.message));
  };
  const testResult = h('div', { 'aria-live': 'polite', class: 'test-result' });
  const test = action('Test the connection', async () => {
    testResult.replaceChildren(h('p', {}, 'Testing…'));
    const body = {
      app: current?.name, connector: connector.value,
      baseUrl: inputs.baseUrl.value.trim() || undefined,
      settings: { ...Object.fromEntries(Object.entries(current?.settings ?? {}).filter(([key]) => !(key in settingInputs))), ...settingsNow() },
      token: inputs.token.value || undefined,
    };
    try {
      const result = await post('/connection-test', body);
      testResult.replaceChildren(h('p', { class: result.ok ? 'ok' : 'error' },
        result.ok ? 'The connection works: ' : 'The connection fails: ', result.summary,
        result.httpStatus ? ` (HTTP ${result.httpStatus})` : ''));
    } catch (error) {
      testResult.replaceChildren();
      showProblem(error);
    }
  });
  const save = async (activate) => {
    problem.replaceChildren();
    try {
      let saved;
      if (current) {
        // Settings the connector does not declare (set through the API or
        // the CLI) are not on the form: they are kept as they are.
        const undeclared = Object.fromEntries(Object.entries(current.settings ?? {})
          .filter(([key]) => !(key in settingInputs)));
        const change = {
          label: inputs.label.value.trim() || undefined,
          baseUrl: inputs.baseUrl.value.trim() || undefined,
          settings: { ...undeclared, ...settingsNow() },
          manageGroups: inputs.manageGroups.checked,
          guard: guard(),
        };
        if (inputs.token.value) change.token = inputs.token.value;
        saved = await api('PATCH', `/apps/${enc(current.name)}`, change);
      } else {
        saved = await post('/apps', {
          name: inputs.name.value.trim(), label: inputs.label.value.trim() || undefined,
          connector: connector.value, baseUrl: inputs.baseUrl.value.trim() || undefined,
          token: inputs.token.value, settings: settingsNow(),
          manageGroups: inputs.manageGroups.checked, guard: guard(),
        });
      }
      inputs.token.value = '';
      if (activate) await post(`/apps/${enc(saved.name)}/activate`);
      say(activate ? `${saved.name} is saved and active.` : `${saved.name} is saved.`, 'ok');
      window.location.hash = `#/apps/${enc(saved.name)}`;
    } catch (error) {
      showProblem(error);
    }
  };
  const form = h('form', { class: 'app-form', onsubmit: (event) => { event.preventDefault(); save(false); } },
    field('Connector', connector),
    description,
    field('Name', inputs.name, 'a-z, 0-9 and -: the application\'s name in the CLI, the API and events.'),
    field('Label', inputs.label, 'What people call it; the name when empty.'),
    settingsBox,
    field('Base URL', inputs.baseUrl, 'The SCIM base URL. Empty: the connector\'s own, filled from the settings.'),
    resolved,
    field('Token', inputs.token, current
      ? 'Write-only: never shown back. Leave empty to keep the current token.'
      : 'The application\'s SCIM bearer token. Write-only: never shown back.'),
    h('div', { class: 'field check' }, inputs.manageGroups, h('label', { for: 'manageGroups' }, 'Manage groups: push bound groups and their members')),
    h('fieldset', {}, h('legend', {}, 'Deprovisioning guard (empty: the host\'s defaults)'),
      field('Hold offboardings past this share of accounts (%)', inputs.guardPercent),
      field('…and past this many offboardings', inputs.guardMinimum)),
    problem,
    h('div', { class: 'actions' }, test,
      h('button', { type: 'submit' }, 'Save'),
      action('Save and activate', () => save(true))),
    testResult);
  view.show(current ? `Edit ${current.label}` : 'Add an application', form);
  chooseConnector();
}

async function applicationPage(view, name) {
  const app = await get(`/apps/${enc(name)}`);
  const path = `/apps/${enc(app.name)}`;
  const reload = () => route();
  const progress = h('section', { 'aria-labelledby': 'progress-title' });
  const badgeLine = h('p', { class: 'badge-line' });
  const actions = h('div', { class: 'actions' },
    app.state === 'inactive'
      ? action('Activate', async () => { await post(`${path}/activate`); say(`${app.name} is active.`, 'ok'); reload(); })
      : action('Deactivate', async () => {
        if (!window.confirm(`Deactivate ${app.label}? Nothing more is sent until it is activated again.`)) return;
        await post(`${path}/deactivate`); say(`${app.name} is inactive.`, 'ok'); reload();
      }),
    action('Reconcile now', async () => {
      say('Reconcile started: progress shows below.');
      const done = await post(`${path}/reconcile`);
      say(`Reconciled: listed ${done.listed} accounts, ${done.repaired} repaired, ${done.recreated} recreated, ${done.provisioned} provisioned.`, 'ok');
    }),
    h('a', { class: 'button', href: `#/apps/${enc(app.name)}/edit` }, 'Edit'),
    h('a', { class: 'button', href: `#/events?app=${enc(app.name)}` }, 'Events'));

  const held = h('div', {}, await heldSection(app));
  const deadLetters = h('div', {}, await deadLetterSection(path));
  view.show(app.label, badgeLine, actions, progress,
    await bindingsSection(app, path),
    await assignmentsSection(app, path),
    await scopeSection(path),
    planSection(path),
    await provisionSection(path),
    held,
    deadLetters,
    rotateSection(app, path));

  // The held changes and dead letters are read again when their counts
  // move, so a hold shows up without a reload.
  let counts = null;
  view.every(1500, async () => {
    const overview = await poll(`${path}/overview`);
    const now = `${overview.heldOffboardings}/${overview.deadLetters}`;
    if (counts !== null && counts !== now) {
      held.replaceChildren(await heldSection(app));
      deadLetters.replaceChildren(await deadLetterSection(path));
    }
    counts = now;
    badgeLine.replaceChildren(badge(overview), ' ',
      overview.badgeReason ?? '', ' · connector ', overview.connector, ' ', overview.connectorVersion ?? '(not served here)');
    const reconcile = overview.reconcile;
    progress.replaceChildren(
      h('h2', { id: 'progress-title' }, 'Progress'),
      h('p', {},
        h('label', { for: 'linked' }, `Users in scope with an account: ${overview.usersLinked} of ${overview.usersInScope}`),
        ' ',
        h('progress', { id: 'linked', max: Math.max(overview.usersInScope, 1), value: overview.usersLinked })),
      h('ul', { class: 'facts' },
        h('li', {}, `Accounts linked: ${overview.accountsLinked}, ${overview.accountsDeactivated} of them deactivated`),
        h('li', {}, `Groups pushed: ${overview.groupsLinked}`),
        h('li', {}, `Failures in the last 24 hours: ${overview.failures24h}`),
        h('li', {}, `Dead letters: ${overview.deadLetters}`),
        h('li', {}, `Offboardings held: ${overview.heldOffboardings}`),
        h('li', {}, `Last activity: ${when(overview.lastActivity)}`)),
      h('p', { class: 'reconcile', 'aria-live': 'polite' }, reconcile
        ? (reconcile.state === 'running'
          ? `Reconcile running since ${when(reconcile.started)}: ${reconcile.listed} accounts listed so far.`
          : `Last reconcile ${reconcile.state} at ${when(reconcile.finished)}: ${reconcile.summary ?? ''}`)
        : 'No reconcile run by this host since it started.'));
  });
}

async function bindingsSection(app, path) {
  const [bindings, groups] = await Promise.all([all(`${path}/bindings`), all('/groups')]);
  const bound = new Set(bindings.map((binding) => binding.groupId ?? binding.group_id));
  const choice = h('select', { id: 'bind-group' },
    groups.filter((group) => !bound.has(group.id)).map((group) => h('option', { value: group.id }, group.name)));
  return h('section', { 'aria-labelledby': 'bindings-title' },
    h('h2', { id: 'bindings-title' }, 'Bound groups'),
    table('Groups bound to the application', ['Group', ''], bindings.map((binding) => [
      h('a', { href: `#/groups/${enc(binding.groupId ?? binding.group_id)}` }, binding.group),
      action(`Unbind ${binding.group}`, async () => {
        await api('DELETE', `${path}/bindings/${enc(binding.groupId ?? binding.group_id)}`);
        say(`${binding.group} is unbound from ${app.name}.`, 'ok');
        route();
      }),
    ]), 'No group is bound.'),
    choice.options.length
      ? h('div', { class: 'inline' }, field('Group to bind', choice),
        action('Bind', async () => {
          await api('PUT', `${path}/bindings/${enc(choice.value)}`);
          say(`${choice.selectedOptions[0].textContent} is bound to ${app.name}.`, 'ok');
          route();
        }))
      : null);
}

async function assignmentsSection(app, path) {
  const assignments = await all(`${path}/assignments`);
  const user = h('input', { id: 'assign-user', autocomplete: 'off' });
  return h('section', { 'aria-labelledby': 'assignments-title' },
    h('h2', { id: 'assignments-title' }, 'Direct assignments'),
    table('Users assigned directly', ['User', ''], assignments.map((assignment) => [
      h('a', { href: `#/users/${enc(assignment.userId ?? assignment.user_id)}` }, assignment.userName ?? assignment.user_name),
      action(`Unassign ${assignment.userName ?? assignment.user_name}`, async () => {
        await api('DELETE', `${path}/assignments/${enc(assignment.userId ?? assignment.user_id)}`);
        route();
      }),
    ]), 'No user is assigned directly.'),
    h('div', { class: 'inline' }, field('User to assign (userName or id)', user),
      action('Assign', async () => {
        await api('PUT', `${path}/assignments/${enc(user.value.trim())}`);
        say(`${user.value.trim()} is assigned to ${app.name}.`, 'ok');
        route();
      })));
}

async function userNames() {
  const users = await all('/users');
  return new Map(users.map((user) => [user.id, user.userName]));
}

async function scopeSection(path) {
  const [scope, names] = await Promise.all([all(`${path}/scope`), userNames()]);
  return h('section', { 'aria-labelledby': 'scope-title' },
    h('h2', { id: 'scope-title' }, `Users in scope (${scope.length})`),
    h('ul', { class: 'names' }, scope.map((id) => h('li', {}, h('a', { href: `#/users/${enc(id)}` }, names.get(id) ?? id)))));
}

function planSection(path) {
  const result = h('div', { 'aria-live': 'polite' });
  return h('section', { 'aria-labelledby': 'plan-title' },
    h('h2', { id: 'plan-title' }, 'Plan'),
    h('p', { class: 'help' }, 'What a sync of every user would send now, attribute by attribute. The application is not contacted.'),
    action('Show the plan', async () => {
      const planned = await all(`${path}/plan`);
      result.replaceChildren(
        h('p', {}, planned.length === 0
          ? 'Nothing would be sent: the application holds what the directory says.'
          : `${count(planned.length, 'object')} would change.`),
        table('Planned requests', ['Object', 'Operation', 'Attributes', 'Why'], planned.map((item) => [
          item.name ?? item.objectId ?? item.object_id, item.operation,
          (item.attributes ?? []).join(', ') || '—', item.detail,
        ]), 'Nothing would be sent.'));
    }),
    result);
}

async function provisionSection(path) {
  const groups = await all('/groups');
  const user = h('input', { id: 'provision-user', autocomplete: 'off' });
  const group = h('select', { id: 'provision-group' }, groups.map((item) => h('option', { value: item.id }, item.name)));
  const result = h('div', { 'aria-live': 'polite' });
  const steps = (events) => table('Each step', ['Time', 'Operation', 'Rule', 'Outcome', 'HTTP', 'Summary'],
    events.map((event) => [when(event.at), event.operation, event.rule ?? '—', outcome(event.outcome), event.httpStatus ?? event.http_status ?? '—', event.summary]));
  return h('section', { 'aria-labelledby': 'provision-title' },
    h('h2', { id: 'provision-title' }, 'Provision now'),
    h('div', { class: 'inline' }, field('User (userName or id)', user),
      action('Provision the user', async () => {
        const done = await post(`${path}/provision/${enc(user.value.trim())}`);
        result.replaceChildren(h('p', {}, `Result: ${done.result}`), steps(done.events));
      })),
    groups.length ? h('div', { class: 'inline' }, field('Group', group),
      action('Provision the group', async () => {
        const done = await post(`${path}/provision-group/${enc(group.value)}`);
        result.replaceChildren(h('p', {}, `Group: ${done.group}; ${done.members.length} members synced.`), steps(done.events));
      })) : null,
    result);
}

async function heldSection(app) {
  const held = (await all(`/held-changes?app=${enc(app.name)}`)).filter((item) => item.state === 'held');
  return h('section', { 'aria-labelledby': 'held-title' },
    h('h2', { id: 'held-title' }, 'Held changes'),
    h('p', { class: 'help' }, 'Offboardings the deprovisioning guard holds until an operator decides.'),
    held.length === 0 ? h('p', { class: 'empty' }, 'Nothing is held.') : h('div', {}, held.map((item) => h('article', { class: 'held' },
      h('h3', {}, `${count(item.offboarding, 'offboarding')} held at ${when(item.heldAt ?? item.held_at)}`),
      h('p', {}, `The application held ${count(item.activeAccounts ?? item.active_accounts, 'active account')}; the guard's window admits ${item.threshold}.`),
      table('Held offboardings', ['User', 'Action', 'Why'], (item.objects ?? []).map((object) => [
        object.userName ?? object.user_name ?? object.objectId ?? object.object_id, object.action, object.reason,
      ])),
      h('div', { class: 'actions' },
        action('Approve', async () => {
          await post(`/held-changes/${enc(item.id)}/approve`);
          say('Approved: the offboardings are carried out.', 'ok');
          route();
        }),
        action('Reject', async () => {
          await post(`/held-changes/${enc(item.id)}/reject`);
          say('Rejected: nothing was sent, and the accounts are released.', 'ok');
          route();
        }))))));
}

async function deadLetterSection(path) {
  const letters = await all(`${path}/dead-letters`);
  return h('section', { 'aria-labelledby': 'dead-title' },
    h('h2', { id: 'dead-title' }, 'Dead letters'),
    table('Objects the application refused for good', ['Object', 'Operation', 'Reason', 'Failures', 'Last failed'],
      letters.map((letter) => [
        `${letter.objectKind ?? letter.object_kind} ${letter.objectId ?? letter.object_id}`, letter.operation,
        letter.reason, String(letter.failures), when(letter.lastFailed ?? letter.last_failed),
      ]), 'No dead letters.'),
    letters.length ? action('Replay all', async () => {
      const done = await post(`${path}/dead-letters/replay`, {});
      say(`${count(done.replayed, 'object')} queued for another sync.`, 'ok');
      route();
    }) : null);
}

function rotateSection(app, path) {
  const token = h('input', { id: 'rotate-token', type: 'password', autocomplete: 'new-password' });
  return h('section', { 'aria-labelledby': 'rotate-title' },
    h('h2', { id: 'rotate-title' }, 'Rotate the token'),
    h('div', { class: 'inline' }, field('New token', token, 'Tested against the application before it replaces the current one.'),
      action('Rotate', async () => {
        await post(`${path}/rotate-token`, { token: token.value });
        token.value = '';
        say(`The token of ${app.name} is replaced.`, 'ok');
      })));
}

// ---------------------------------------------------------------- directory

async function directoryPage(view, query) {
  const [users, groups] = await Promise.all([all('/users'), all('/groups')]);
  const search = h('input', { id: 'search', type: 'search', value: query.get('q') ?? '', autocomplete: 'off' });
  const results = h('div', { 'aria-live': 'polite' });
  const render = () => {
    const needle = search.value.trim().toLowerCase();
    const matches = (...texts) => !needle || texts.some((text) => (text ?? '').toLowerCase().includes(needle));
    const shownUsers = users.filter((user) => matches(user.userName, user.displayName, user.email, user.givenName, user.familyName));
    const shownGroups = groups.filter((group) => matches(group.name, group.description));
    results.replaceChildren(
      h('h2', {}, `Users (${shownUsers.length} of ${users.length})`),
      table('Users', ['userName', 'Name', 'Email', 'Active'], shownUsers.map((user) => [
        h('a', { href: `#/users/${enc(user.id)}` }, user.userName),
        user.displayName ?? [user.givenName, user.familyName].filter(Boolean).join(' '),
        user.email ?? '—', user.active ? 'yes' : 'suspended',
      ]), 'No user matches.'),
      h('h2', {}, `Groups (${shownGroups.length} of ${groups.length})`),
      table('Groups', ['Group', 'Members'], shownGroups.map((group) => [
        h('a', { href: `#/groups/${enc(group.id)}` }, group.name), String(group.members.length),
      ]), 'No group matches.'));
  };
  search.addEventListener('input', render);
  view.show('Directory', h('form', { role: 'search', onsubmit: (event) => event.preventDefault() },
    field('Search users and groups', search)), results);
  render();
}

async function userPage(view, id) {
  const [user, access] = await Promise.all([get(`/users/${enc(id)}`), get(`/users/${enc(id)}/apps`)]);
  const details = h('dl', { class: 'facts' });
  details.replaceChildren(...[['userName', user.userName],
    ['Name', user.displayName ?? ([user.givenName, user.familyName].filter(Boolean).join(' ') || '—')],
    ['Email', user.email ?? '—'], ['Active', user.active ? 'yes' : 'suspended'],
    ['Groups', (user.groups ?? []).join(', ') || '—']].flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
  const cards = access.applications.map((item) => h('article', { class: `access ${item.inScope ? 'in' : 'out'}` },
    h('h3', {}, h('a', { href: `#/apps/${enc(item.app)}` }, item.label), ' ',
      h('span', { class: `badge ${item.inScope ? 'active' : 'inactive'}` }, item.inScope ? 'In scope' : 'Not in scope')),
    h('p', { class: 'why' }, item.why),
    h('dl', {},
      h('dt', {}, 'Linked account'), h('dd', {}, item.account
        ? `${item.account.remoteId}${item.account.deactivated ? ' (deactivated)' : ''}, last written ${when(item.account.updated)}`
        : 'none'),
      h('dt', {}, 'Last sync'), h('dd', {}, item.lastEvent
        ? [when(item.lastEvent.at), ' ', item.lastEvent.operation, ' ', outcome(item.lastEvent.outcome), ': ', item.lastEvent.summary]
        : 'never'),
      h('dt', {}, 'Last error'), h('dd', { class: item.lastFailure ? 'error' : '' }, item.lastFailure
        ? `${when(item.lastFailure.at)}: ${item.lastFailure.summary}${(item.lastFailure.httpStatus ?? item.lastFailure.http_status) ? ` (HTTP ${item.lastFailure.httpStatus ?? item.lastFailure.http_status})` : ''}`
        : 'none')),
    h('details', {}, h('summary', {}, 'The document the connector makes of the user'),
      item.document ? h('pre', {}, JSON.stringify(item.document, null, 2)) : h('p', {}, item.documentNote ?? '—'))));
  view.show(user.userName, details, h('h2', {}, 'Applications'),
    cards.length ? h('div', { class: 'cards' }, cards) : h('p', { class: 'empty' }, 'No application is configured.'),
    h('p', {}, h('a', { href: `#/events?user=${enc(user.id)}` }, `Events about ${user.userName}`)));
}

async function groupPage(view, id) {
  const group = await get(`/groups/${enc(id)}`);
  const member = h('input', { id: 'member', autocomplete: 'off' });
  view.show(group.name,
    group.description ? h('p', {}, group.description) : null,
    table('Members', ['Member', 'Kind', ''], group.members.map((item) => [
      item.kind.toLowerCase() === 'user' ? h('a', { href: `#/users/${enc(item.id)}` }, item.name) : h('a', { href: `#/groups/${enc(item.id)}` }, item.name),
      item.kind,
      action(`Remove ${item.name}`, async () => {
        await api('DELETE', `/groups/${enc(group.id)}/members/${enc(item.id)}`);
        say(`${item.name} left ${group.name}.`, 'ok');
        route();
      }),
    ]), 'No members.'),
    h('div', { class: 'inline' }, field('Add a member (userName, group name or id)', member),
      action('Add', async () => {
        await api('PUT', `/groups/${enc(group.id)}/members/${enc(member.value.trim())}`);
        route();
      })));
}

// ---------------------------------------------------------------- events

const PAGE = 50;

function eventQuery(filter, offset, limit) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(filter)) if (value) params.set(key, value);
  params.set('offset', offset);
  params.set('limit', limit);
  return `/events?${params}`;
}

async function eventsPage(view, query) {
  const apps = await all('/apps');
  const filter = {
    app: query.get('app') ?? '', operation: query.get('operation') ?? '', outcome: query.get('outcome') ?? '',
    user: query.get('user') ?? '', since: query.get('since') ?? '', until: query.get('until') ?? '',
  };
  const offset = Number(query.get('offset') ?? 0) || 0;
  const page = await get(eventQuery(filter, offset, PAGE));
  const inputs = {
    app: h('select', { id: 'ev-app', name: 'app' }, h('option', { value: '' }, 'All'),
      apps.map((app) => h('option', { value: app.name, selected: filter.app === app.name }, app.label))),
    operation: h('input', { id: 'ev-operation', name: 'operation', list: 'operations', value: filter.operation, autocomplete: 'off' }),
    outcome: h('select', { id: 'ev-outcome', name: 'outcome' }, ['', 'success', 'failure'].map((value) =>
      h('option', { value, selected: filter.outcome === value }, value || 'All'))),
    user: h('input', { id: 'ev-user', name: 'user', value: filter.user, autocomplete: 'off' }),
    since: h('input', { id: 'ev-since', name: 'since', value: filter.since, placeholder: '24h or 2026-12-01T00:00:00Z' }),
    until: h('input', { id: 'ev-until', name: 'until', value: filter.until, placeholder: '1h or 2026-12-02T00:00:00Z' }),
  };
  const go = (changes) => {
    const params = new URLSearchParams();
    const next = { ...Object.fromEntries(Object.entries(inputs).map(([key, input]) => [key, input.value.trim()])), ...changes };
    for (const [key, value] of Object.entries(next)) if (value) params.set(key, value);
    window.location.hash = `#/events?${params}`;
  };
  const exportAll = (format) => action(`Export as ${format.toUpperCase()}`, async (button) => {
    const events = [];
    // Events recorded while the export pages through would shift the
    // pages: the export ends where it started.
    const pinned = { ...filter, until: filter.until || new Date().toISOString() };
    for (;;) {
      const chunk = await get(eventQuery(pinned, events.length, 1000));
      events.push(...chunk.items);
      button.textContent = `Exporting… ${events.length} of ${chunk.total}`;
      if (chunk.items.length === 0 || events.length >= chunk.total) break;
    }
    button.textContent = `Export as ${format.toUpperCase()}`;
    const columns = ['at', 'appName', 'objectKind', 'objectId', 'operation', 'rule', 'outcome', 'httpStatus', 'summary'];
    const cell = (value) => {
      const text = value === null || value === undefined ? '' : String(value);
      // A cell a spreadsheet would run as a formula is quoted as text.
      const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
      return /[",\n\r]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
    };
    const normal = events.map((event) => ({
      at: event.at, appName: event.appName ?? event.app_name, objectKind: event.objectKind ?? event.object_kind,
      objectId: event.objectId ?? event.object_id, operation: event.operation, rule: event.rule,
      outcome: event.outcome, httpStatus: event.httpStatus ?? event.http_status, summary: event.summary,
    }));
    const body = format === 'csv'
      ? [columns.join(','), ...normal.map((event) => columns.map((column) => cell(event[column])).join(','))].join('\r\n')
      : JSON.stringify(normal, null, 2);
    const url = URL.createObjectURL(new Blob([body], { type: format === 'csv' ? 'text/csv' : 'application/json' }));
    const link = h('a', { href: url, download: `scimlink-events.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  });
  view.show('Events',
    h('form', { class: 'filters', onsubmit: (event) => { event.preventDefault(); go({}); } },
      field('Application', inputs.app), field('Operation', inputs.operation), field('Outcome', inputs.outcome),
      field('User (userName or id)', inputs.user), field('Since', inputs.since), field('Until', inputs.until),
      h('datalist', { id: 'operations' }, OPERATIONS.map((name) => h('option', { value: name }))),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Filter'), exportAll('csv'), exportAll('json'))),
    h('p', { 'aria-live': 'polite' }, page.total === 0 ? 'No events match.'
      : `Events ${offset + 1}–${offset + page.items.length} of ${page.total}, newest first.`),
    table('Events', ['Time', 'Application', 'Operation', 'Rule', 'Outcome', 'HTTP', 'Object', 'Summary'],
      page.items.map((event) => [
        when(event.at), event.appName ?? event.app_name ?? '—', event.operation, event.rule ?? '—',
        outcome(event.outcome), String(event.httpStatus ?? event.http_status ?? '—'),
        (event.objectKind ?? event.object_kind) === 'user'
          ? h('a', { href: `#/users/${enc(event.objectId ?? event.object_id)}` }, 'user')
          : (event.objectKind ?? event.object_kind ?? '—'),
        event.summary,
      ]), ''),
    h('nav', { class: 'pager', 'aria-label': 'Pages of events' },
      offset > 0 ? h('button', { type: 'button', onclick: () => go({ offset: String(Math.max(offset - PAGE, 0)) }) }, 'Newer') : null,
      offset + PAGE < page.total ? h('button', { type: 'button', onclick: () => go({ offset: String(offset + PAGE) }) }, 'Older') : null));
}

// ---------------------------------------------------------------- connectors

function capabilityText(capabilities) {
  if (!capabilities) return '—';
  const passwords = capabilities.passwords ?? {};
  const takes = [passwords.on_create ? 'on create' : null, passwords.on_change ? `on change (${passwords.on_change})` : null].filter(Boolean);
  return [
    `groups: ${capabilities.groups ? 'yes' : 'no'}`,
    `direct assignment: ${capabilities.direct_assignment ? 'yes' : 'no'}`,
    `offboarding: ${capabilities.offboarding}`,
    `updates: ${capabilities.update_method}`,
    `passwords: ${takes.join(', ') || 'none'}`,
  ].join(' · ');
}

function reportView(report) {
  const manifest = report.manifest ?? {};
  return h('div', { class: 'report' },
    h('p', { class: 'ok' }, `${report.file} is a valid connector: ${manifest.name} ${manifest.version}, contract ${report.contract}.`),
    h('p', {}, manifest.description ?? ''),
    h('p', {}, capabilityText(manifest.capabilities)),
    table('Cost per call', ['Call', 'Time (µs)', 'Fuel', 'Peak memory (KiB)', 'Bytes out'],
      (report.receipts ?? []).map((receipt) => [receipt.call, String(receipt.wall_time), receipt.fuel === null ? 'not metered' : String(receipt.fuel),
        String(Math.round((receipt.peak_memory_bytes ?? 0) / 1024)), String(receipt.output_bytes)])),
    h('details', {}, h('summary', {}, `What it makes of the sample user ${report.sample_user?.user_name ?? ''}`),
      h('pre', {}, JSON.stringify(report.sample_user?.scim ?? null, null, 2)),
      h('p', {}, 'Lookup filters, in order:'),
      h('ul', {}, (report.sample_user?.lookup_filters ?? []).map((filter) => h('li', {}, h('code', {}, filter))))),
    report.sample_group ? h('details', {}, h('summary', {}, 'What it makes of the sample group'),
      h('pre', {}, JSON.stringify(report.sample_group, null, 2))) : null);
}

async function connectorsPage(view) {
  const plugins = await all('/plugins');
  const file = h('input', { id: 'component', type: 'file', accept: '.wasm,application/wasm' });
  const checked = h('div', { 'aria-live': 'polite' });
  const cards = plugins.map((plugin) => {
    const costs = h('div', { 'aria-live': 'polite' });
    const history = plugin.history ?? [];
    const previous = history.length >= 2 ? history[history.length - 2] : null;
    return h('article', { class: 'connector' },
      h('h2', {}, `${plugin.name} ${plugin.version}`),
      h('p', {}, plugin.description),
      h('dl', {},
        h('dt', {}, 'Contract'), h('dd', {}, plugin.contract),
        h('dt', {}, 'Capabilities'), h('dd', {}, capabilityText(plugin.capabilities)),
        h('dt', {}, 'Base URL'), h('dd', {}, plugin.base_url_template ?? plugin.baseUrlTemplate ?? 'given per application'),
        h('dt', {}, 'Settings'), h('dd', {}, (plugin.settings ?? []).map((setting) => `${setting.key}${setting.required ? ' (required)' : ''}: ${setting.description}`).join('; ') || 'none'),
        h('dt', {}, 'sha256'), h('dd', {}, h('code', {}, plugin.sha256)),
        h('dt', {}, 'Serving history'), h('dd', {}, history.length
          ? h('ol', {}, history.map((served) => h('li', {}, `${served.version} (${served.sha256.slice(0, 12)})`)))
          : 'not kept')),
      h('div', { class: 'actions' },
        action(`Measure the calls of ${plugin.name}`, async () => {
          costs.replaceChildren(reportView(await get(`/plugins/${enc(plugin.name)}/check`)));
        }),
        previous ? action(`Roll back ${plugin.name} to ${previous.version}`, async () => {
          if (!window.confirm(`Serve ${plugin.name} ${previous.version} again in place of ${plugin.version}?`)) return;
          const rolled = await post(`/plugins/${enc(plugin.name)}/rollback`);
          say(`${plugin.name} rolls back from ${rolled.from_version} to ${rolled.to_version}; the host swaps it in within moments.`, 'ok');
          setTimeout(route, 1500);
        }) : null),
      costs);
  });
  view.show('Connectors',
    h('section', { 'aria-labelledby': 'check-title' },
      h('h2', { id: 'check-title' }, 'Check a component'),
      h('p', { class: 'help' }, 'Exactly as scimlink plugin check: the host\'s validation, the manifest, a sample user and group, the cost of each call. The component is not loaded.'),
      h('div', { class: 'inline' }, field('Component (.wasm)', file),
        action('Check', async () => {
          if (!file.files?.[0]) { say('Choose a component first.', 'error'); return; }
          checked.replaceChildren(h('p', {}, 'Checking…'));
          try {
            checked.replaceChildren(reportView(await api('POST', '/plugins/check', file.files[0])));
          } catch (error) {
            checked.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Not a valid connector: ${error.message}`));
          }
        })),
      checked),
    plugins.length ? h('div', { class: 'cards' }, cards) : h('p', { class: 'empty' }, 'This host serves no connector.'));
}

// ---------------------------------------------------------------- status

async function statusPage(view) {
  const facts = h('div', { 'aria-live': 'polite' });
  view.show('Status', facts);
  view.every(3000, async () => {
    const status = await poll('/status');
    facts.replaceChildren(
      h('ul', { class: 'facts' },
        h('li', {}, `Directory changes not yet applied everywhere: ${status.pendingChanges}`),
        h('li', {}, `Applications: ${status.activeApps} active, ${status.inactiveApps} inactive, ${status.quarantinedApps} quarantined`),
        h('li', {}, `Held changes: ${status.heldChanges} (${status.heldOffboardings} offboardings)`),
        h('li', {}, `Dead letters: ${status.deadLetters}`)),
      table('Quarantined applications', ['Application', 'Why'], status.quarantined.map((item) => [
        h('a', { href: `#/apps/${enc(item.name)}` }, item.name), item.reason ?? '—']), 'No application is quarantined.'),
      table('Hosts', ['Host', 'Runs', 'Connectors', 'Last seen'], status.hosts.map((host) => [
        host.name, host.applications.join(', ') || '—',
        Object.entries(host.connectors).map(([name, version]) => `${name} ${version}`).join(', '), when(host.lastSeen)]), 'No engine runs.'),
      table('Connectors the hosts do not serve alike', ['Connector', 'Newest', 'Hosts', 'Applications'],
        status.connectorMismatches.map((item) => [item.connector, item.newest ?? '—',
          item.hosts.map((host) => `${host.host}: ${host.version ?? 'missing'}`).join(', '), item.applications.join(', ')]),
        'Every host serves the same connectors.'));
  });
}

// ---------------------------------------------------------------- routing

// Each navigation's number: a page still loading when another is asked
// for is not shown over it.
let navigation = 0;

async function route() {
  const mine = ++navigation;
  // What a page shows, and the timers it starts, only while it is the
  // page asked for last.
  const view = {
    show: (...args) => { if (mine === navigation) show(...args); },
    every: (milliseconds, work) => { if (mine === navigation) every(milliseconds, work); },
  };
  try {
    const [path, search] = window.location.hash.replace(/^#/, '').split('?');
    const query = new URLSearchParams(search ?? '');
    const parts = (path || '/apps').split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] === 'apps' && parts[1] === 'new') await applicationForm(view, null);
    else if (parts[0] === 'apps' && parts[1] && parts[2] === 'edit') await applicationForm(view, parts[1]);
    else if (parts[0] === 'apps' && parts[1]) await applicationPage(view, parts[1]);
    else if (parts[0] === 'directory') await directoryPage(view, query);
    else if (parts[0] === 'users' && parts[1]) await userPage(view, parts[1]);
    else if (parts[0] === 'groups' && parts[1]) await groupPage(view, parts[1]);
    else if (parts[0] === 'events') await eventsPage(view, query);
    else if (parts[0] === 'connectors') await connectorsPage(view);
    else if (parts[0] === 'status') await statusPage(view);
    else await applicationsPage(view);
  } catch (error) {
    view.show('Something went wrong', h('p', { class: 'error', role: 'alert' }, error.message ?? String(error)),
      h('p', {}, h('a', { href: '#/apps' }, 'Back to the applications')));
  }
}

window.addEventListener('hashchange', route);
route();
