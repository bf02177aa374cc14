// Web Push in a real headless Chromium: a leader opens /settings with the notifications
// permission granted and turns notifications on. Headless Chromium has no push service of its
// own, so when `pushManager.subscribe` fails there, the page's session posts a subscription for a
// stand-in push service on loopback instead (its keys made here as a browser makes them); a member
// texts through the phone simulator; the stand-in receives koinonia's encrypted push, which this
// test decrypts (RFC 8291 aes128gcm) and delivers into the page's service worker through the
// DevTools protocol (`ServiceWorker.deliverPushMessage`); the notification the worker shows
// carries the title, body, tag and thread link. Runs after dashboard.test.mjs (its church and
// leader); scripts/e2e lets the stand-in on loopback in (MEDIA_FETCH_ALLOW_PRIVATE).
import assert from "node:assert/strict";
import { createDecipheriv, createECDH, hkdfSync, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { BASE_URL, PHONE, closeBrowser, launchBrowser, newContextPage, screenshot, signedInState, violations } from "./lib.mjs";

const LEADER = { email: "pastor@grace.test", password: "correct horse battery staple" };
const CHURCH_NUMBER = "+15551230000";
const MEMBER_PHONE = "+13125550199";
const url = (path) => new URL(path, BASE_URL).toString();

let browser;
let service;
const received = [];
const problems = [];

before(async () => {
  browser = await launchBrowser();
  service = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.statusCode = 201;
      res.end();
    });
  });
  await new Promise((resolve) => service.listen(0, "127.0.0.1", resolve));
});

after(async () => {
  await closeBrowser(browser);
  await new Promise((resolve) => service.close(resolve));
});

/** Decrypts an aes128gcm push body (RFC 8188 / 8291) as the browser holding `ecdh` and `auth` does. */
function decrypt(body, ecdh, auth) {
  const salt = body.subarray(0, 16);
  const idlen = body[20];
  const serverKey = body.subarray(21, 21 + idlen);
  const record = body.subarray(21 + idlen);
  const shared = ecdh.computeSecret(serverKey);
  const info = Buffer.concat([Buffer.from("WebPush: info\0"), ecdh.getPublicKey(), serverKey]);
  const ikm = Buffer.from(hkdfSync("sha256", shared, auth, info, 32));
  const key = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: aes128gcm\0"), 16));
  const nonce = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: nonce\0"), 12));
  const decipher = createDecipheriv("aes-128-gcm", key, nonce);
  decipher.setAuthTag(record.subarray(record.length - 16));
  const plain = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
  let end = plain.length - 1;
  while (end > 0 && plain[end] === 0) end--;
  assert.equal(plain[end], 2, "the last record ends with the 0x02 delimiter");
  return JSON.parse(plain.subarray(0, end).toString("utf8"));
}

