// koinonia dashboard: live updates, older messages, and the composer. Progressive
// enhancement only: every page works as plain HTML; this makes it live.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const messages = document.getElementById("messages");
  const list = document.getElementById("list");
  const conversation = messages?.dataset.conversation || null;

  const fetchHtml = async (url) => {
    const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (res.redirected && new URL(res.url).pathname === "/login") {
      window.location.href = "/login";
      return null;
    }
    if (!res.ok) return null;
    return res.text();
  };

  const atBottom = () => !messages || messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
  const scrollToBottom = () => { if (messages) messages.scrollTop = messages.scrollHeight; };

  // ---- the conversation list -------------------------------------------------------------
  let listTimer = null;
  const refreshList = () => {
    clearTimeout(listTimer);
    listTimer = setTimeout(async () => {
      const q = conversation ? `?selected=${encodeURIComponent(conversation)}` : "";
      const html = await fetchHtml(`/inbox/fragments/list${q}`);
      if (html !== null && list) list.innerHTML = html;
    }, 150);
  };

  list?.addEventListener("click", async (e) => {
    const more = e.target.closest("#more-conversations");
    if (!more) return;
    more.disabled = true;
    const html = await fetchHtml(`/inbox/fragments/list?cursor=${encodeURIComponent(more.dataset.cursor)}`);
    if (html === null) return;
    const tmp = document.createElement("div");
    tmp.innerHTML = html;
    const items = tmp.querySelectorAll("#conversation-list > li");
    const ul = list.querySelector("#conversation-list");
    items.forEach((li) => ul.appendChild(li));
    more.replaceWith(...tmp.querySelectorAll("#more-conversations"));
  });

  // ---- one message, inserted or replaced --------------------------------------------------
  const showMessage = async (id) => {
    if (!messages) return;
    const html = await fetchHtml(`/inbox/${conversation}/fragments/message/${id}`);
    if (html === null) return;
    const tmp = document.createElement("div");
    tmp.innerHTML = html;
    const fresh = tmp.querySelector("article.bubble");
    if (!fresh) return;
    const stick = atBottom();
    const old = document.getElementById(fresh.id);
    if (old) {
      old.replaceWith(fresh);
    } else {
      messages.appendChild(fresh);
      if (stick) scrollToBottom();
    }
  };

  const markRead = () =>
    fetch(`/api/conversations/${conversation}/read`, {
      method: "PATCH", credentials: "same-origin", headers: { "x-csrf-token": csrf },
    }).catch(() => {});

  // ---- live updates ----------------------------------------------------------------------
  if (window.EventSource) {
    const events = new EventSource("/events");
    events.addEventListener("message", (e) => {
      let data = {};
      try { data = JSON.parse(e.data); } catch (_) { return; }
      if (conversation && data.conversationId === conversation) {
        showMessage(data.messageId);
        if (document.visibilityState === "visible") markRead();
      }
      refreshList();
    });
    events.addEventListener("conversation", refreshList);
    events.addEventListener("resync", () => window.location.reload());
    // What happened between this page's rendering and the stream's opening (or while it
    // reconnected) came as no event. At every opening the list and the thread's newest messages
    // are asked for again: messages not shown yet are added (a gap longer than a page reloads
    // the page), and files still shown as arriving are asked for again.
    events.addEventListener("open", async () => {
      refreshList();
      if (!messages || !conversation) return;
      const html = await fetchHtml(`/inbox/${conversation}/fragments/messages`);
      if (html !== null) {
        const tmp = document.createElement("div");
        tmp.innerHTML = html;
        const newest = [...tmp.querySelectorAll("article.bubble")];
        if (newest.length > 0 && !newest.some((b) => document.getElementById(b.id))) {
          window.location.reload();
          return;
        }
        // Each missing message goes where the server's order puts it: before the next one on
        // the page (a live event may have shown a newer one first), or last.
        const stick = atBottom();
        let added = 0;
        for (let i = newest.length - 1, next = null; i >= 0; i--) {
          const shown = document.getElementById(newest[i].id);
          if (shown) {
            next = shown;
            continue;
          }
          messages.insertBefore(newest[i], next);
          next = newest[i];
          added++;
        }
        if (added > 0) {
          if (stick) scrollToBottom();
          if (document.visibilityState === "visible") markRead();
        }
      }
      messages.querySelectorAll("article.bubble").forEach((b) => {
        if (b.querySelector(".media.pending")) showMessage(b.dataset.id);
      });
    });
  }

  // ---- older messages ----------------------------------------------------------------------
  const loadOlder = async (button) => {
    if (!button || button.disabled) return;
    button.disabled = true;
    const html = await fetchHtml(`/inbox/${conversation}/fragments/messages?before=${encodeURIComponent(button.dataset.before)}`);
    if (html === null) { button.disabled = false; return; }
    const before = messages.scrollHeight;
    const tmp = document.createElement("div");
    tmp.innerHTML = html;
    button.replaceWith(...tmp.childNodes);
    messages.scrollTop += messages.scrollHeight - before;
    watchOlder();
  };
  let observer = null;
  const watchOlder = () => {
    const button = document.getElementById("older");
    if (!button || !window.IntersectionObserver) return;
    observer?.disconnect();
    observer = new IntersectionObserver((entries) => { if (entries.some((x) => x.isIntersecting)) loadOlder(button); }, { root: messages });
    observer.observe(button);
  };
  messages?.addEventListener("click", (e) => { const b = e.target.closest("#older"); if (b) loadOlder(b); });
  if (messages) {
    // Stay at the newest message while images and videos load and grow the thread, unless the
    // leader scrolled up to read.
    let stick = true;
    messages.addEventListener("scroll", () => { stick = atBottom(); }, { passive: true });
    const keep = () => { if (stick) scrollToBottom(); };
    messages.addEventListener("load", keep, true);
    messages.addEventListener("loadedmetadata", keep, true);
    scrollToBottom();
    watchOlder();
  }

  // ---- the composer ------------------------------------------------------------------------
  const form = document.getElementById("composer");
  if (!form) return;
  const fileInput = document.getElementById("file");
  const content = document.getElementById("content");
  const attachment = document.getElementById("attachment");
  const previewImage = document.getElementById("preview-image");
  const fileName = document.getElementById("file-name");
  const fileSize = document.getElementById("file-size");
  const note = document.getElementById("note");
  const largeImage = document.getElementById("large-image");
  const progress = document.getElementById("progress");
  const error = document.getElementById("composer-error");
  const send = document.getElementById("send");
  const maxBytes = Number(form.dataset.maxBytes);
  const mmsMax = Number(form.dataset.mmsMaxBytes);
  let previewUrl = null;

  const human = (b) => b >= 1048576 ? `${(b / 1048576).toFixed(1)} MB` : b >= 1024 ? `${Math.round(b / 1024)} KB` : `${b} bytes`;
  const showError = (msg) => { error.textContent = msg; error.hidden = !msg; };

  const clearFile = () => {
    fileInput.value = "";
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    previewImage.hidden = true;
    previewImage.removeAttribute("src");
    attachment.hidden = true;
    note.hidden = true;
    largeImage.hidden = true;
  };

  fileInput.addEventListener("change", () => {
    showError("");
    const file = fileInput.files[0];
    if (!file) { clearFile(); return; }
    if (file.size > maxBytes) {
      clearFile();
      showError(`File too large (max ${form.dataset.maxLabel})`);
      return;
    }
    fileName.textContent = file.name;
    fileSize.textContent = human(file.size);
    if (file.type.startsWith("image/") && file.type !== "image/heic") {
      previewUrl = URL.createObjectURL(file);
      previewImage.src = previewUrl;
      previewImage.hidden = false;
    } else {
      previewImage.hidden = true;
    }
    attachment.hidden = false;
    const asLink = file.size > mmsMax;
    const photo = file.type.startsWith("image/");
    note.textContent = !asLink
      ? "Will be sent at full quality"
      : photo
        ? "Too large for MMS at full quality — the full-quality photo goes as a link"
        : "Too large for MMS — will be sent as a link to the full-quality file";
    note.classList.toggle("link", asLink);
    note.hidden = false;
    largeImage.hidden = !(asLink && photo);
  });
  document.getElementById("remove-file").addEventListener("click", () => { clearFile(); content.focus(); });

  content.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  content.addEventListener("input", () => {
    content.style.height = "auto";
    content.style.height = `${Math.min(content.scrollHeight, 144)}px`;
  });

  const done = async (status, body) => {
    let data = {};
    try { data = JSON.parse(body); } catch (_) { /* not JSON */ }
    if (status === 201) {
      content.value = "";
      content.style.height = "auto";
      clearFile();
      if (data.data?.id) await showMessage(data.data.id);
      scrollToBottom();
    } else {
      showError(data.error || `Could not send (HTTP ${status}).`);
    }
  };

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    showError("");
    const file = fileInput.files[0];
    const text = content.value.trim();
    if (!file && !text) { content.focus(); return; }
    send.disabled = true;
    if (!file) {
      fetch(`/api/conversations/${conversation}/reply`, {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json", "x-csrf-token": csrf },
        body: JSON.stringify({ content: text }),
      })
        .then(async (res) => done(res.status, await res.text()))
        .catch(() => showError("Could not reach koinonia. Check the connection and try again."))
        .finally(() => { send.disabled = false; content.focus(); });
      return;
    }
    const body = new FormData();
    if (text) body.append("content", text);
    if (!largeImage.hidden) body.append("largeImage", form.querySelector('input[name="largeImage"]:checked')?.value || "preview");
    body.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/conversations/${conversation}/reply-with-media`);
    xhr.setRequestHeader("x-csrf-token", csrf);
    progress.value = 0;
    progress.hidden = false;
    xhr.upload.addEventListener("progress", (ev) => { if (ev.lengthComputable) progress.value = Math.round((ev.loaded / ev.total) * 100); });
    xhr.addEventListener("load", async () => { progress.hidden = true; send.disabled = false; await done(xhr.status, xhr.responseText); });
    xhr.addEventListener("error", () => { progress.hidden = true; send.disabled = false; showError("The upload failed. Check the connection and try again."); });
    xhr.send(body);
  });
})();
