"""The web console for key holders: static files served by the query function at `/console`.

`assets/` holds the page (HTML, one CSS file, plain JavaScript modules: no build step, no
framework); `serve` answers `GET /console` and `/console/<asset>` with a strict
Content-Security-Policy. Everything else the console does goes through the public HTTP API
(`/v1/...`) with the key in the Authorization header. May import `platform` only.
"""
