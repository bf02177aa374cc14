// The dashboard and the phone simulator in a real headless Chromium, against a running koinonia
// with a fresh database (scripts/e2e starts one). The tests run in order and share one story:
// a church is set up, a member texts a photo and a PDF, the leader answers.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  BASE_URL, DESKTOP, FIXTURES, MMS_MAX, PHONE, SCREENSHOT_DIR,
  closeBrowser, launchBrowser, makeNoisePng, makeScenePng, screenshot, sha256, violations,
} from "./lib.mjs";

const CHURCH = { name: "Grace Fellowship", number: "+15551230000" };
const LEADER = { email: "pastor@grace.test", password: "correct horse battery staple" };
const MEMBER_PHONE = "+13125550142";
const MEMBER_TEXT = "Photos from Sunday, and the bulletin";
const CAPTION = "Thank you! Here is the picture from the picnic";

const TIMEOUT = 20_000;
const url = (path) => new URL(path, BASE_URL).toString();

let browser;
let leaderContext, leader; // the leader's browser (desktop)
let memberContext, sim; // the member's phone simulator (a separate browser context)
let conversationId;
const problems = []; // uncaught script errors and console errors (CSP violations land there)

function watch(page, who) {
  page.on("pageerror", (e) => problems.push(`${who}: uncaught ${e.message}`));
  page.on("console", (m) => {
    // A failed request (e.g. the 401 of a wrong password) is logged too; it is expected.
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push(`${who}: ${m.text()}`);
  });
}

async function newPage(context, who) {
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  watch(page, who);
  return page;
}

/** Resolves once `predicate` holds in the page (polling), with a readable failure. */
async function until(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: TIMEOUT, polling: 100 });
  } catch (e) {
    throw new Error(`timed out waiting for ${what}: ${e.message.split("\n")[0]}`);
  }
}

before(async () => {
  browser = await launchBrowser();
  // The leader's browser is in Chicago: setup offers that zone as the church's.
  leaderContext = await browser.newContext({ ...DESKTOP, baseURL: BASE_URL, timezoneId: "America/Chicago" });
  leader = await newPage(leaderContext, "leader");
});

after(async () => {
  await closeBrowser(browser);
});

test("first run: / leads to /setup, creating the church signs the leader in", async () => {
  const res = await leader.goto(url("/"));
  assert.equal(res.status(), 200);
  assert.equal(new URL(leader.url()).pathname, "/setup");
  await leader.locator("h1").filter({ hasText: "Welcome to koinonia" }).waitFor();
  assert.equal(await leader.locator("#code").count(), 0, "no setup code is asked on 127.0.0.1");
  await screenshot(leader, "setup-desktop");
  assert.deepEqual(await violations(leader), [], "/setup: no serious or critical accessibility violations");

  await leader.fill("#church_name", CHURCH.name);
  await leader.fill("#church_number", CHURCH.number);
  await leader.fill("#email", LEADER.email);
  await leader.fill("#password", LEADER.password);
  await leader.fill("#password_confirm", LEADER.password);
  assert.equal(await leader.inputValue("#time_zone"), "America/Chicago", "the browser's zone is offered");
  await Promise.all([leader.waitForURL("**/inbox"), leader.click("button:has-text('Create church')")]);

  await leader.locator("#conversation-list li.empty").filter({ hasText: "No conversations yet" }).waitFor();
  assert.equal(await leader.locator("header.topbar .brand").textContent(), CHURCH.name);
  assert.match(await leader.locator(".who-am-i").textContent(), /pastor@grace\.test/);
  await screenshot(leader, "inbox-empty-desktop");

  // The church exists now: /setup is closed.
  await leader.goto(url("/setup"));
  assert.notEqual(new URL(leader.url()).pathname, "/setup");
});

