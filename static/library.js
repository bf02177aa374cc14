// The media library: choose files, download them as one ZIP, and load more tiles while scrolling.
(() => {
  "use strict";
  const tiles = document.getElementById("tiles");
  const bar = document.getElementById("selection-bar");
  if (!tiles || !bar) return;
  const count = document.getElementById("selected-count");
  const downloadSelected = document.getElementById("download-selected");
  const clear = document.getElementById("clear-selection");
  const exportIds = document.getElementById("export-ids");
  const exportAll = document.getElementById("export-all");
  const chosen = new Set();

  const refresh = () => {
    const n = chosen.size;
    count.textContent = n === 0 ? "No files selected" : n === 1 ? "1 file selected" : `${n} files selected`;
    downloadSelected.disabled = n === 0;
    clear.hidden = n === 0;
    bar.classList.toggle("active", n > 0);
  };

  tiles.addEventListener("change", (e) => {
    const box = e.target;
    if (!(box instanceof HTMLInputElement) || box.name !== "pick") return;
    if (box.checked) chosen.add(box.value); else chosen.delete(box.value);
    box.closest(".tile")?.classList.toggle("selected", box.checked);
    refresh();
  });

  clear.addEventListener("click", () => {
    chosen.clear();
    tiles.querySelectorAll('input[name="pick"]:checked').forEach((b) => {
      b.checked = false;
      b.closest(".tile")?.classList.remove("selected");
    });
    refresh();
  });

  // A plain form post: the browser streams the ZIP to disk as koinonia builds it.
  bar.addEventListener("submit", (e) => {
    const all = e.submitter?.id === "download-all";
    exportAll.value = all ? "1" : "";
    exportIds.value = all ? "" : [...chosen].join(",");
    if (!all && chosen.size === 0) e.preventDefault();
  });

  // Infinite scroll: the last item links to the next page of tiles.
  let loading = false;
  const loadMore = async () => {
    const more = document.getElementById("more");
    if (!more || loading) return;
    loading = true;
    try {
      const res = await fetch(more.dataset.next, { credentials: "same-origin" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const html = await res.text();
      more.remove();
      tiles.insertAdjacentHTML("beforeend", html);
      tiles.querySelectorAll('input[name="pick"]').forEach((b) => {
        if (chosen.has(b.value)) { b.checked = true; b.closest(".tile")?.classList.add("selected"); }
      });
      observe();
    } catch (_) {
      const button = document.getElementById("load-more");
      if (button) button.textContent = "Could not load more — try again";
    } finally {
      loading = false;
    }
  };
  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => { if (entries.some((en) => en.isIntersecting)) loadMore(); }, { rootMargin: "600px" })
    : null;
  const observe = () => {
    const more = document.getElementById("more");
    if (!more) return;
    if (observer) observer.observe(more);
  };
  tiles.addEventListener("click", (e) => {
    if (e.target instanceof HTMLElement && e.target.id === "load-more") loadMore();
  });
  observe();
  refresh();
})();
