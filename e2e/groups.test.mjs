// Group texts in a real headless Chromium: three members play a group text on the phone
// simulator (each in turn, naming the others); the leader sees one group conversation whose
// messages name their senders, replies once, and every member's phone shows the reply.
// Runs after dashboard.test.mjs (scripts/e2e orders the files) on the same server and church.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { BASE_URL, PHONE, closeBrowser, launchBrowser, newContextPage, screenshot, signedInState, violations } from "./lib.mjs";

const LEADER = { email: "pastor@grace.test", password: "correct horse battery staple" };
const ANN = "+13125550301";
const BEN = "+13125550302";
const CAT = "+13125550303";
const url = (path) => new URL(path, BASE_URL).toString();

let browser;
let signedIn;
const problems = [];

before(async () => {
  browser = await launchBrowser();
  signedIn = await signedInState(browser, LEADER);
});

after(async () => {
  await closeBrowser(browser);
  assert.deepEqual(problems, [], "no script errors or CSP violations");
});

/** The simulated phone plays `me`, texting the church and `others`. */
async function playAs(sim, me, others) {
  await sim.fill("#sim-phone", me);
  await sim.locator("#sim-phone").dispatchEvent("change");
  await sim.fill("#sim-group", others.join(", "));
  await sim.locator("#sim-group").dispatchEvent("change");
}

async function textFromPhone(sim, text) {
  await sim.fill("#sim-text", text);
  const [res] = await Promise.all([
    sim.waitForResponse((r) => new URL(r.url()).pathname === "/sandbox/send"),
    sim.click("#sim-send"),
  ]);
  assert.equal(res.status(), 201, await res.text());
}

test("a group text from the simulator is one conversation whose messages name their senders; one reply reaches all", async () => {
  const sim = await newContextPage(browser, PHONE, problems);
  await sim.goto(url("/sandbox"));
  await playAs(sim, ANN, [BEN, CAT]);
  await textFromPhone(sim, "Small group at mine tonight?");
  await playAs(sim, BEN, [CAT, ANN]); // the same group, named in another order
  await textFromPhone(sim, "Count me in");
  // Ben's phone shows Ann's message as received from her, his own as sent.
  await sim.locator("#sim-thread .bubble.in .sender", { hasText: "0301" }).waitFor();
  await sim.locator("#sim-thread .bubble.out .sender", { hasText: "You" }).waitFor();

  const page = await newContextPage(browser, PHONE, problems, signedIn);
  const res = await page.request.get(url("/api/conversations?q=0302"));
  const groups = (await res.json()).data.conversations.filter((c) => c.group);
  assert.equal(groups.length, 1, "one group conversation");
  assert.deepEqual(
    groups[0].participants.map((p) => p.phone),
    ["•••-•••-0301", "•••-•••-0302", "•••-•••-0303"],
  );
  await page.goto(url("/inbox"));
  await page.locator(`a.conversation[data-id="${groups[0].id}"] .group-tag`).waitFor();
  await page.click(`a.conversation[data-id="${groups[0].id}"]`);
  await page.waitForURL(new RegExp(`/inbox/${groups[0].id}`));
  const senders = await page.locator("#messages .bubble.in .sender").allTextContents();
  assert.deepEqual(senders, ["•••-•••-0301", "•••-•••-0302"], "each message names who sent it");
  assert.match(await page.locator(".thread-head .muted").textContent(), /Group text · 3 members/);

  await page.fill("#content", "See you all at 7!");
  await page.click("#send");
  const status = page.locator("#messages .bubble.out .status", { hasText: "Delivered to 3 of 3" });
  await status.waitFor();
  await screenshot(page, "group-thread-phone");
  assert.deepEqual(await violations(page), [], "the group thread is accessible");

  // Cat, who has not written yet, sees the church's reply on her phone with the others' messages.
  await playAs(sim, CAT, [ANN, BEN]);
  await sim.locator("#sim-thread .bubble.in", { hasText: "See you all at 7!" }).waitFor();
  assert.match(await sim.locator("#sim-thread").textContent(), /Small group at mine tonight\?/);
  await screenshot(sim, "group-sandbox-phone");
  await sim.context().close();
  await page.context().close();
});