async function until(what, check, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("a leader turns notifications on at /settings and a member's text arrives as a notification", async () => {
  const session = await signedInState(browser, LEADER);
  const page = await newContextPage(browser, { ...PHONE, permissions: ["notifications"] }, problems, session);
  await page.goto(url("/inbox"));

  // The settings page is in the navigation.
  await Promise.all([page.waitForURL(/\/settings$/), page.click('.topbar nav a[href="/settings"]')]);
  assert.ok(await page.isVisible('.topbar nav a[href="/settings"][aria-current="page"]'));
  const fits = await page.evaluate(() => document.querySelector(".topbar").scrollWidth <= window.innerWidth);
  assert.ok(fits, "the phone top bar fits the screen with Settings in it");
  await page.waitForSelector("#push-on:not([hidden])");
  assert.match(await page.textContent("#push-status"), /does not receive notifications/);
  assert.equal(await page.evaluate(() => Notification.permission), "granted");

  // Turning on: permission (granted), the VAPID key, pushManager.subscribe. Headless Chromium
  // has no push service, so this may end in the page's own error sentence.
  await page.click("#push-on");
  const status = await until("the page to answer", async () => {
    const text = await page.textContent("#push-status");
    return /receives notifications of new messages|could not be turned on/.test(text) && text;
  });
  const subscribedHere = /receives notifications/.test(status);
  console.log(`pushManager.subscribe in headless Chromium: ${subscribedHere ? "worked" : status}`);

  // A subscription for the stand-in push service, posted by the page's own session (cookie and
  // CSRF token), keys made as a browser makes them.
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  const auth = randomBytes(16);
  const endpoint = `http://127.0.0.1:${service.address().port}/push/settings-test`;
  const subscription = {
    endpoint,
    expirationTime: null,
    keys: { p256dh: ecdh.getPublicKey().toString("base64url"), auth: auth.toString("base64url") },
  };
  const posted = await page.evaluate(async (body) => {
    const csrf = document.getElementById("push-device").dataset.csrf;
    const res = await fetch("/api/push/subscriptions", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  }, subscription);
  assert.equal(posted.status, 201, JSON.stringify(posted.body));
  assert.equal(posted.body.data.push, true);

  // A member texts the church through the phone simulator.
  const sent = await page.request.post(url("/sandbox/send"), {
    multipart: { phone: MEMBER_PHONE, church: CHURCH_NUMBER, text: "Is the food pantry open on Thursday?" },
  });
  assert.equal(sent.status(), 201);
  const push = await until("the stand-in push service to receive the notification", () =>
    received.find((r) => r.path === "/push/settings-test"),
  );
  assert.equal(push.headers["content-encoding"], "aes128gcm");
  assert.match(push.headers.authorization, /^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]+$/);
  const notice = decrypt(push.body, ecdh, auth);
  const conversations = await (await page.request.get(url("/api/conversations?q=0199"))).json();
  const conversation = conversations.data.conversations[0].id;
  assert.deepEqual(notice, {
    title: "•••-•••-0199",
    body: "New message from •••-•••-0199",
    url: `/inbox/${conversation}`,
    tag: conversation,
  });

  // The decrypted push, delivered into the page's service worker: it shows the notification.
  // The worker must be activated first (a push handed to a worker still installing is dropped
  // without a word), and DevTools delivery is fire-and-forget, so it is handed over again if no
  // notification shows within a few seconds; the tag makes a second delivery replace the first.
  assert.ok(await page.evaluate(() => navigator.serviceWorker.ready.then(() => true)));
  const cdp = await page.context().newCDPSession(page);
  const registrations = [];
  const versions = [];
  cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => registrations.push(...e.registrations));
  cdp.on("ServiceWorker.workerVersionUpdated", (e) => versions.push(...e.versions));
  await cdp.send("ServiceWorker.enable");
  const registration = await until("the service worker's registration", () =>
    registrations.find((r) => !r.isDeleted && r.scopeURL === url("/")),
  );
  await until("the service worker to be activated", () =>
    versions.find((v) => v.registrationId === registration.registrationId && v.status === "activated"),
  );
  const notifications = () =>
    page.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready;
      const list = await reg.getNotifications();
      return list.length ? list.map((n) => ({ title: n.title, body: n.body, tag: n.tag, url: n.data?.url })) : null;
    });
  let shown = null;
  for (let attempt = 1; attempt <= 4 && !shown; attempt++) {
    if (attempt > 1) console.log(`# push delivered again through DevTools (attempt ${attempt})`);
    await cdp.send("ServiceWorker.deliverPushMessage", {
      origin: new URL(BASE_URL).origin,
      registrationId: registration.registrationId,
      data: JSON.stringify(notice),
    });
    shown = await until("the notification", notifications, 5_000).catch(() => null);
  }
  assert.ok(shown, "the service worker showed a notification for the push");
  assert.deepEqual(shown, [{ title: notice.title, body: notice.body, tag: conversation, url: `/inbox/${conversation}` }]);

  // Nothing but the offline page is cached, push or not.
  const cached = await page.evaluate(async () => {
    const out = [];
    for (const name of await caches.keys()) {
      for (const req of await (await caches.open(name)).keys()) out.push(new URL(req.url).pathname);
    }
    return out;
  });
  assert.deepEqual(cached, ["/static/offline.html"]);

  // The page at phone width, with what it says now.
  await page.reload();
  await page.waitForSelector("#push-status");
  assert.match(await page.textContent("main"), /browsers? of yours receive/);
  assert.deepEqual(await violations(page), [], "/settings: no serious or critical accessibility violations");
  await screenshot(page, "settings-phone");

  // Tidy up: the stand-in's subscription goes, by its endpoint.
  const removed = await page.evaluate(async (endpoint) => {
    const csrf = document.getElementById("push-device").dataset.csrf;
    const res = await fetch("/api/push/subscriptions", {
      method: "DELETE",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify({ endpoint }),
    });
    return res.status;
  }, endpoint);
  assert.equal(removed, 200);
  // Headless Chromium runs as an incognito profile and logs why subscribe failed; the page said it.
  const unexpected = problems.filter((p) => !/does not support the Push API in incognito mode/.test(p));
  assert.deepEqual(unexpected, [], "no uncaught errors or console errors");
  await page.context().close();
});