test("sign out, a wrong password shows an error, the right one signs in", async () => {
  await leader.goto(url("/inbox"));
  await Promise.all([leader.waitForURL("**/login"), leader.click("button:has-text('Sign out')")]);
  assert.equal(await leader.locator("#login-error").count(), 0);

  // Signed out for real: the inbox sends us back to the login page.
  await leader.goto(url("/inbox"));
  assert.equal(new URL(leader.url()).pathname, "/login");

  await leader.fill("#email", LEADER.email);
  await leader.fill("#password", "not the password");
  const [res] = await Promise.all([
    leader.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/login"),
    leader.click("button:has-text('Sign in')"),
  ]);
  assert.equal(res.status(), 401);
  const error = leader.locator("#login-error");
  await error.waitFor();
  assert.equal(await error.getAttribute("role"), "alert");
  assert.match(await error.textContent(), /Invalid email or password/);
  assert.equal(await leader.inputValue("#email"), LEADER.email, "the email is kept");
  assert.equal(await leader.inputValue("#password"), "", "the password is not echoed back");
  await screenshot(leader, "login-error-desktop");

  await leader.fill("#password", LEADER.password);
  await Promise.all([leader.waitForURL("**/inbox"), leader.click("button:has-text('Sign in')")]);
  await leader.locator("#conversation-list").waitFor();
});

test("a member texts a photo and a PDF from /sandbox; the leader sees them live and opens the original", async () => {
  // The leader's inbox is open. Wait for its event stream to be open, or a message could come
  // before it listens; then mark the page so that a reload would be noticed.
  const stream = leader.waitForResponse((r) => new URL(r.url()).pathname === "/events");
  await leader.goto(url("/inbox"));
  const events = await stream;
  assert.equal(events.status(), 200);
  assert.match(events.headers()["content-type"] || "", /^text\/event-stream/);
  await leader.evaluate(() => { window.__e2eNoReload = true; });
  assert.equal(await leader.locator("a.conversation").count(), 0);

  memberContext = await browser.newContext({ ...PHONE, baseURL: BASE_URL });
  sim = await newPage(memberContext, "sandbox");
  await sim.goto(url("/sandbox"));
  await sim.fill("#sim-phone", MEMBER_PHONE);
  await sim.locator("#sim-phone").dispatchEvent("change");
  await sim.locator("#sim-phone").blur();
  assert.equal(await sim.inputValue("#sim-church"), CHURCH.number);
  await sim.locator("#sim-thread .empty").waitFor();
  await sim.setInputFiles("#sim-files", [join(FIXTURES, "photo.jpg"), join(FIXTURES, "doc.pdf")]);
  assert.match(await sim.locator("#sim-files-label").textContent(), /photo\.jpg, doc\.pdf/);
  await sim.fill("#sim-text", MEMBER_TEXT);
  const [sent] = await Promise.all([
    sim.waitForResponse((r) => new URL(r.url()).pathname === "/sandbox/send"),
    sim.click("#sim-send"),
  ]);
  assert.equal(sent.status(), 201);
  await sim.locator("#sim-thread article.bubble.out").filter({ hasText: MEMBER_TEXT }).waitFor();
  assert.equal(await sim.inputValue("#sim-text"), "", "the simulator clears its composer");

  // Live: the conversation appears in the leader's list without a reload, unread.
  const item = leader.locator("#conversation-list a.conversation").first();
  await item.waitFor();
  assert.equal(await leader.evaluate(() => window.__e2eNoReload), true, "the inbox was not reloaded");
  assert.match(await item.getAttribute("class"), /\bunread\b/);
  await item.locator(".badge").waitFor();
  assert.match(await item.locator(".preview").textContent(), /Photos from Sunday/);
  conversationId = await item.getAttribute("data-id");
  assert.ok(conversationId);

  await Promise.all([leader.waitForURL(`**/inbox/${conversationId}`), item.click()]);
  const bubble = leader.locator("#messages article.bubble.in").filter({ hasText: MEMBER_TEXT });
  await bubble.waitFor();
  // The files are fetched by a background job; the bubble is swapped in when they are stored.
  await until(leader, "the attachments to be stored", () =>
    document.querySelectorAll("#messages .media.pending").length === 0 &&
    document.querySelector("#messages a.media.image img") !== null &&
    document.querySelector("#messages a.media.doc") !== null);
  assert.equal(await leader.locator("#messages .media.failed").count(), 0);
  const img = bubble.locator("a.media.image img");
  await img.scrollIntoViewIfNeeded();
  await until(leader, "the photo to load", () => {
    const i = document.querySelector("#messages a.media.image img");
    return i && i.complete && i.naturalWidth > 0;
  });
  assert.deepEqual(
    await img.evaluate((i) => [i.naturalWidth, i.naturalHeight]),
    [64, 48],
    "the photo's preview is displayed, at the original's 64×48 (previews are never enlarged)",
  );
  const doc = bubble.locator("a.media.doc");
  assert.match(await doc.locator(".doc-name").textContent(), /doc\.pdf/);

  // The image's link leads to the untouched original (302 → the file), byte for byte.
  const href = await bubble.locator("a.media.image").getAttribute("href");
  const redirect = await leader.request.get(url(href), { maxRedirects: 0 });
  assert.equal(redirect.status(), 302, `${href} redirects to the original`);
  assert.ok(redirect.headers().location);
  const original = await leader.request.get(url(href));
  assert.equal(original.status(), 200);
  assert.match(original.headers()["content-type"] || "", /^image\/jpeg/);
  assert.equal(sha256(await original.body()), sha256(readFileSync(join(FIXTURES, "photo.jpg"))));
  // …and a person clicking it gets the picture in a new tab.
  const [tab] = await Promise.all([leaderContext.waitForEvent("page"), bubble.locator("a.media.image").click()]);
  await tab.waitForLoadState();
  await until(tab, "the original to display", () => {
    const i = document.querySelector("img");
    return i && i.complete && i.naturalWidth === 64;
  });
  await tab.close();

  const pdf = await leader.request.get(url(await doc.getAttribute("href")));
  assert.equal(pdf.status(), 200);
  assert.equal(sha256(await pdf.body()), sha256(readFileSync(join(FIXTURES, "doc.pdf"))));
});

