// An admin's member actions in the thread header, in a real browser: "Export member data"
// downloads the ZIP with the cookie session; "Erase member…" asks first (confirm() from a static
// script, as the Content-Security-Policy allows no inline handler) and erases only when accepted.
// Runs after dashboard.test.mjs on the same server (its church and admin), or sets them up itself.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { BASE_URL, DESKTOP, PHONE, closeBrowser, launchBrowser, screenshot } from "./lib.mjs";

const CHURCH = { name: "Grace Fellowship", number: "+15551230000" };
const ADMIN = { email: "pastor@grace.test", password: "correct horse battery staple" };
const MEMBER_PHONE = "+13125550199";
const TIMEOUT = 20_000;
const url = (path) => new URL(path, BASE_URL).toString();

let browser, context, page;
const problems = [];

before(async () => {
  browser = await launchBrowser();
  context = await browser.newContext({ ...DESKTOP, baseURL: BASE_URL, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (e) => problems.push(`uncaught ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push(m.text());
  });
});

after(async () => {
  await closeBrowser(browser);
});

/** The conversation of MEMBER_PHONE, through the API with the page's cookie session. */
async function memberConversation() {
  const res = await page.request.get(url("/api/conversations?q=0199"));
  assert.equal(res.status(), 200);
  const body = await res.json();
  return body.data.conversations.find((c) => c.member.phone.endsWith("0199"));
}

test("an admin exports a member's data and erases them after confirming", async () => {
  await page.goto(url("/login"));
  if (new URL(page.url()).pathname === "/setup") {
    await page.fill("#church_name", CHURCH.name);
    await page.fill("#church_number", CHURCH.number);
    await page.fill("#email", ADMIN.email);
    await page.fill("#password", ADMIN.password);
    await page.fill("#password_confirm", ADMIN.password);
    await Promise.all([page.waitForURL("**/inbox"), page.click("button:has-text('Create church')")]);
  } else {
    await page.fill("#email", ADMIN.email);
    await page.fill("#password", ADMIN.password);
    await Promise.all([page.waitForURL("**/inbox"), page.click("button:has-text('Sign in')")]);
  }
  // A member texts through the phone simulator (the sandbox carrier's own pipeline).
  const sent = await page.request.post(url("/sandbox/send"), {
    multipart: { phone: MEMBER_PHONE, church: CHURCH.number, text: "Please send me everything you keep" },
  });
  assert.equal(sent.status(), 201);
  const conversation = await memberConversation();
  assert.ok(conversation, "the member's conversation exists");

  await page.goto(url(`/inbox/${conversation.id}`));
  const actions = page.locator(".thread-head .thread-actions");
  await actions.waitFor();
  await screenshot(page, "thread-admin-actions-desktop");
  await page.setViewportSize(PHONE.viewport);
  // At phone width the actions sit behind one button: the thread starts right under the name.
  const menu = page.locator("#member-menu");
  assert.equal(await actions.isVisible(), false, "the member actions are folded away at phone width");
  const head = await page.locator(".thread-head").boundingBox();
  assert.ok(head && head.height <= 80, `the thread header stays one line high (${head?.height}px)`);
  await screenshot(page, "thread-admin-actions-phone");
  await menu.click();
  assert.equal(await menu.getAttribute("aria-expanded"), "true");
  await actions.locator("a:has-text('Export member data')").waitFor();
  const box = await actions.boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.viewport.width, "the opened menu fits a phone screen");
  await screenshot(page, "thread-member-menu-phone");
  await page.keyboard.press("Escape");
  assert.equal(await actions.isVisible(), false, "Escape folds the menu again");
  await page.setViewportSize(DESKTOP.viewport);
  assert.equal(await menu.isVisible(), false, "no menu button on a wide screen");

  // Named from the header: the name shows in the header (the full number under it), the list and
  // the export.
  await actions.locator("summary:has-text('Name this member')").click();
  await actions.locator("input[name=first_name]").fill("Ruth");
  await actions.locator("input[name=last_name]").fill("Moabite");
  await screenshot(page, "thread-naming-desktop");
  await Promise.all([page.waitForEvent("framenavigated"), actions.locator("button:has-text('Save')").click()]);
  await page.waitForLoadState("load");
  assert.equal((await page.locator(".thread-head h1").textContent()).trim(), "Ruth Moabite");
  assert.match(await page.locator(".thread-head p.muted").textContent(), /\+13125550199/);
  assert.match(await page.locator("#conversation-list a[aria-current=page] .who").textContent(), /Ruth Moabite/);
  assert.equal((await memberConversation()).member.firstName, "Ruth");
  await screenshot(page, "thread-named-desktop");

  const [download] = await Promise.all([
    page.waitForEvent("download"),
    actions.locator("a:has-text('Export member data')").click(),
  ]);
  assert.match(download.suggestedFilename(), /^koinonia-member-[a-z0-9-]+-\d{4}-\d{2}-\d{2}\.zip$/);
  const zip = readFileSync(await download.path());
  assert.equal(zip.subarray(0, 4).toString("binary"), "PK\x03\x04", "a ZIP archive");
  assert.ok(zip.includes(Buffer.from("member.json")) && zip.includes(Buffer.from(MEMBER_PHONE)));
  assert.match(download.suggestedFilename(), /^koinonia-member-ruth-moabite-/, "the export carries the name");

  // Dismissed: nothing happens.
  const dismissed = new Promise((resolve) =>
    page.once("dialog", async (d) => {
      resolve(d.message());
      await d.dismiss();
    }),
  );
  await actions.locator("button:has-text('Erase member')").click();
  assert.match(await dismissed, /^Erase .*deleted for good/);
  await page.waitForTimeout(300);
  assert.equal(new URL(page.url()).pathname, `/inbox/${conversation.id}`);
  assert.ok(await memberConversation(), "still there after Cancel");

  // Accepted: erased, back to the inbox.
  page.once("dialog", (d) => d.accept());
  await Promise.all([page.waitForURL("**/inbox"), actions.locator("button:has-text('Erase member')").click()]);
  assert.equal(await memberConversation(), undefined, "erased");
  assert.deepEqual(problems, [], "no script errors or CSP violations");
});
