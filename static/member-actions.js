// The thread header's admin actions: a destructive form asks first. (The page's
// Content-Security-Policy allows no inline handlers, hence this file.)
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target instanceof HTMLFormElement ? event.target.closest("form[data-confirm]") : null;
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});
