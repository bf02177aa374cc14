// The settings page: turns this browser's push notifications on (asks the permission, subscribes
// through the already-registered service worker with the server's VAPID key, posts the
// subscription) and off (unsubscribes, deletes it on the server), and says which it is.
"use strict";
(() => {
  const root = document.getElementById("push-device");
  if (!root) return;
  const csrf = root.dataset.csrf;
  const status = document.getElementById("push-status");
  const on = document.getElementById("push-on");
  const off = document.getElementById("push-off");
  const say = (text) => {
    status.textContent = text;
  };
  const supported =
    window.isSecureContext && "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  if (!supported) {
    say("This browser cannot receive push notifications here (they need https and a browser that supports them).");
    return;
  }

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(json.error || `the server answered ${res.status}`);
    return json.data;
  }

  // base64url → bytes (applicationServerKey).
  function bytes(text) {
    const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  const registration = () =>
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).then(() => navigator.serviceWorker.ready);

  function show(subscribed) {
    on.hidden = subscribed;
    off.hidden = !subscribed;
    if (Notification.permission === "denied" && !subscribed) {
      say("Notifications are blocked for this site: allow them in the browser's site settings, then turn them on.");
    } else {
      say(subscribed ? "This browser receives notifications of new messages." : "This browser does not receive notifications.");
    }
  }

  registration()
    .then((reg) => reg.pushManager.getSubscription())
    .then((sub) => show(Boolean(sub)))
    .catch(() => show(false));

  on.addEventListener("click", async () => {
    on.disabled = true;
    try {
      const permission = await Notification.requestPermission();
      if (permission !== "granted") {
        show(false);
        return;
      }
      const { publicKey } = await api("GET", "/api/push/key");
      const reg = await registration();
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes(publicKey) });
      await api("POST", "/api/push/subscriptions", sub.toJSON());
      show(true);
    } catch (e) {
      say(`Notifications could not be turned on: ${e.message}`);
    } finally {
      on.disabled = false;
    }
  });

  off.addEventListener("click", async () => {
    off.disabled = true;
    try {
      const reg = await registration();
      const sub = await reg.pushManager.getSubscription();
      if (sub) {
        await api("DELETE", "/api/push/subscriptions", { endpoint: sub.endpoint }).catch(() => {});
        await sub.unsubscribe();
      }
      show(false);
    } catch (e) {
      say(`Notifications could not be turned off: ${e.message}`);
    } finally {
      off.disabled = false;
    }
  });
})();
