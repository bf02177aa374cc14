// Accessibility of every page, in a real headless Chromium: axe-core (the rules of WCAG 2.x A and
// AA and axe's best practices) finds no serious or critical violation at desktop and phone width;
// every control is reached and used by keyboard; the focused control is visibly outlined.
// Runs after dashboard.test.mjs (scripts/e2e orders the files) on the same server: its church, its
// leader and their conversation with a photo, a PDF and a reply, so the pages are not empty.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { BASE_URL, DESKTOP, PHONE, closeBrowser, launchBrowser, newContextPage, screenshot, signedInState, violations } from "./lib.mjs";

const LEADER = { email: "pastor@grace.test", password: "correct horse battery staple" };
const url = (path) => new URL(path, BASE_URL).toString();

let browser;
let signedIn; // the leader's cookies: one sign-in for every test (logins are rate limited)
const problems = [];

before(async () => {
  browser = await launchBrowser();
  signedIn = await signedInState(browser, LEADER);
});

after(async () => {
  await closeBrowser(browser);
});

const newPage = (options, storageState) => newContextPage(browser, options, problems, storageState);

/** The newest one-to-one conversation's dashboard path (dashboard.test.mjs made it: a photo, a PDF, a reply). */
async function firstThread(page) {
  const res = await page.request.get(url("/api/conversations"));
  assert.equal(res.status(), 200);
  // A member's own conversation (groups.test.mjs audits the group page it makes).
  const first = (await res.json()).data.conversations.find((c) => !c.group);
  assert.ok(first, "a conversation exists (dashboard.test.mjs runs first)");
  return `/inbox/${first.id}`;
}

/** Opens path, lets its scripts settle, and returns "path: violation" lines. */
async function audit(page, path, name) {
  await page.goto(url(path));
  await page.waitForLoadState("networkidle").catch(() => {}); // the live event stream never idles
  const found = (await violations(page)).map((v) => `${path}: ${v}`);
  await screenshot(page, name);
  return found;
}

for (const [width, options] of [["desktop", DESKTOP], ["phone", PHONE]]) {
  test(`axe-core finds no serious or critical violation on any page at ${width} width`, async () => {
    const out = await newPage(options);
    const found = [];
    found.push(...(await audit(out, "/login", `a11y-login-${width}`)));

    const page = await newPage(options, signedIn);
    const thread = await firstThread(page);
    found.push(...(await audit(page, "/inbox", `a11y-inbox-${width}`)));
    found.push(...(await audit(page, thread, `a11y-thread-${width}`)));
    if (width === "phone") {
      // The member actions behind their menu button, opened.
      await page.click("#member-menu");
      await page.waitForSelector("#thread-actions:not([hidden])");
      found.push(...(await violations(page)).map((v) => `${thread} (menu open): ${v}`));
    }
    found.push(...(await audit(page, "/inbox?q=0142", `a11y-search-${width}`)));
    found.push(...(await audit(page, "/library", `a11y-library-${width}`)));
    found.push(...(await audit(page, "/settings", `a11y-settings-${width}`)));
    found.push(...(await audit(page, "/system", `a11y-system-${width}`)));
    assert.ok(await page.isVisible('.topbar nav a[href="/system"][aria-current="page"]'), `System is in the ${width} navigation`);
    const fits = await page.evaluate(() => document.querySelector(".topbar").scrollWidth <= window.innerWidth);
    assert.ok(fits, `the ${width} top bar fits the screen`);
    found.push(...(await audit(page, "/sandbox", `a11y-sandbox-${width}`)));
    found.push(...(await audit(page, "/api/docs", `a11y-api-docs-${width}`)));
    await page.goto(url("/inbox/00000000-0000-0000-0000-000000000000"));
    found.push(...(await violations(page)).map((v) => `error page: ${v}`));
    assert.deepEqual(found, [], "no serious or critical accessibility violations");
    await out.context().close();
    await page.context().close();
  });
}

/** The element that has focus, described, with whether an outline or ring shows around it. */
function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    const ring = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
    const within = el.closest(".attach"); // the paperclip label draws the ring for its hidden input
    const withinRing = within ? getComputedStyle(within).outlineStyle !== "none" : false;
    return {
      tag: el.tagName.toLowerCase(),
      type: el.getAttribute("type") || "",
      id: el.id,
      text: (el.getAttribute("aria-label") || el.textContent || el.value || "").trim().slice(0, 40),
      href: el.getAttribute("href"),
      visible: ring || withinRing,
    };
  });
}

