// The thread header's member actions. A destructive form asks first (the page's
// Content-Security-Policy allows no inline handlers, hence this file). On a phone-sized screen
// the actions sit behind one "Member" button, so the thread starts right under the name; without
// this script they simply stay in the header.
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target instanceof HTMLFormElement ? event.target.closest("form[data-confirm]") : null;
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

(function () {
  const head = document.querySelector(".thread-head");
  const toggle = document.getElementById("member-menu");
  if (!head || !toggle) return;
  head.classList.add("js-menu");
  toggle.hidden = false;
  const set = (open) => {
    head.classList.toggle("menu-open", open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  toggle.addEventListener("click", () => set(!head.classList.contains("menu-open")));
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && head.classList.contains("menu-open")) {
      set(false);
      toggle.focus();
    }
  });
  document.addEventListener("click", (e) => {
    if (!head.contains(e.target)) set(false);
  });
})();
