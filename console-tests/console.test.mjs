// Browser end-to-end tests of the web console: the real `postern` binary on 127.0.0.1 (a fresh
// data directory, SQLite), Debian's Chromium driven by playwright-core, and the sender calls
// made from this test with the credentials read off the console's pages. Screenshots of each
// main page land in console-tests/screenshots/ (git-ignored; CI keeps them as artifacts).
//
//   POSTERN_BIN=target/debug/postern node --test console-tests/console.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..");
const BIN = process.env.POSTERN_BIN || join(repo, "target/debug/postern");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const PASSWORD = "console-test-password-1";
const SHOTS = join(here, "screenshots");

let server, base, httpsBase, dataDir, browser, context, page;
const logs = [];

/** Starts `postern serve` and resolves with its listener addresses. */
function startServer() {
  dataDir = mkdtempSync(join(tmpdir(), "postern-console-"));
  const child = spawn(
    BIN,
    ["serve", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--log-format", "json", "--data-dir", dataDir],
    { env: { ...process.env, POSTERN_ADMIN_PASSWORD: PASSWORD, RUST_LOG: "info" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`postern did not start:\n${logs.join("\n")}`)), 60_000);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        logs.push(line);
        try {
          const v = JSON.parse(line);
          if (v.fields && v.fields.http && v.fields.https) {
            clearTimeout(timer);
            resolve({ child, http: `http://${v.fields.http}`, https: `https://${v.fields.https}` });
          }
        } catch {
          // not a JSON log line
        }
      });
    }
    child.on("exit", (code) => reject(new Error(`postern exited with ${code}:\n${logs.join("\n")}`)));
  });
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  const started = await startServer();
  server = started.child;
  base = started.http;
  httpsBase = started.https;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
const basic = (user, secret) => "Basic " + Buffer.from(`${user}:${secret}`).toString("base64");

/** Polls until `f` is truthy (message logs are written off the request path). */
async function eventually(f, what, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const ORDERS_FLOW = `id: orders-inbound
sender:
  adapter: https
  address: /orders
  authorization: user-role
  roles: [Orders.Send]
steps:
  - content_modifier: { headers: { who: "\${header.SapAuthenticatedUserName}" } }
receiver:
  reply: { status: 200, body: "accepted from \${header.who}" }
`;

let clientId, secret;

test("login page; wrong password refused; admin logs in", async () => {
  await page.goto(`${base}/console/`);
  assert.match(page.url(), /\/console\/login\?next=/);
  await shot("01-login");
  await page.getByLabel("User name").fill("admin");
  await page.getByLabel("Password").fill("wrong-password-123");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("Wrong user name or password.").waitFor();
  await page.getByLabel("User name").fill("admin");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Messages" }).waitFor();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "postern_console");
  assert.ok(session, "session cookie set");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
});

test("create a role, an instance and a key; the secret is read from the page", async () => {
  await page.getByRole("link", { name: "User Roles" }).click();
  await page.getByLabel("Name").fill("Orders.Send");
  await page.getByLabel("Description", { exact: true }).fill("Partners sending orders");
  await page.getByRole("button", { name: "Add" }).click();
  await page.getByText("Role Orders.Send created.").waitFor();
  await shot("02-roles");

  await page.getByRole("link", { name: "Service Instances" }).click();
  await page.getByLabel("Name").fill("orders-sender");
  await page.getByLabel(/^Roles/).selectOption("Orders.Send");
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { name: "Service instance orders-sender" }).waitFor();
  await page.getByLabel("Key name").fill("key1");
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByRole("heading", { name: "Key key1 created" }).waitFor();
  await shot("03-key-created");
  clientId = (await page.locator("#k-clientid").textContent()).trim();
  secret = (await page.locator("#k-secret").textContent()).trim();
  assert.match(clientId, /^sb-/);
  assert.ok(secret.length > 40, "a 256-bit secret");

  // The instance page lists the key but never the secret again.
  await page.goto(`${base}/console/security/instances/orders-sender`);
  await page.getByRole("cell", { name: "key1", exact: true }).waitFor();
  assert.ok(!(await page.content()).includes(secret), "the secret is shown once");
  await shot("04-instance");
});

