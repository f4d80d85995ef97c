"""`vuoro web`: the visitor's ticket page, its feedback, and the web hall display (aiohttp, Jinja2, SSE)."""
