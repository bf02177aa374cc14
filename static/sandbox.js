// The phone simulator: shows this phone's conversation with the church and sends texts and
// files through koinonia's inbound pipeline.
"use strict";

(function () {
  const phone = document.getElementById("sim-phone");
  const church = document.getElementById("sim-church");
  const group = document.getElementById("sim-group");
  const thread = document.getElementById("sim-thread");
  const form = document.getElementById("sim-composer");
  const files = document.getElementById("sim-files");
  const text = document.getElementById("sim-text");
  const error = document.getElementById("sim-error");
  const label = document.getElementById("sim-files-label");
  const send = document.getElementById("sim-send");
  const root = document.getElementById("phone");
  const maxBytes = Number(root.dataset.maxBytes);

  const saved = window.localStorage?.getItem("koinonia-sim-phone");
  if (saved) phone.value = saved;
  const savedGroup = window.localStorage?.getItem("koinonia-sim-group");
  if (savedGroup) group.value = savedGroup;

  let last = "";
  const refresh = async () => {
    if (!church.value || !phone.value.trim()) return;
    const q = `phone=${encodeURIComponent(phone.value.trim())}&church=${encodeURIComponent(church.value)}` +
      `&group=${encodeURIComponent(group.value.trim())}`;
    try {
      const res = await fetch(`/sandbox/thread?${q}`);
      if (!res.ok) return;
      const html = await res.text();
      if (html !== last) {
        last = html;
        const stick = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 80;
        thread.innerHTML = html;
        if (stick) thread.scrollTop = thread.scrollHeight;
      }
    } catch (_) { /* try again on the next tick */ }
  };
  setInterval(refresh, 1000);
  refresh();
  phone.addEventListener("change", () => { window.localStorage?.setItem("koinonia-sim-phone", phone.value.trim()); last = ""; refresh(); });
  church.addEventListener("change", () => { last = ""; refresh(); });
  group.addEventListener("change", () => { window.localStorage?.setItem("koinonia-sim-group", group.value.trim()); last = ""; refresh(); });

  files.addEventListener("change", () => {
    error.hidden = true;
    const list = Array.from(files.files);
    const tooBig = list.find((f) => f.size > maxBytes);
    if (tooBig) {
      error.textContent = `File too large (max ${root.dataset.maxLabel}): ${tooBig.name}`;
      error.hidden = false;
      files.value = "";
      label.textContent = "";
      label.hidden = true;
      return;
    }
    label.textContent = list.map((f) => f.name).join(", ");
    label.hidden = list.length === 0;
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    if (!text.value.trim() && files.files.length === 0) return;
    const body = new FormData();
    body.append("phone", phone.value.trim());
    body.append("church", church.value);
    body.append("text", text.value);
    body.append("group", group.value.trim());
    for (const f of files.files) body.append("files", f, f.name);
    send.disabled = true;
    try {
      const res = await fetch("/sandbox/send", { method: "POST", body });
      if (res.status === 201) {
        text.value = "";
        files.value = "";
        label.textContent = "";
        label.hidden = true;
        last = "";
        refresh();
      } else {
        const data = await res.json().catch(() => ({}));
        error.textContent = data.error || `Could not send (HTTP ${res.status}).`;
        error.hidden = false;
      }
    } catch (_) {
      error.textContent = "Could not reach koinonia.";
      error.hidden = false;
    } finally {
      send.disabled = false;
    }
  });
})();