test("deploy a flow (errors shown in place), call it with the key, see it COMPLETED", async () => {
  await page.getByRole("link", { name: "Integration Flows" }).click();
  await page.getByLabel("…or paste the flow").fill(ORDERS_FLOW.replace("Orders.Send", "No.Such.Role"));
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await page.locator("#flow-error").getByText("role No.Such.Role does not exist").waitFor();
  assert.equal(await page.getByLabel("…or paste the flow").getAttribute("aria-invalid"), "true");
  await page.getByLabel("…or paste the flow").fill(ORDERS_FLOW);
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await page.getByText("Flow orders-inbound deployed.").waitFor();
  await shot("05-flows");
  const endpoint = (await page.locator("#ep-1").textContent()).trim();
  assert.ok(endpoint.endsWith("/http/orders"), endpoint);

  const r = await fetch(`${base}/http/orders`, {
    method: "POST",
    headers: { authorization: basic(clientId, secret), "content-type": "application/xml" },
    body: "<Order/>",
  });
  assert.equal(r.status, 200);
  assert.equal(await r.text(), `accepted from ${clientId}`);
  const guid = r.headers.get("sap_messageprocessinglogid");

  await eventually(async () => {
    await page.goto(`${base}/console/messages`);
    return (await page.locator(`a[href="/console/messages/${guid}"]`).count()) > 0;
  }, "the message in the monitor");
  const row = page.locator("tr", { has: page.locator(`a[href="/console/messages/${guid}"]`) });
  assert.match(await row.textContent(), /COMPLETED/);
  await shot("06-messages");
  await page.locator(`a[href="/console/messages/${guid}"]`).click();
  await page.getByRole("heading", { name: /^Message/ }).waitFor();
  assert.match(await page.locator("dl.facts").textContent(), new RegExp(clientId));
});

test("partner directory CRUD, and a denied message shows why", async () => {
  await page.getByRole("link", { name: "Partners" }).click();
  await page.getByLabel("Partner id (Pid)", { exact: true }).last().fill("ACME");
  await page.getByLabel("Authorized user").fill(clientId);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByText("Partner ACME created.").waitFor();
  await page.getByLabel("Agency").fill("016");
  await page.getByLabel("Scheme").fill("DUNS");
  await page.getByLabel("Id", { exact: true }).first().fill("123456789");
  await page.getByRole("button", { name: "Add alternative partner" }).click();
  await page.getByText("Alternative partner 016/DUNS/123456789 added.").waitFor();
  await page.locator("#sp-id").fill("ReceiverAddress");
  await page.locator("#sp-value").fill("https://acme.example/orders");
  await page.getByRole("button", { name: "Add string parameter" }).click();
  await page.getByText("String parameter ReceiverAddress saved.").waitFor();
  await page.locator("#sp-1").fill("https://acme.example/v2/orders");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("String parameter ReceiverAddress saved.").waitFor();
  assert.equal(await page.locator("#sp-1").inputValue(), "https://acme.example/v2/orders");
  await shot("07-partner");

  // A second partner, created and deleted again.
  await page.goto(`${base}/console/partners`);
  await page.getByLabel("Partner id (Pid)", { exact: true }).last().fill("GLOBEX");
  await page.getByLabel("or string parameter").fill("Contact");
  await page.getByLabel("with value").fill("ops@globex.example");
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByText("Partner GLOBEX created.").waitFor();
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Delete partner GLOBEX" }).click();
  await page.getByText("Partner GLOBEX and everything it had deleted.").waitFor();
  assert.equal(await page.locator("ul.pids").getByText("GLOBEX").count(), 0);
  await shot("08-partners");

  // The partner check: ACME's user naming another partner's DUNS is denied, with the reason.
  const flow = readFileSync(join(repo, "examples/orders-partner-check.yaml"), "utf8");
  await page.goto(`${base}/console/flows`);
  await page.getByLabel("…or paste the flow").fill(flow);
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await page.getByText("Flow orders-partner-check deployed.").waitFor();
  const order = (duns) =>
    `<o:Order xmlns:o="urn:example:order"><o:Header><o:SenderId>${duns}</o:SenderId></o:Header></o:Order>`;
  const call = (duns) =>
    fetch(`${base}/http/partner-orders`, {
      method: "POST",
      headers: { authorization: basic(clientId, secret), "content-type": "application/xml" },
      body: order(duns),
    });
  assert.equal((await call("123456789")).status, 200);
  const denied = await call("555555555");
  assert.equal(denied.status, 403);
  const guid = denied.headers.get("sap_messageprocessinglogid");
  await eventually(async () => {
    const r = await page.goto(`${base}/console/messages/${guid}`);
    return r.status() === 200;
  }, "the denied message's log");
  await page.getByRole("heading", { name: "Why it failed" }).waitFor();
  const reason = await page.locator(".reason").textContent();
  assert.match(reason, /555555555/);
  // The decision trace: which check refused it, why, and the id the message carried.
  const decision = await page.locator(".reason dl.decision").textContent();
  assert.match(decision, /partner[\s\S]*unknown_alternative_partner/);
  assert.match(decision, /Id in the message\s*555555555/);
  await shot("09-denied-message");
  await page.goto(`${base}/console/messages?status=FAILED`);
  assert.match(await page.locator("tbody").textContent(), /FAILED/);
});