test("the leader replies with a caption and an image; the progress bar shows; the simulator receives it", async () => {
  const image = makeScenePng(480, 320);
  assert.ok(image.length < MMS_MAX, `the reply image (${image.length} bytes) fits in an MMS`);

  await leader.fill("#content", CAPTION);
  await leader.setInputFiles("#file", { name: "picnic.png", mimeType: "image/png", buffer: image });
  await leader.locator("#preview-image").waitFor();
  await until(leader, "the preview to load", () => document.getElementById("preview-image").naturalWidth === 480);
  assert.equal(await leader.locator("#file-name").textContent(), "picnic.png");
  assert.match(await leader.locator("#file-size").textContent(), /\d+ (KB|bytes)/);
  assert.equal((await leader.locator("#note").textContent()).trim(), "Will be sent at full quality");
  await screenshot(leader, "composer-attached-desktop");

  // Hold the upload at the network layer so the progress bar's moment can be seen for sure.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let seen;
  const reached = new Promise((resolve) => { seen = resolve; });
  await leader.route("**/reply-with-media", async (route) => {
    seen();
    await held;
    await route.continue();
  });
  try {
    const response = leader.waitForResponse((r) => r.url().endsWith("/reply-with-media"));
    await leader.click("#send");
    await reached;
    assert.equal(await leader.locator("#progress").isVisible(), true, "the progress bar shows during the upload");
    assert.equal(await leader.locator("#send").isDisabled(), true, "Send is disabled during the upload");
    await screenshot(leader, "thread-uploading-desktop");
    release();
    assert.equal((await response).status(), 201);
  } finally {
    release();
    await leader.unroute("**/reply-with-media");
  }

  await leader.locator("#progress").waitFor({ state: "hidden" });
  const out = leader.locator("#messages article.bubble.out").filter({ hasText: CAPTION });
  await out.waitFor();
  await until(leader, "the sent image to load", (caption) => {
    const b = [...document.querySelectorAll("#messages article.bubble.out")].find((x) => x.textContent.includes(caption));
    const i = b?.querySelector("a.media.image img");
    return i && i.complete && i.naturalWidth === 480;
  }, CAPTION);
  assert.equal(await leader.inputValue("#content"), "", "the composer is cleared");
  assert.equal(await leader.getAttribute("#attachment", "hidden"), "", "the attachment is put away");
  assert.equal(await leader.locator("#note").isHidden(), true);
  assert.equal(await leader.locator("#composer-error").isHidden(), true);

  // The simulator, still open and never reloaded, shows the church's reply with the picture.
  const reply = sim.locator("#sim-thread article.bubble.in").filter({ hasText: CAPTION });
  await reply.waitFor();
  await until(sim, "the reply's image on the phone", () => {
    const i = document.querySelector("#sim-thread article.bubble.in img.media.image");
    return i && i.complete && i.naturalWidth === 480;
  });
  const src = await reply.locator("img.media.image").getAttribute("src");
  const received = await sim.request.get(url(src));
  assert.equal(received.status(), 200);
  assert.equal(sha256(await received.body()), sha256(image), "the member receives the file untouched");
  await screenshot(sim, "sandbox-phone");
});

