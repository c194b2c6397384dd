// 回放: each panel is an htmx part loaded on its own; a refusal inside a panel (a date before
// the subject existed, a region outside the jurisdiction) shows the refusal's own text there.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (e) {
    var status = e.detail.xhr && e.detail.xhr.status;
    if (status >= 400 && e.detail.target && e.detail.target.classList.contains("mr-part")) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
      e.detail.ignoreTitle = true;
      if (status < 500) {
        e.detail.selectOverride = ".refused";
      } else {
        e.detail.serverResponse = '<p class="bad" role="alert">服务器出错，请稍后重试。</p>';
      }
    }
  });
})();
