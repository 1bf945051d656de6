// The operator's job in the console, in Debian's Chromium driven by
// playwright-core. Run by tests/tests/console.rs, which starts the host and
// the simulated application on loopback and passes them in:
//
//   CONSOLE_URL   the host's origin (http://127.0.0.1:PORT)
//   ADMIN_TOKEN   the host's admin token
//   SP_BASE_URL   the simulated application's SCIM base URL
//   COMPONENT     a connector component to check (a .wasm file)
//   SCREENSHOTS   the folder the screenshots are saved in
//
// Each step saves a screenshot; the first failed expectation ends the run
// with a non-zero status and says which step and why.

import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const origin = need('CONSOLE_URL');
const token = need('ADMIN_TOKEN');
const spBase = need('SP_BASE_URL');
const component = need('COMPONENT');
const screenshots = need('SCREENSHOTS');
mkdirSync(screenshots, { recursive: true });

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

let step = 'start';
// Playwright gives the browser a new, empty profile of its own; this
// folder holds the test's own files.
const profile = mkdtempSync(join(tmpdir(), 'scimlink-console-'));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  timeout: 60_000,
});

const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(20_000);
const consoleErrors = [];
// A refused request (the wrong token's 401) is the browser's to report,
// not an error of the console's script.
page.on('console', (message) => {
  if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) consoleErrors.push(message.text());
});
page.on('pageerror', (error) => consoleErrors.push(String(error)));
page.on('dialog', (dialog) => dialog.accept());

