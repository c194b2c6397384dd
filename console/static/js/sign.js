// 签字 (the signing queue): sign a draft in this browser with the official's own key.
//
// The key file is the JSON `zhuisu keygen` writes (algorithm, key_id, public_key,
// private_key: base64 of the raw 32-byte Ed25519 seed).  It is read here, imported with
// WebCrypto as PKCS#8 (the fixed 16-byte header 302e020100300506032b657004220420 followed
// by the seed), used to sign the exact bytes the server gives for (draft, official, role,
// key id), and forgotten.  Only the signature goes back, in the form with the session's
// CSRF token: the private key never leaves the browser.  No library, nothing from outside.
(function () {
  "use strict";
  var PKCS8_HEADER = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65,
                      0x70, 0x04, 0x22, 0x04, 0x20];
  var form = document.getElementById("sign-form");
  var file = document.getElementById("key-file");
  var status = document.getElementById("sign-status");
  if (!form || !file) { return; }

  function say(text, bad) {
    status.textContent = text;
    status.className = bad ? "bad" : "";
  }

  function fromBase64(text) {
    var raw = atob(text);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }

  function toBase64(bytes) {
    var s = "";
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s);
  }

  function readKeyFile() {
    var chosen = file.files && file.files[0];
    if (!chosen) { return Promise.reject(new Error("请先选择密钥文件")); }
    return chosen.text().then(function (text) {
      var key;
      try { key = JSON.parse(text); } catch (e) { throw new Error("密钥文件不是 JSON"); }
      if (!key || key.algorithm !== "Ed25519" || typeof key.private_key !== "string" ||
          typeof key.key_id !== "string") {
        throw new Error("这不是 zhuisu keygen 生成的 Ed25519 密钥文件");
      }
      var seed = fromBase64(key.private_key);
      if (seed.length !== 32) { throw new Error("私钥应为 32 字节"); }
      var der = new Uint8Array(PKCS8_HEADER.length + 32);
      der.set(PKCS8_HEADER, 0);
      der.set(seed, PKCS8_HEADER.length);
      seed.fill(0);
      return crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"])
        .then(function (cryptoKey) {
          der.fill(0);
          return { keyId: key.key_id, key: cryptoKey };
        });
    });
  }

  function fetchMessage(keyId) {
    var params = new URLSearchParams({
      official_id: document.getElementById("official").value.trim(),
      role: document.getElementById("role").value,
      key_id: keyId
    });
    return fetch(form.dataset.message + "?" + params.toString(), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error((body.detail || "无法取得签字内容") + "（" + (body.rule || r.status) + "）"); }
        return body;
      });
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!window.crypto || !crypto.subtle) {
      say("此浏览器不支持 WebCrypto，无法签字", true);
      return;
    }
    say("正在签字…", false);
    var imported;
    readKeyFile().then(function (k) {
      imported = k;
      return fetchMessage(k.keyId);
    }).then(function (m) {
      return crypto.subtle.sign("Ed25519", imported.key, fromBase64(m.message_base64))
        .then(function (sig) {
          document.getElementById("official").value = m.official_id;
          document.getElementById("key-id").value = imported.keyId;
          document.getElementById("signature").value = toBase64(new Uint8Array(sig));
          imported = null;
          file.value = "";
          say("已签名，正在提交签字…", false);
          form.submit();  // the form holds the CSRF token, official, role, key id, signature
        });
    }).catch(function (e) {
      imported = null;
      say("签字失败：" + (e && e.message ? e.message : e), true);
    });
  });
})();
