"""`vuoro web`: the visitor's ticket page, its feedback, and the web hall display (aiohttp, Jinja2, SSE).
May import broker, ui's translations and the display's pure board (display.model, display.board); never Kivy."""
