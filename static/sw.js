// koinonia's service worker: it makes the dashboard installable ("Add to Home Screen") and shows
// a small offline page when a page cannot load. It never caches API answers, pages or media —
// members' messages and files stay on the server, not on a phone that may be lost.
"use strict";
const SHELL = "koinonia-shell-v1";
const OFFLINE = "/static/offline.html";

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.add(OFFLINE)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// Only page loads are looked at, and only to show the offline page when the network fails.
// Every other request (the API, media, live updates) is left to the browser, uncached.
self.addEventListener("fetch", (event) => {
  if (event.request.mode !== "navigate") return;
  event.respondWith(fetch(event.request).catch(() => caches.match(OFFLINE)));
});

// A push from koinonia (notify/push.rs): {title, body, url, tag}. The tag is the conversation,
// so a newer notification of the same conversation replaces the one before. Nothing is cached.
self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (_) {
    data = { body: event.data ? event.data.text() : "" };
  }
  const title = typeof data.title === "string" && data.title ? data.title : "New message";
  const url = typeof data.url === "string" && data.url.startsWith("/") ? data.url : "/inbox";
  event.waitUntil(
    self.registration.showNotification(title, {
      body: typeof data.body === "string" ? data.body : "",
      tag: typeof data.tag === "string" ? data.tag : undefined,
      icon: "/static/icon-192.png",
      data: { url },
    }),
  );
});

// A notification opens (or focuses) the thread it is about.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const path = (event.notification.data && event.notification.data.url) || "/inbox";
  const url = new URL(path, self.location.origin);
  if (url.origin !== self.location.origin) return;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((wins) => {
      const open = wins.find((w) => new URL(w.url).pathname === url.pathname);
      return open ? open.focus() : self.clients.openWindow(url.href);
    }),
  );
});
