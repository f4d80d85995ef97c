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
  var audio = null;

  function unlock() {
    try {
      var Context = window.AudioContext || window.webkitAudioContext;
      if (!audio && Context) { audio = new Context(); }
      if (audio && audio.state === "suspended") { audio.resume(); }
    } catch (e) { audio = null; }
  }
  document.addEventListener("pointerdown", unlock, { passive: true });
  document.addEventListener("keydown", unlock);

  function chime() {
    if (!audio) { return; }
    try {
      var start = audio.currentTime;
      [[880, 0], [660, 0.35]].forEach(function (note) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        var at = start + note[1];
        osc.frequency.value = note[0];
        gain.gain.setValueAtTime(0.0001, at);
        gain.gain.exponentialRampToValueAtTime(0.4, at + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.6);
        osc.connect(gain);
        gain.connect(audio.destination);
        osc.start(at);
        osc.stop(at + 0.65);
      });
    } catch (e) { /* no sound is no harm */ }
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