async function shot(name) {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

async function sessionCookie() {
  return (await context.cookies()).find((cookie) => cookie.name === 'scimlink_console');
}

// Waits for `text` on the page, reloading the page between looks when the
// part that shows it is not live.
async function eventually(text, { reload = false, within = 30_000 } = {}) {
  const deadline = Date.now() + within;
  for (;;) {
    if ((await page.getByText(text).count()) > 0) return;
    if (Date.now() > deadline) throw new Error(`"${text}" never showed`);
    if (reload) await page.reload();
    await page.waitForTimeout(500);
  }
}

try {
  step = 'sign-in page';
  await page.goto(`${origin}/console`);
  expect(page.url() === `${origin}/console/sign-in`, `GET /console without a session led to ${page.url()}`);
  await shot('01-sign-in');

  step = 'a wrong token';
  await page.getByLabel('Admin token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await eventually('That is not the admin token');
  expect(!(await sessionCookie()), 'a wrong token set a session cookie');

  step = 'signing in from the keyboard';
  await page.getByLabel('Admin token').fill(token);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Applications' }).waitFor();
  const cookie = await sessionCookie();
  expect(cookie?.httpOnly && cookie.sameSite === 'Strict', `the session cookie is ${JSON.stringify(cookie)}`);
  expect(!(await page.content()).includes(token), 'the admin token shows in the page');
  expect(!page.url().includes(token), 'the admin token shows in the URL');

  step = 'adding an application';
  await page.getByRole('link', { name: 'Add an application' }).click();
  await page.getByLabel('Connector').selectOption('custom-scim');
  await page.getByLabel('Name', { exact: true }).fill('crm');
  await page.getByLabel('Label').fill('CRM');
  await page.getByLabel('Base URL').fill(spBase);
  await eventually(`Requests go to ${spBase}`);
  await page.getByLabel('Token', { exact: true }).fill('crm-app-token');
  await page.getByLabel('Hold offboardings past this share of accounts (%)').fill('0');
  await page.getByLabel('…and past this many offboardings').fill('0');
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select')]
    .filter((input) => input.type !== 'hidden' && input.labels.length === 0).map((input) => input.id || input.name));
  expect(unlabelled.length === 0, `inputs without a label: ${unlabelled}`);
  await page.getByRole('button', { name: 'Test the connection' }).click();
  await eventually('The connection works');
  await shot('02-add-application');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByRole('heading', { name: 'CRM' }).waitFor();
  expect(!(await page.content()).includes('crm-app-token'), 'the application token is shown back');

  step = 'binding a group';
  await page.getByLabel('Group to bind').selectOption({ label: 'engineering' });
  await page.getByRole('button', { name: 'Bind' }).click();
  await page.getByRole('button', { name: 'Unbind engineering' }).waitFor();

  step = 'the plan before activation';
  await page.getByRole('button', { name: 'Show the plan' }).click();
  await eventually('4 objects would change.');
  const creates = await page.getByRole('cell', { name: 'create_or_take_over', exact: true }).count();
  expect(creates === 3, `the plan creates ${creates} users, not 3`);

  step = 'activating, and the users arriving';
  await page.getByRole('button', { name: 'Activate' }).click();
  await page.getByRole('button', { name: 'Deactivate' }).waitFor();
  await eventually('Users in scope with an account: 3 of 3', { within: 60_000 });
  await page.locator('.badge.active').first().waitFor();
  await shot('03-application-provisioned');

  step = 'provisioning a user now';
  await page.getByLabel('User (userName or id)').fill('ada');
  await page.getByRole('button', { name: 'Provision the user' }).click();
  await eventually('Result: unchanged');

  step = 'editing the application';
  await page.getByRole('link', { name: 'Edit' }).click();
  await page.getByLabel('Label').fill('CRM (EU)');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByRole('heading', { name: 'CRM (EU)' }).waitFor();
  await page.locator('.badge.active').first().waitFor();

  step = 'why a user is out of scope';
  await page.getByRole('link', { name: 'Directory' }).click();
  await page.getByLabel('Search users and groups').fill('ken');
  await page.getByRole('link', { name: 'ken', exact: true }).click();
  await page.getByRole('heading', { name: 'ken' }).waitFor();
  await eventually('Not in scope: ken is not a member of the group bound to crm (engineering), and is not assigned to it directly.');
  await shot('04-user-out-of-scope');

  step = 'why a user is in scope, and the account';
  await page.goto(`${origin}/console#/directory?q=ada`);
  await page.getByRole('link', { name: 'ada', exact: true }).click();
  await eventually('In scope: a member of the group engineering.');
  await eventually('Linked account');
  expect((await page.getByText('last written').count()) > 0, 'ada has no linked account');
  await page.getByText('The document the connector makes of the user').click();
  await eventually('"userName": "ada"');
  await shot('05-user-in-scope');

  step = 'a held offboarding';
  await page.goto(`${origin}/console#/directory?q=engineering`);
  await page.getByRole('link', { name: 'engineering', exact: true }).click();
  await page.getByRole('button', { name: 'Remove linus' }).click();
  await eventually('linus left engineering');
  await page.goto(`${origin}/console#/apps/crm`);
  // Live: the page is not reloaded.
  await page.getByRole('heading', { name: /^1 offboarding held at/ }).waitFor({ timeout: 60_000 });
  await page.locator('.badge.attention').first().waitFor();
  await shot('06-held-change');
  await page.getByRole('button', { name: 'Approve' }).click();
  await eventually('Approved: the offboardings are carried out.');
  await eventually('Accounts linked: 3, 1 of them deactivated', { within: 60_000 });

  step = 'events, filtered and exported';
  await page.goto(`${origin}/console#/events?app=crm&outcome=success`);
  await page.getByRole('heading', { name: 'Events' }).waitFor();
  await eventually('user_create_provision');
  await page.getByLabel('Operation').fill('user_create_provision');
  await page.getByRole('button', { name: 'Filter' }).click();
  await eventually('Events 1–3 of 3');
  await shot('07-events');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export as CSV' }).click(),
  ]);
  const csv = readFileSync(await download.path(), 'utf8').split('\r\n');
  expect(csv[0] === 'at,appName,objectKind,objectId,operation,rule,outcome,httpStatus,summary', `the CSV header is ${csv[0]}`);
  expect(csv.length === 4 && csv.slice(1).every((line) => line.includes('user_create_provision')), `the CSV holds ${csv.length - 1} rows`);

  step = 'checking a component';
  await page.getByRole('link', { name: 'Connectors' }).click();
  await page.getByLabel('Component (.wasm)').setInputFiles(component);
  await page.getByRole('button', { name: 'Check', exact: true }).click();
  await eventually('is a valid connector');
  await eventually('Cost per call');
  const bogus = join(profile, 'bogus.wasm');
  writeFileSync(bogus, 'not a component');
  await page.getByLabel('Component (.wasm)').setInputFiles(bogus);
  await page.getByRole('button', { name: 'Check', exact: true }).click();
  await eventually('Not a valid connector');

  step = 'rolling back a connector';
  await page.getByRole('heading', { name: 'versioned 2.0.0' }).waitFor();
  await shot('08-connectors');
  await page.getByRole('button', { name: 'Roll back versioned to 1.0.0' }).click();
  await eventually('versioned 1.0.0', { reload: true, within: 30_000 });
  expect((await page.getByRole('heading', { name: 'versioned 1.0.0' }).count()) === 1, 'versioned did not roll back');

  step = 'reconcile, live';
  await page.goto(`${origin}/console#/apps/crm`);
  await page.getByRole('button', { name: 'Reconcile now' }).click();
  await eventually('Last reconcile done', { within: 60_000 });

  step = 'the status page';
  await page.getByRole('link', { name: 'Status' }).click();
  await eventually('Applications: 1 active, 0 inactive, 0 quarantined');

  step = 'a narrow screen';
  await page.goto(`${origin}/console#/apps/crm`);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await eventually('Users in scope with an account');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(overflow <= 390, `the page is ${overflow} px wide at 390`);
  await shot('09-narrow');
  await page.setViewportSize({ width: 1280, height: 900 });

  step = 'signing out';
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Admin token').waitFor();
  const after = await page.request.get(`${origin}/console/api/v1/apps`);
  expect(after.status() === 401, `after sign-out the API answered ${after.status()}`);

  expect(consoleErrors.length === 0, `the browser reported errors: ${consoleErrors.join(' | ')}`);
  console.log('console: every step passed');
} catch (error) {
  await shot(`failed-${step.replaceAll(' ', '-')}`).catch(() => {});
  console.error(`console: step "${step}" failed: ${error.message}`);
  if (consoleErrors.length) console.error(`browser errors: ${consoleErrors.join(' | ')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
