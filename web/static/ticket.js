/* The ticket page, live: Server-Sent Events from `vuoro web` replace the texts the server rendered.
   No framework, no storage, no cookies. Vibration and a short chime (Web Audio, made here: no sound file)
   when the visitor is called, where the browser allows (sound needs one tap on the page first). */
"use strict";
(function () {
  var main = document.getElementById("ticket");
  if (!main || !window.EventSource) { return; }
  var live = document.getElementById("live");
  var offline = document.getElementById("offline");
  var form = document.getElementById("feedback");
  var status = main.getAttribute("data-status");
  var fields = ["number", "topic", "title", "body", "ahead", "wait", "where", "way"];

  function chime() {
    if (window.vuoroChime) { window.vuoroChime(); }
  }

  function show(name, text) {
    var element = main.querySelector('[data-field="' + name + '"]');
    if (!element) { return; }
    element.textContent = text || "";
    element.hidden = !text;
  }

  function apply(state) {
    fields.forEach(function (name) { show(name, state[name]); });
    document.body.className = "status-" + state.status;
    if (form) { form.hidden = !state.feedback; }
    if (state.alert && state.status !== status) {
      /* a phone vibrates only for a page the visitor has touched (else the browser refuses, and says so) */
      var touched = !navigator.userActivation || navigator.userActivation.hasBeenActive;
      if (navigator.vibrate && touched) { navigator.vibrate([400, 150, 400, 150, 400]); }
      chime();
    }
    if (state.status !== status) { document.title = state.title + " · " + state.number; }
    status = state.status;
    main.setAttribute("data-status", status);
  }

  var source = new EventSource(main.getAttribute("data-events"));
  source.addEventListener("state", function (message) {
    offline.hidden = true;
    live.hidden = false;
    apply(JSON.parse(message.data));
  });
  source.addEventListener("gone", function () { source.close(); window.location.reload(); });
  source.onerror = function () { live.hidden = true; offline.hidden = false; };  /* it reconnects by itself */
}());
