// Small progressive enhancements; every page works without them.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  const text = source.value !== undefined ? source.value : source.textContent;
  navigator.clipboard.writeText(text).then(
    () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 2000); },
    () => { if (source.select) source.select(); },
  );
});
// Forms with data-confirm ask before destructive actions (server-side confirmation pages exist too).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
// Tabs for the quick start code samples.
document.addEventListener("click", (event) => {
  const tab = event.target.closest("[role=tab]");
  if (!tab) return;
  const list = tab.closest("[role=tablist]");
  list.querySelectorAll("[role=tab]").forEach((t) => {
    const selected = t === tab;
    t.setAttribute("aria-selected", selected);
    t.tabIndex = selected ? 0 : -1;
    document.getElementById(t.getAttribute("aria-controls")).hidden = !selected;
  });
});
document.addEventListener("keydown", (event) => {
  const tab = event.target.closest && event.target.closest("[role=tab]");
  if (!tab || !["ArrowLeft", "ArrowRight"].includes(event.key)) return;
  const tabs = [...tab.closest("[role=tablist]").querySelectorAll("[role=tab]")];
  const next = tabs[(tabs.indexOf(tab) + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
  next.focus(); next.click();
});
// Live instance status over the console websocket (the status fragment also polls, as a fallback).
(function () {
  const el = document.querySelector("[data-live-instance]");
  if (!el || !window.WebSocket) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let retry = 1000;
  function connect() {
    const socket = new WebSocket(`${scheme}://${location.host}/ws/console/instances/${el.dataset.liveInstance}/`);
    socket.onopen = () => { retry = 1000; };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      const current = document.querySelector("[data-live-instance]");
      if (current && message.status !== current.dataset.status) location.reload();
    };
    socket.onclose = (event) => {
      if (event.code === 4401 || event.code === 4404) return;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  connect();
})();
