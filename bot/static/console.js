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
  connect();
})();