test("connectivity test shows Postern's chain and downloads it as a zip", async () => {
  await page.getByRole("link", { name: "Connectivity Tests" }).click();
  const port = new URL(httpsBase).port;
  await page.getByLabel("Host").fill("127.0.0.1");
  await page.getByLabel("Port").fill(port);
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByText("Handshake succeeded").waitFor();
  assert.match(await page.locator("table").textContent(), /Postern Local CA/);
  await shot("10-connectivity");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: /Download certificates/ }).click(),
  ]);
  assert.equal(download.suggestedFilename(), "127.0.0.1.zip");
  const file = join(dataDir, "chain.zip");
  await download.saveAs(file);
  const zip = readFileSync(file);
  assert.equal(zip.subarray(0, 2).toString(), "PK", "a zip file");
  assert.ok(zip.includes(Buffer.from("root-")), "the root certificate is marked");
});

test("technical users: add, change roles; a session ends when its user loses Postern.Admin", async () => {
  await page.goto(`${base}/console/security/users`);
  await page.getByLabel("Name").fill("ops");
  await page.getByLabel("Password (12 characters or more)").fill("ops-password-123");
  await page.getByLabel("Roles", { exact: true }).selectOption(["Postern.Admin"]);
  await page.getByRole("button", { name: "Add" }).click();
  await page.getByText("User ops created.").waitFor();
  await shot("12-users");

  // ops logs in in a browser of its own.
  const other = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p2 = await other.newPage();
  await p2.goto(`${base}/console/login`);
  await p2.getByLabel("User name").fill("ops");
  await p2.getByLabel("Password").fill("ops-password-123");
  await p2.getByRole("button", { name: "Log in" }).click();
  await p2.getByRole("heading", { name: "Messages" }).waitFor();

  // admin takes the role away: ops's next request lands on the login page.
  await page.getByLabel("Roles of ops").selectOption(["MonitoringDataRead"]);
  await page.getByRole("button", { name: "Save ops" }).click();
  await page.getByText("User ops updated.").waitFor();
  await p2.goto(`${base}/console/security/roles`);
  assert.match(p2.url(), /\/console\/login/);
  await p2.getByLabel("User name").fill("ops");
  await p2.getByLabel("Password").fill("ops-password-123");
  await p2.getByRole("button", { name: "Log in" }).click();
  await p2.getByText("needs the role Postern.Admin").waitFor();
  await other.close();
});

test("a form without its CSRF token is refused and changes nothing", async () => {
  const r = await page.request.post(`${base}/console/security/roles`, {
    form: { name: "Sneaky.Role", description: "made without the token" },
    maxRedirects: 0,
  });
  assert.equal(r.status(), 403);
  assert.match(await r.text(), /security token is missing or wrong/);
  const wrong = await page.request.post(`${base}/console/security/roles`, {
    form: { name: "Sneaky.Role", csrf: "not-the-token" },
    maxRedirects: 0,
  });
  assert.equal(wrong.status(), 403);
  await page.goto(`${base}/console/security/roles`);
  assert.equal(await page.getByText("Sneaky.Role").count(), 0);
  // Pages forbid framing and outside scripts.
  const resp = await page.goto(`${base}/console/security/roles`);
  const csp = resp.headers()["content-security-policy"];
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(csp, /script-src 'self'/);
});

test("a narrow window gets a usable layout", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/console/messages`);
  await page.getByRole("heading", { name: "Messages" }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling of the page (${overflow}px)`);
  await shot("11-messages-narrow");
  await page.setViewportSize({ width: 1280, height: 800 });
});

test("logout ends the session on the server", async () => {
  const cookie = (await context.cookies()).find((c) => c.name === "postern_console");
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByText("You are logged out.").waitFor();
  await page.goto(`${base}/console/messages`);
  assert.match(page.url(), /\/console\/login/);
  // The old cookie no longer opens a session, even if a browser kept it.
  const r = await fetch(`${base}/console/messages`, {
    headers: { cookie: `postern_console=${cookie.value}` },
    redirect: "manual",
  });
  assert.equal(r.status, 303);
  assert.match(r.headers.get("location"), /\/console\/login/);
});
