// The dashboard as an installable app, in a real headless Chromium: the page links a manifest
// Chromium accepts, the service worker takes control of the pages, pages still load through it,
// an offline page load shows the offline page, and nothing but that page is ever cached — no
// API answer, no page, no media. Needs no sign-in (the worker registers on every page).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { BASE_URL, DESKTOP, PHONE, closeBrowser, launchBrowser, newContextPage, screenshot } from "./lib.mjs";

const url = (path) => new URL(path, BASE_URL).toString();

let browser;
const problems = [];

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await closeBrowser(browser);
});

const newPage = (options) => newContextPage(browser, options, problems);

test("the manifest is linked and valid, with the icons it names", async () => {
  const page = await newPage(PHONE);
  await page.goto(url("/login"));
  const href = await page.getAttribute('link[rel="manifest"]', "href");
  assert.equal(href, "/manifest.webmanifest");
  const res = await page.request.get(url(href));
  assert.equal(res.status(), 200);
  const manifest = await res.json();
  assert.equal(manifest.display, "standalone");
  assert.equal(manifest.start_url, "/inbox");
  for (const icon of manifest.icons) {
    const got = await page.request.get(url(icon.src));
    assert.equal(got.status(), 200, icon.src);
    assert.equal(got.headers()["content-type"], icon.type, icon.src);
  }
  // Chromium's own reading of the manifest (what "Add to Home Screen" uses): no errors.
  const cdp = await page.context().newCDPSession(page);
  const { errors, url: manifestUrl } = await cdp.send("Page.getAppManifest");
  assert.equal(new URL(manifestUrl).pathname, "/manifest.webmanifest");
  assert.deepEqual(errors, [], "Chromium finds no error in the manifest");
  await page.context().close();
});

test("the service worker controls the pages, shows the offline page offline and caches nothing else", async () => {
  const page = await newPage(DESKTOP);
  await page.goto(url("/login"));
  const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
  assert.equal(scope, url("/"));
  await page.reload();
  assert.equal(await page.evaluate(() => !!navigator.serviceWorker.controller), true, "the page is controlled");

  // Pages, API answers and static files pass through without being cached.
  await page.goto(url("/login"));
  await page.request.get(url("/api/openapi.json"));
  await page.evaluate(() => fetch("/api/openapi.json").then((r) => r.text()));
  await page.evaluate(() => fetch("/static/icon-192.png").then((r) => r.blob()));
  const cached = await page.evaluate(async () => {
    const out = [];
    for (const name of await caches.keys()) {
      for (const req of await (await caches.open(name)).keys()) out.push(new URL(req.url).pathname);
    }
    return out;
  });
  assert.deepEqual(cached, ["/static/offline.html"], "only the offline page is kept on the device");

  // Offline, a page load shows the offline page instead of the browser's error.
  await page.context().setOffline(true);
  await page.goto(url("/inbox")).catch(() => {});
  await page.locator("h1").filter({ hasText: "You are offline" }).waitFor();
  await screenshot(page, "offline-desktop");
  await page.context().setOffline(false);
  await page.context().close();
});

test("no script errors in the installed app's pages", () => {
  assert.deepEqual(problems, []);
});