test("a file over the MMS limit is announced as a link", async () => {
  const big = makeNoisePng(110, 110); // ~36 KB of noise: above MMS_MAX_ATTACHMENT_BYTES (20000)
  assert.ok(big.length > MMS_MAX, `the generated file (${big.length} bytes) is above the MMS limit (${MMS_MAX})`);
  await leader.setInputFiles("#file", { name: "noise.png", mimeType: "image/png", buffer: big });
  const note = leader.locator("#note");
  await note.waitFor();
  assert.equal((await note.textContent()).trim(), "Too large for MMS at full quality — the full-quality photo goes as a link");
  assert.match(await note.getAttribute("class"), /\blink\b/);
  // A photo offers its preview by MMS with the link (the default), or the link alone.
  await leader.locator("#large-image").waitFor();
  assert.equal(await leader.isChecked('#large-image input[value="preview"]'), true);
  await leader.locator("#preview-image").waitFor();
  await screenshot(leader, "composer-oversize-desktop");

  await leader.click("#remove-file");
  await note.waitFor({ state: "hidden" });
  assert.equal(await leader.getAttribute("#attachment", "hidden"), "", "the attachment is put away");
  assert.equal(await leader.evaluate(() => document.getElementById("file").files.length), 0);
});

test("keyboard: Shift+Enter adds a line, Enter sends", async () => {
  const outs = leader.locator("#messages article.bubble.out");
  const before = await outs.count();
  const content = leader.locator("#content");
  await content.click();
  await content.pressSequentially("See you on Sunday");
  await content.press("Shift+Enter");
  await content.pressSequentially("Bring a friend");
  assert.equal(await content.inputValue(), "See you on Sunday\nBring a friend");
  assert.equal(await outs.count(), before, "Shift+Enter does not send");

  await content.press("Enter");
  const sent = outs.filter({ hasText: "Bring a friend" });
  await sent.waitFor();
  assert.equal(await outs.count(), before + 1);
  assert.match(await sent.locator("p.text").textContent(), /See you on Sunday\s+Bring a friend/);
  await until(leader, "the composer to clear", () => document.getElementById("content").value === "");
  await sim.locator("#sim-thread article.bubble.in").filter({ hasText: "Bring a friend" }).waitFor();
});

test("a new text from the member appears in the open thread live", async () => {
  await leader.evaluate(() => { window.__e2eNoReload = true; });
  const text = "Amen! See you there";
  await sim.fill("#sim-text", text);
  await sim.locator("#sim-text").press("Enter");
  await leader.locator("#messages article.bubble.in").filter({ hasText: text }).waitFor();
  assert.equal(await leader.evaluate(() => window.__e2eNoReload), true, "the thread was not reloaded");
  const last = await leader.evaluate(() => [...document.querySelectorAll("#messages article.bubble")].at(-1).textContent);
  assert.match(last, /Amen! See you there/, "the new message is the last one");
  await leader.locator("#conversation-list a.conversation .preview").filter({ hasText: text }).waitFor();
});

test("a text that comes before the thread's live stream opens still appears", async () => {
  // The stream is held back while the page renders and the member texts: the server publishes
  // to no one, and the page must catch up when its stream opens.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await leader.route("**/events", async (route) => { await held; await route.continue(); });
  try {
    await leader.reload();
    await leader.locator("#messages article.bubble").first().waitFor();
    await leader.evaluate(() => { window.__e2eNoReload = true; });
    const text = "Texted while the page was loading";
    await Promise.all([
      sim.waitForResponse((r) => new URL(r.url()).pathname === "/sandbox/send"),
      sim.fill("#sim-text", text).then(() => sim.locator("#sim-text").press("Enter")),
    ]);
    assert.equal(await leader.locator("#messages article.bubble").filter({ hasText: text }).count(), 0,
      "not shown before the stream opens (the page was rendered before it came)");
    release();
    await leader.locator("#messages article.bubble.in").filter({ hasText: text }).waitFor();
    const last = await leader.evaluate(() => [...document.querySelectorAll("#messages article.bubble")].at(-1).textContent);
    assert.match(last, /Texted while the page was loading/, "added as the newest message");
    assert.equal(await leader.evaluate(() => window.__e2eNoReload), true, "added in place, the page not reloaded");
  } finally {
    release();
    await leader.unroute("**/events");
  }
});

