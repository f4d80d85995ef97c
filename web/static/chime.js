/* The chime of the ticket page and the web hall display: two notes made with Web Audio (no sound file), once
   the browser allows sound (most need one tap on the page or one key first). Sets window.vuoroChime. */
"use strict";
(function () {
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

  window.vuoroChime = chime;
})();
