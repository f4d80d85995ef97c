/* The web hall display, live: each Server-Sent Event carries the whole board, and this script puts its texts
   in place (textContent only: nothing from the network becomes markup). A short chime for each new call,
   where the TV allows sound (most need one press of a key or a tap on the page first). */
"use strict";
(function () {
  var main = document.getElementById("board");
  if (!main || !window.EventSource) { return; }
  var lastSeq = null;

  function chime() {
    if (window.vuoroChime) { window.vuoroChime(); }
  }

  function field(name, text) {
    var element = main.querySelector('[data-field="' + name + '"]');
    if (element) { element.textContent = text || ""; }
  }

  function part(name, shown) {
    var element = main.querySelector('[data-part="' + name + '"]');
    if (element) { element.hidden = !shown; }
  }

  function way(call) { return call.direction + (call.place ? " · " + call.place : ""); }

  function list(name, calls) {
    var element = main.querySelector('[data-list="' + name + '"]');
    if (!element) { return; }
    while (element.firstChild) { element.removeChild(element.firstChild); }
    calls.forEach(function (call) {
      var item = document.createElement("li");
      item.lang = call.lang;
      item.dir = call.dir;
      [["num", call.number], ["to", call.counter], ["way", way(call)]].forEach(function (bit, index) {
        var span = document.createElement("span");
        span.className = bit[0];
        span.textContent = bit[1];
        if (index) { item.appendChild(document.createTextNode(" ")); }
        item.appendChild(span);
      });
      element.appendChild(item);
    });
  }

  function apply(board) {
    document.documentElement.lang = board.lang;
    document.documentElement.dir = board.dir;
    document.body.className = "tv mode-" + board.mode;
    ["hall", "clock", "now_serving", "earlier", "idle"].forEach(function (name) { field(name, board[name]); });
    part("notice", !!board.notice);
    field("notice-title", board.notice ? board.notice.title : "");
    field("notice-body", board.notice ? board.notice.body : "");
    part("hero", !!board.hero);
    main.querySelector('[data-field="idle"]').hidden = !!(board.hero || board.notice);
    if (board.hero) {
      var hero = main.querySelector('[data-part="hero"]');
      hero.lang = board.hero.lang;  /* the called visitor's language, whatever the board's is just now */
      hero.dir = board.hero.dir;
      field("hero-number", board.hero.number);
      field("hero-counter", board.hero.counter);
      field("hero-way", way(board.hero));
      var seq = board.hero.seq + "/" + board.hero.recall;
      if (lastSeq !== null && seq !== lastSeq) { chime(); }
      lastSeq = seq;
    }
    list("current", board.current);
    list("history", board.history);
    document.getElementById("offline").hidden = board.online;
  }

  var source = new EventSource(main.getAttribute("data-events"));
  source.addEventListener("board", function (message) { apply(JSON.parse(message.data)); });
  source.onerror = function () { document.getElementById("offline").hidden = false; };
}());
