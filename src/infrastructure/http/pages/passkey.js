// Passkey sign-in on the hosted login page (served as /auth/assets/passkey.js; the page's CSP
// allows this origin's scripts only, and no inline script).
//
// The button asks POST /auth/passkey/start for a WebAuthn challenge (with the page's CSRF token
// and authorization request), lets the browser sign it with a passkey of the user's choice
// (navigator.credentials.get), and submits the answer as a form to POST /auth/passkey/finish,
// which redirects to the application like the password form. Failures are shown in an alert
// (role="alert") above the form. `window.authPasskeys` exposes the base64url conversions, which a page registering
// a passkey (POST /users/me/passkeys/register/start and /finish) needs as well.
(function () {
  "use strict";

  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: toBytes(c.id) });
    });
  }

  // The server's publicKey options (base64url fields) as navigator.credentials.create takes them.
  function creationOptions(publicKey) {
    var options = Object.assign({}, publicKey);
    options.challenge = toBytes(publicKey.challenge);
    options.user = Object.assign({}, publicKey.user, { id: toBytes(publicKey.user.id) });
    options.excludeCredentials = withIds(publicKey.excludeCredentials);
    return options;
  }

  // The server's publicKey options as navigator.credentials.get takes them.
  function requestOptions(publicKey) {
    var options = Object.assign({}, publicKey);
    options.challenge = toBytes(publicKey.challenge);
    options.allowCredentials = withIds(publicKey.allowCredentials);
    return options;
  }

  // A PublicKeyCredential as the server reads it (binary fields base64url).
  function credentialJSON(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      extensions: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      if (response.getTransports) json.response.transports = response.getTransports();
    }
    if (response.authenticatorData) {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      if (response.userHandle) json.response.userHandle = toBase64url(response.userHandle);
    }
    return json;
  }

  window.authPasskeys = {
    creationOptions: creationOptions,
    requestOptions: requestOptions,
    credentialJSON: credentialJSON
  };

  // The failure, announced (role="alert") above the form; the page's own alert (a wrong
  // password) is replaced, so one message shows at a time.
  function showError(message) {
    var alert = document.getElementById("passkey-error");
    if (!alert) {
      var previous = document.getElementById("form-error");
      if (previous) previous.remove();
      alert = document.createElement("div");
      alert.className = "error";
      alert.id = "passkey-error";
      alert.setAttribute("role", "alert");
      var button = document.getElementById("passkey-button");
      var form = document.getElementById((button && button.dataset.form) || "login-form");
      form.parentNode.insertBefore(alert, form);
    }
    alert.textContent = message;
  }

  // The login form's hidden fields: the CSRF token and the authorization request.
  function hiddenFields(form) {
    var fields = [];
    var inputs = form.querySelectorAll("input[type=hidden]");
    for (var i = 0; i < inputs.length; i++) fields.push([inputs[i].name, inputs[i].value]);
    return fields;
  }

  function submitAssertion(action, fields, ceremonyId, credential) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = action;
    form.hidden = true;
    fields.concat([["ceremony_id", ceremonyId], ["credential", JSON.stringify(credential)]])
      .forEach(function (pair) {
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = pair[0];
        input.value = pair[1];
        form.appendChild(input);
      });
    document.body.appendChild(form);
    form.submit();
  }

  async function signIn(button, form) {
    var fields = hiddenFields(form);
    button.disabled = true;
    try {
      var started = await fetch(button.dataset.start || "/auth/passkey/start", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(fields).toString()
      });
      if (!started.ok) {
        var problem = await started.json().catch(function () { return null; });
        showError((problem && problem.detail) || "Passkey sign-in is not available right now. Try again.");
        return;
      }
      var ceremony = await started.json();
      var credential;
      try {
        credential = await navigator.credentials.get({ publicKey: requestOptions(ceremony.publicKey) });
      } catch (error) {
        showError(error && error.name === "NotAllowedError"
          ? "The passkey sign-in was cancelled or timed out. Try again, or use your password."
          : "Your browser could not use a passkey here. Use your password instead.");
        return;
      }
      if (!credential) {
        showError("No passkey was chosen. Try again, or use your password.");
        return;
      }
      submitAssertion(button.dataset.finish || "/auth/passkey/finish", fields,
        ceremony.ceremony_id, credentialJSON(credential));
    } catch (error) {
      showError("Passkey sign-in failed. Check your connection and try again.");
    } finally {
      button.disabled = false;
    }
  }

  // The button may name other endpoints and form (data-start, data-finish, data-form): a
  // second-factor page reuses this script with its own.
  function setUp() {
    var button = document.getElementById("passkey-button");
    var form = button && document.getElementById(button.dataset.form || "login-form");
    if (!button || !form) return;
    if (!window.PublicKeyCredential || !navigator.credentials) return; // stays hidden
    button.hidden = false;
    button.addEventListener("click", function () { signIn(button, form); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