test("screenshots of the inbox and a thread at desktop and phone widths", async () => {
  assert.ok(conversationId, "a conversation exists");
  // Desktop: list and thread side by side.
  await leader.goto(url("/inbox"));
  await leader.locator("#conversation-list a.conversation").first().waitFor();
  await leader.locator(".placeholder").waitFor();
  await screenshot(leader, "inbox-desktop");
  await leader.goto(url(`/inbox/${conversationId}`));
  await leader.locator(".list-pane").waitFor();
  await leader.locator("#composer").waitFor();
  await until(leader, "every image in the thread to load", () =>
    [...document.querySelectorAll("#messages img")].every((i) => i.complete && i.naturalWidth > 0));
  await screenshot(leader, "thread-desktop");

  // Phone: the list and the thread are separate views.
  const phone = await browser.newContext({ ...PHONE, baseURL: BASE_URL, storageState: await leaderContext.storageState() });
  const page = await newPage(phone, "leader-phone");
  await page.goto(url("/inbox"));
  await page.locator("#conversation-list a.conversation").first().waitFor();
  assert.equal(await page.locator(".thread-pane").isHidden(), true, "no thread pane beside the list on a phone");
  await screenshot(page, "inbox-phone");
  await Promise.all([page.waitForURL(`**/inbox/${conversationId}`), page.locator("a.conversation").first().click()]);
  await page.locator("#composer").waitFor();
  assert.equal(await page.locator(".list-pane").isHidden(), true, "the list is hidden in a thread on a phone");
  await page.locator(".thread-head .back").waitFor();
  await until(page, "every image in the thread to load", () =>
    [...document.querySelectorAll("#messages img")].every((i) => i.complete && i.naturalWidth > 0));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await screenshot(page, "thread-phone");
  assert.ok(overflow <= 0, `the thread fits the phone's width (overflows by ${overflow}px)`);
  await phone.close();

  // The simulator at desktop width too.
  const desk = await browser.newContext({ ...DESKTOP, baseURL: BASE_URL });
  const simDesk = await newPage(desk, "sandbox-desktop");
  await simDesk.goto(url("/sandbox"));
  await simDesk.fill("#sim-phone", MEMBER_PHONE);
  await simDesk.locator("#sim-phone").dispatchEvent("change");
  await simDesk.locator("#sim-phone").blur();
  await simDesk.locator("#sim-thread article.bubble").first().waitFor();
  await until(simDesk, "the simulator's images to load", () =>
    [...document.querySelectorAll("#sim-thread img")].every((i) => i.complete && i.naturalWidth > 0));
  await screenshot(simDesk, "sandbox-desktop");
  await desk.close();
});

