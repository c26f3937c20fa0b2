// Live updates: one WebSocket per page; pages refresh the parts an event concerns.
(function () {
  const page = document.body.dataset.page;
  const conversation = document.body.dataset.conversation;
  const status = document.getElementById("live-status");
  let retry = 1000;
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/console/ws");
    ws.onopen = function () { status.textContent = "实时更新已连接"; status.dataset.connected = "1"; retry = 1000; };
    ws.onclose = function () {
      status.textContent = "实时更新已断开，正在重连…"; status.dataset.connected = "";
      setTimeout(connect, retry); retry = Math.min(retry * 2, 30000);
    };
    ws.onmessage = function (msg) {
      const event = JSON.parse(msg.data);
      const typing = document.activeElement && ["TEXTAREA", "INPUT"].includes(document.activeElement.tagName);
      if (page === "queue" && ["queue", "message", "claimed", "escalated"].includes(event.type)) {
        refresh("#queue");
      } else if (page === "conversation" && String(event.conversation_id) === conversation) {
        refresh("#transcript");
      } else if (page === "cases" && event.type === "case") {
        refresh("#cases");
      }
      if (!typing) { status.textContent = "有新动态 · " + new Date().toLocaleTimeString("zh-CN"); }
    };
  }
  // Replace one element with its fresh copy from the server, keeping whatever the agent is typing.
  function refresh(selector) {
    fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
      const fresh = new DOMParser().parseFromString(html, "text/html").querySelector(selector);
      const current = document.querySelector(selector);
      if (fresh && current) { current.replaceWith(fresh); }
    });
  }
  const canned = document.getElementById("canned");
  if (canned) {
    canned.addEventListener("change", function () {
      const box = document.getElementById("reply-text");
      if (canned.value) { box.value = canned.value; box.focus(); }
    });
  }
  // NLU inbox: j/k move between messages, y confirms the bot's guess, c opens the intent list.
  if (page === "nlu") {
    const rows = function () { return Array.from(document.querySelectorAll(".nlu-row")); };
    const first = rows()[0];
    if (first) { first.focus(); }
    document.addEventListener("keydown", function (event) {
      if (["SELECT", "INPUT", "TEXTAREA"].includes(document.activeElement.tagName) || event.ctrlKey || event.metaKey) { return; }
      const all = rows();
      const row = document.activeElement.closest(".nlu-row");
      const at = all.indexOf(row);
      if (event.key === "j" || event.key === "k") {
        const next = all[Math.max(0, Math.min(all.length - 1, at + (event.key === "j" ? 1 : -1)))];
        if (next) { next.focus(); event.preventDefault(); }
      } else if (event.key === "y" && row) {
        row.querySelector(".nlu-confirm").requestSubmit(); event.preventDefault();
      } else if (event.key === "c" && row) {
        row.querySelector(".nlu-correct select").focus(); event.preventDefault();
      }
    });
  }
  connect();
})();