/** Presses Tab until `match` holds for the focused element (at most `limit` times). */
async function tabTo(page, what, match, limit = 60) {
  const seen = [];
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press("Tab");
    const f = await focused(page);
    if (f) {
      assert.ok(f.visible, `focus is visible on ${f.tag}[${f.type}]#${f.id} "${f.text}"`);
      seen.push(`${f.tag}${f.id ? "#" + f.id : ""} ${f.text}`);
      if (match(f)) return f;
    }
  }
  throw new Error(`Tab never reached ${what}; reached: ${seen.join(" | ")}`);
}

test("by keyboard alone: open a conversation, name the member, write a reply, reach every control; focus is always visible", async () => {
  const page = await newPage(DESKTOP, signedIn);
  const thread = await firstThread(page);

  // The inbox: the navigation, then the conversation, opened with Enter.
  await page.goto(url("/inbox"));
  await tabTo(page, "the Library link", (f) => f.tag === "a" && f.text === "Library");
  await tabTo(page, "the conversation", (f) => f.tag === "a" && f.href === thread);
  await Promise.all([page.waitForURL((u) => u.pathname === thread), page.keyboard.press("Enter")]);

  // The thread: "Name this member" opens with Enter; the name is typed and saved with Enter.
  await tabTo(page, "Name this member", (f) => f.tag === "summary");
  await page.keyboard.press("Enter");
  await tabTo(page, "the first name", (f) => f.tag === "input");
  assert.equal(await page.evaluate(() => document.activeElement.name), "first_name");
  await page.keyboard.type("Keyboard");
  await Promise.all([page.waitForURL((u) => u.pathname === thread), page.keyboard.press("Enter")]);
  await page.waitForFunction(() => document.querySelector(".thread-head h1")?.textContent.includes("Keyboard"));

  // The composer: the file button, the reply box (typed into), the send button.
  await tabTo(page, "the attach button", (f) => f.id === "file");
  await tabTo(page, "the reply box", (f) => f.id === "content");
  await page.keyboard.type("Typed without a mouse");
  await tabTo(page, "the Send button", (f) => f.id === "send");
  await page.keyboard.press("Enter");
  await page.waitForFunction(
    () => [...document.querySelectorAll("#messages .bubble")].some((b) => b.textContent.includes("Typed without a mouse")),
  );
  await screenshot(page, "a11y-keyboard-thread-desktop");

  // The library: the filter, then a tile's checkbox ticked with Space, which enables the download.
  await page.goto(url("/library"));
  await tabTo(page, "the type filter", (f) => f.tag === "select");
  await tabTo(page, "a tile's checkbox", (f) => f.tag === "input" && f.text.startsWith("Select "));
  await page.keyboard.press("Space");
  assert.equal(await page.evaluate(() => document.activeElement.checked), true, "Space ticks the tile");
  assert.equal(await page.isEnabled("#download-selected"), true, "a ticked tile can be downloaded");
  await screenshot(page, "a11y-keyboard-library-desktop");
  await page.context().close();
});

test("at phone width the member menu opens and closes by keyboard, focus moving into it and back", async () => {
  const page = await newPage(PHONE, signedIn);
  const thread = await firstThread(page);
  await page.goto(url(thread));
  await tabTo(page, "the member menu button", (f) => f.id === "member-menu");
  await page.keyboard.press("Enter");
  assert.equal(await page.getAttribute("#member-menu", "aria-expanded"), "true");
  assert.equal(await page.isVisible("#thread-actions"), true, "the menu shows");
  await tabTo(page, "a member action", (f) => f.tag === "summary" || f.tag === "a");
  await screenshot(page, "a11y-keyboard-menu-phone");
  await page.keyboard.press("Escape");
  assert.equal(await page.getAttribute("#member-menu", "aria-expanded"), "false", "Escape closes the menu");
  assert.equal(await page.isVisible("#thread-actions"), false);
  assert.equal((await focused(page))?.id, "member-menu", "focus returns to the menu button");
  await page.context().close();
});

test("no script errors while auditing", () => {
  assert.deepEqual(problems, []);
});