test("the media library: previews, a type filter, two files chosen and downloaded as a ZIP, scrolling for more", async () => {
  await leader.goto(url("/library"));
  const tiles = leader.locator("#tiles li.tile");
  await tiles.first().waitFor();
  const all = await tiles.count();
  assert.ok(all >= 3, `the member's photo and PDF and the leader's picture are there (${all} files)`);
  await until(leader, "the photo previews to load", () => {
    const imgs = [...document.querySelectorAll("#tiles li.kind-image img")];
    return imgs.length >= 2 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  });
  const previewSrc = await leader.locator("#tiles li.kind-image img").first().getAttribute("src");
  assert.match(previewSrc, /^\/api\/media\/[0-9a-f-]+\/preview\/small$/, "tiles show the small preview, not the original");
  assert.ok(await leader.locator("#tiles li.kind-document .icon-tile").count() >= 1, "documents show an icon");
  // Who sent each file, and its date and size in full; the filter's controls on one line.
  const tileFacts = () => [...document.querySelectorAll("#tiles li.tile")].map((t) => ({
    name: t.querySelector(".tile-name").textContent.trim(),
    from: t.querySelector(".tile-from").textContent.replace(/\s+/g, " ").trim(),
    meta: t.querySelector(".tile-meta").textContent.trim(),
    clipped: [...t.querySelectorAll(".tile-from, .tile-meta")].some((e) => e.scrollWidth > e.clientWidth + 1),
  }));
  const checkTiles = async (page, label) => {
    const facts = await page.evaluate(tileFacts);
    const sent = facts.find((f) => f.name === "picnic.png");
    assert.match(sent?.from ?? "", /^Sent by pastor@grace\.test to /, `${label}: the church's own photo: ${JSON.stringify(sent)}`);
    const received = facts.find((f) => f.name === "doc.pdf");
    assert.match(received?.from ?? "", /^Received from /, `${label}: the member's PDF: ${JSON.stringify(received)}`);
    for (const f of facts) {
      assert.match(f.meta, /^\w{3} \d{1,2}(, \d{4})? · \d[\d.,]* (bytes|KB|MB|GB)$/, `${label}: date and size of ${f.name}: ${f.meta}`);
      assert.equal(f.clipped, false, `${label}: ${f.name}'s details are cut off`);
    }
  };
  await checkTiles(leader, "desktop");
  const bottoms = await leader.evaluate(() =>
    [...document.querySelectorAll("#library-filter select, #library-filter input, #library-filter button")]
      .map((e) => Math.round(e.getBoundingClientRect().bottom)));
  assert.ok(Math.max(...bottoms) - Math.min(...bottoms) <= 1, `the filter's controls line up: ${bottoms}`);
  await screenshot(leader, "library-desktop");

  // Photos only.
  await leader.selectOption('#library-filter select[name="type"]', "image");
  await Promise.all([leader.waitForURL(/[?&]type=image/), leader.click('#library-filter button[type="submit"]')]);
  await tiles.first().waitFor();
  const photos = await tiles.count();
  assert.ok(photos >= 2 && photos < all, `${photos} photos of ${all} files`);
  assert.equal(await leader.locator("#tiles li.tile:not(.kind-image)").count(), 0, "only photos");

  // Two chosen, downloaded as one ZIP that a real reader accepts.
  const boxes = leader.locator('#tiles input[name="pick"]');
  await boxes.nth(0).check();
  await boxes.nth(1).check();
  assert.equal((await leader.textContent("#selected-count")).trim(), "2 files selected");
  assert.equal(await leader.isEnabled("#download-selected"), true);
  await screenshot(leader, "library-selected-desktop");
  const [download] = await Promise.all([leader.waitForEvent("download"), leader.click("#download-selected")]);
  const zipPath = join(SCREENSHOT_DIR, "library-selected.zip");
  await download.saveAs(zipPath);
  assert.match(download.suggestedFilename(), /^koinonia-media-\d{4}-\d{2}-\d{2}\.zip$/);
  const listing = JSON.parse(execFileSync("python3", ["-c",
    "import json, sys, zipfile\n" +
    "z = zipfile.ZipFile(sys.argv[1])\n" +
    "assert z.testzip() is None\n" +
    "print(json.dumps([[i.filename, i.file_size] for i in z.infolist()]))",
    zipPath]).toString());
  assert.equal(listing.length, 2, JSON.stringify(listing));
  for (const [name, size] of listing) {
    assert.match(name, /^\d{4}-\d{2}-\d{2} [^/]+\/[^/]+$/, "named by date and member");
    assert.ok(size > 0);
  }
  const audit = await (await leader.request.get(url("/api/audit?limit=10"))).json();
  const exported = audit.data.entries.find((e) => e.action === "media.export");
  assert.ok(exported, "the export is in the audit log");

  // Infinite scroll, one tile per page: scrolling reaches every file.
  await leader.goto(url("/library?limit=1"));
  await tiles.first().waitFor();
  await until(leader, "every tile to load while scrolling", (n) => {
    document.getElementById("more")?.scrollIntoView();
    return document.querySelectorAll("#tiles li.tile").length >= n;
  }, all);
  assert.equal(await tiles.count(), all);
  assert.equal(await leader.locator("#more").count(), 0, "no more to load at the end");

  // From a thread, "Files" opens the library narrowed to that conversation.
  await leader.goto(url(`/inbox/${conversationId}`));
  await Promise.all([leader.waitForURL(/\/library\?conversationId=/), leader.click(".thread-actions a[href^='/library']")]);
  await tiles.first().waitFor();
  assert.equal(await tiles.count(), all, "every file so far is in this one conversation");

  const phone = await browser.newContext({ ...PHONE, baseURL: BASE_URL, storageState: await leaderContext.storageState() });
  const page = await newPage(phone, "leader-phone-library");
  await page.goto(url("/library"));
  await until(page, "the previews to load", () =>
    [...document.querySelectorAll("#tiles img")].every((i) => i.complete && i.naturalWidth > 0));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await checkTiles(page, "phone");
  await screenshot(page, "library-phone");
  assert.ok(overflow <= 0, `the library fits the phone's width (overflows by ${overflow}px)`);
  await phone.close();
});

