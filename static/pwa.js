// Registers the service worker that makes the dashboard installable (see /sw.js).
"use strict";
if ("serviceWorker" in navigator && window.isSecureContext) {
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {
      /* an older browser, or storage disabled: the dashboard works the same without it */
    });
  });
}
