// Times in the reader's own time zone (on the pages that show times). The server writes every time as
// <time datetime="2026-11-30T03:47:00.000Z">…UTC label…</time>; this rewrites the label in the
// browser's zone and locale — the time today, the date too on other days — and puts the full
// timestamp, with its zone, in the tooltip. Times added later (live updates, more pages) are
// rewritten as they arrive.
"use strict";

(function () {
  const time = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  const dayInYear = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
  const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
  const sameDay = (a, b) =>
    a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();

  // data-format="date" (lists, tiles): the date alone on other days; otherwise date and time.
  const label = (when, format) => {
    const now = new Date();
    if (format === "day") return (when.getFullYear() === now.getFullYear() ? day : dayInYear).format(when);
    if (sameDay(when, now)) return time.format(when);
    const date = (when.getFullYear() === now.getFullYear() ? day : dayInYear).format(when);
    return format === "date" ? date : `${date}, ${time.format(when)}`;
  };

  const localise = (el) => {
    const when = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(when.getTime())) return;
    el.textContent = label(when, el.dataset.format);
    el.title = full.format(when);
    el.dataset.local = "1";
  };

  const all = (root) => {
    if (root.matches?.("time[datetime]:not([data-local])")) localise(root);
    root.querySelectorAll?.("time[datetime]:not([data-local])").forEach(localise);
  };

  all(document);
  new MutationObserver((changes) => {
    for (const change of changes) change.addedNodes.forEach(all);
  }).observe(document.body, { childList: true, subtree: true });
})();