// Defects once seen in the screenshots, guarded against.
test("a thread with no file chosen shows no attachment row (no stray ✕ button)", async () => {
  await leader.goto(url(`/inbox/${conversationId}`));
  await leader.locator("#composer").waitFor();
  assert.equal(await leader.getAttribute("#attachment", "hidden"), "");
  assert.equal(await leader.locator("#remove-file").isVisible(), false, "the ✕ (remove file) button is visible with no file");
  assert.equal(await leader.locator("#attachment").isVisible(), false, "the empty attachment row takes space");
});

test("opening a thread shows its newest message", async () => {
  for (const [label, options] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    const context = await browser.newContext({ ...options, baseURL: BASE_URL, storageState: await leaderContext.storageState() });
    const page = await newPage(context, `leader-${label}`);
    try {
      await page.goto(url(`/inbox/${conversationId}`));
      await until(page, "every image in the thread to load", () =>
        [...document.querySelectorAll("#messages img")].every((i) => i.complete && i.naturalWidth > 0));
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      const gap = await page.evaluate(() => {
        const m = document.getElementById("messages");
        return Math.round(m.scrollHeight - m.scrollTop - m.clientHeight);
      });
      assert.ok(gap <= 2, `${label}: the newest message is ${gap}px below the visible part of the thread`);
    } finally {
      await context.close();
    }
  }
});

test("times show in the reader's own time zone, with the date on other days and the full time on hover", async () => {
  // What the page should say in `timeZone` (the same rules as static/times.js).
  const labeller = (timeZone) => {
    const ymd = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });
    const time = new Intl.DateTimeFormat("en-US", { timeZone, hour: "numeric", minute: "2-digit" });
    const day = new Intl.DateTimeFormat("en-US", { timeZone, month: "short", day: "numeric" });
    const dayYear = new Intl.DateTimeFormat("en-US", { timeZone, year: "numeric", month: "short", day: "numeric" });
    const weekday = new Intl.DateTimeFormat("en-US", { timeZone, weekday: "long" });
    return {
      // ICU versions word the full form differently; the weekday and year are the same in all.
      full: (when) => [weekday.format(when), String(new Date(when).getUTCFullYear())],
      label: (when, format) => {
        const [d, now] = [ymd.format(when), ymd.format(new Date())];
        const date = (d.slice(0, 4) === now.slice(0, 4) ? day : dayYear).format(when);
        if (format === "day") return date;
        if (d === now) return time.format(when);
        return format === "date" ? date : `${date}, ${time.format(when)}`;
      },
    };
  };
  for (const timezoneId of ["America/Chicago", "Asia/Kolkata"]) {
    const context = await browser.newContext({
      ...DESKTOP,
      baseURL: BASE_URL,
      locale: "en-US",
      timezoneId,
      storageState: await leaderContext.storageState(),
    });
    const page = await newPage(context, `leader-${timezoneId}`);
    try {
      const expect = labeller(timezoneId);
      for (const path of [`/inbox/${conversationId}`, "/library"]) {
        await page.goto(url(path));
        await until(page, `${path}: every time rewritten`, () =>
          document.querySelectorAll("time[datetime]").length > 0 && !document.querySelector("time[datetime]:not([data-local])"));
        const times = await page.evaluate(() =>
          [...document.querySelectorAll("time[datetime]")].map((t) => ({
            datetime: t.getAttribute("datetime"),
            text: t.textContent,
            title: t.title,
            format: t.dataset.format || "",
          })));
        const spaces = (text) => text.replace(/\s/gu, " ");
        for (const t of times) {
          const when = new Date(t.datetime);
          assert.equal(spaces(t.text), spaces(expect.label(when, t.format)), `${timezoneId} ${path}: ${t.datetime}`);
          for (const part of expect.full(when)) {
            assert.ok(t.title.includes(part), `${timezoneId} ${path}: the tooltip "${t.title}" lacks ${part}`);
          }
        }
        if (path !== "/library") {
          // The server's own (UTC) label is not what a reader in Chicago or India sees.
          const first = times.find((t) => t.format === "");
          const utc = new Date(first.datetime).toISOString().slice(11, 16);
          assert.notEqual(first.text, utc, `${timezoneId}: a message time still reads as UTC`);
        }
      }
      await page.goto(url(`/inbox/${conversationId}`));
      await screenshot(page, `times-${timezoneId.replace("/", "-")}`);
    } finally {
      await context.close();
    }
  }
});

