// Helpers shared by the end-to-end tests: the browser, generated images, hashes, screenshots.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { chromium } from "playwright-core";

export const BASE_URL = (process.env.BASE_URL || "http://127.0.0.1:3000").replace(/\/$/, "");
export const FIXTURES = process.env.FIXTURES || new URL("../tests/fixtures/media/", import.meta.url).pathname;
export const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || new URL("../target/e2e/", import.meta.url).pathname;
export const MMS_MAX = Number(process.env.MMS_MAX_ATTACHMENT_BYTES || 614400);

export const DESKTOP = { viewport: { width: 1280, height: 800 } };
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

/** Debian's Chromium, headless, with nothing reaching out to the network by itself. */
export async function launchBrowser() {
  // Playwright gives every launch a fresh, temporary user-data-dir of its own (removed on close);
  // the extra folder below keeps Chromium's disk cache and crash dumps out of $HOME as well.
  const scratch = mkdtempSync(join(tmpdir(), "koinonia-chromium-"));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--disk-cache-dir=${join(scratch, "cache")}`,
      `--crash-dumps-dir=${join(scratch, "crashes")}`,
    ],
  });
  // Chromium may still be writing its cache while it exits: retry, and never let a leftover
  // folder fail a test (scripts/e2e removes its whole work folder at the end anyway).
  browser.on("disconnected", () => {
    try {
      rmSync(scratch, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    } catch (_) {
      /* left for scripts/e2e's cleanup */
    }
  });
  return browser;
}

/**
 * A page in a new browser context with `options` (and a signed-in `storageState`, if given);
 * uncaught errors and console errors (CSP violations land there) are pushed onto `problems`.
 */
export async function newContextPage(browser, options, problems, storageState) {
  const context = await browser.newContext({ ...options, baseURL: BASE_URL, storageState });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on("pageerror", (e) => problems.push(`uncaught ${e.message}`));
  page.on("console", (m) => {
    // A failed request (e.g. the 401 of a wrong password) is logged too; it is expected.
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push(m.text());
  });
  return page;
}

/** Closes the browser and removes its scratch folder. */
export async function closeBrowser(browser) {
  if (!browser?.isConnected()) return;
  const gone = new Promise((resolve) => browser.once("disconnected", resolve));
  await browser.close();
  await gone;
}

export const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

/** Saves a full-page screenshot as SCREENSHOT_DIR/name.png and returns its path. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * axe-core's serious and critical violations on the page as it is now, one line each. The
 * script is evaluated through the DevTools protocol, which the page's Content-Security-Policy
 * (no inline or foreign scripts) does not govern, so the page runs exactly as a leader's does.
 */
export async function violations(page) {
  await page.evaluate(AXE_SOURCE);
  const results = await page.evaluate(() =>
    window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
      resultTypes: ["violations"],
    }),
  );
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
}

// ---- PNG writing (RGB, 8 bits, no interlace) ------------------------------------------------
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (buf) => {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};
const chunk = (type, data) => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
};

/** A valid PNG of width×height whose pixel (x, y) is pixel(x, y) → [r, g, b]. */
export function makePng(width, height, pixel) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  let o = 0;
  for (let y = 0; y < height; y++) {
    raw[o++] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      raw[o++] = r;
      raw[o++] = g;
      raw[o++] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** A picture-like image (smooth colour bands and a sun) that compresses well: a few KB. */
export function makeScenePng(width = 480, height = 320) {
  return makePng(width, height, (x, y) => {
    const dx = x - width * 0.72, dy = y - height * 0.3;
    if (dx * dx + dy * dy < (height * 0.12) ** 2) return [250, 204, 60];
    if (y > height * 0.65) return [40 + ((x >> 5) & 1) * 10, 120, 60];
    const t = y / height;
    return [Math.round(90 + 100 * t), Math.round(150 + 60 * t), 235];
  });
}

/** Noise, which does not compress: about width×height×3 bytes. Deterministic (a small LCG). */
export function makeNoisePng(width, height, seed = 12345) {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24);
  return makePng(width, height, () => [next(), next(), next()]);
}

/**
 * A signed-in leader's cookies (a Playwright storageState), shared by the test files of one
 * scripts/e2e run through a file in TMPDIR: logins are rate limited per account, and each test
 * file signing in again would run into that limit. Signs in once when no saved session works.
 */
export async function signedInState(browser, leader) {
  const file = join(tmpdir(), `koinonia-e2e-session-${leader.email}.json`);
  const context = await browser.newContext({ baseURL: BASE_URL });
  try {
    try {
      const saved = JSON.parse(readFileSync(file, "utf8"));
      await context.addCookies(saved.cookies);
      const res = await context.request.get("/api/conversations?limit=1");
      if (res.ok()) return saved;
    } catch (_) {
      /* no saved session yet, or an expired one */
    }
    const page = await context.newPage();
    await page.goto("/login");
    await page.fill("#email", leader.email);
    await page.fill("#password", leader.password);
    await Promise.all([page.waitForURL(/\/inbox/), page.click("button[type=submit]")]);
    const state = await context.storageState();
    writeFileSync(file, JSON.stringify(state), { mode: 0o600 });
    return state;
  } finally {
    await context.close();
  }
}
