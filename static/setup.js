// The setup page offers the browser's own time zone as the church's (the server cannot know it);
// without this script the choice stays at UTC and can be changed later on /system.
"use strict";
(function () {
  const select = document.getElementById("time_zone");
  if (!select || !("browserDefault" in select.dataset)) return; // a re-shown form keeps its choice
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (_) {
    return;
  }
  const option = [...select.options].find((o) => o.value === zone);
  if (option) option.selected = true;
})();