test("the simulator shows the member's own photo; a refused file is named on both sides and its reason wraps", async () => {
  // The member's photo from the first message, as a picture on the simulated phone.
  await until(sim, "the member's own photo to show on the phone", () =>
    [...document.querySelectorAll("#sim-thread article.bubble.out img.media.image")].some((i) => i.complete && i.naturalWidth > 0));

  // A Windows program is not a file koinonia keeps: the message arrives, the file is refused.
  const exe = Buffer.alloc(4096);
  exe.write("MZ", 0, "binary");
  exe.writeUInt32LE(0x80, 0x3c);
  exe.write("PE\0\0", 0x80, "binary");
  await sim.setInputFiles("#sim-files", { name: "church-directory-installer.exe", mimeType: "application/octet-stream", buffer: exe });
  await sim.fill("#sim-text", "Here is the directory app");
  const [sent] = await Promise.all([
    sim.waitForResponse((r) => new URL(r.url()).pathname === "/sandbox/send"),
    sim.click("#sim-send"),
  ]);
  assert.equal(sent.status(), 201);

  await leader.goto(url(`/inbox/${conversationId}`));
  const failed = leader.locator("#messages article.bubble.in .media.failed").filter({ hasText: "church-directory-installer.exe" });
  await failed.waitFor();
  assert.match(await failed.textContent(), /church-directory-installer\.exe could not be stored: file type \S+ is not allowed/);

  const refused = sim.locator("#sim-thread .media.failed").filter({ hasText: "church-directory-installer.exe" });
  await refused.waitFor();
  assert.match(await refused.textContent(), /not delivered: file type \S+ is not allowed/);
  const inside = await sim.evaluate(() => {
    const frame = document.getElementById("sim-thread").getBoundingClientRect();
    return [...document.querySelectorAll("#sim-thread .media, #sim-thread .bubble")].every((e) => {
      const r = e.getBoundingClientRect();
      return r.left >= frame.left - 1 && r.right <= frame.right + 1;
    });
  });
  assert.ok(inside, "every bubble and file stays inside the phone's frame");
  await refused.scrollIntoViewIfNeeded();
  await screenshot(sim, "sandbox-refused-file-phone");
  await failed.scrollIntoViewIfNeeded();
  await screenshot(leader, "thread-refused-file-desktop");
});

test("one navigation on every page: the same links and the account, the current page marked", async () => {
  const seen = {};
  for (const [path, current] of [["/inbox", "Inbox"], ["/library", "Library"], ["/system", "System"]]) {
    await leader.goto(url(path));
    seen[path] = await leader.evaluate(() => ({
      links: [...document.querySelectorAll(".topbar nav a")].map((a) => a.textContent.trim()),
      current: [...document.querySelectorAll('.topbar nav a[aria-current="page"]')].map((a) => a.textContent.trim()),
      account: document.querySelector(".topbar .who-am-i")?.textContent.trim(),
      signOut: !!document.querySelector(".topbar form.logout button"),
    }));
    assert.deepEqual(seen[path].current, [current], `${path} marks itself`);
    assert.equal(seen[path].account, "pastor@grace.test", `${path} shows who is signed in`);
    assert.ok(seen[path].signOut, `${path} can sign out`);
  }
  assert.deepEqual(seen["/library"].links, seen["/inbox"].links);
  assert.deepEqual(seen["/system"].links, seen["/inbox"].links);
  assert.deepEqual(seen["/inbox"].links, ["Inbox", "Library", "Phone simulator", "Settings", "System"]);
  assert.equal(await leader.inputValue("#time_zone"), "America/Chicago", "/system shows the zone chosen at setup");
  await screenshot(leader, "system-desktop");
});

test("no script errors and no Content-Security-Policy violations in any page", () => {
  assert.deepEqual(problems, []);
});
