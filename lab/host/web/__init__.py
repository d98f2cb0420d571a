"""The live classroom view: a page on 127.0.0.1 that draws a scenario's events as the lab reports them.

``lab demo NAME --web`` and ``lab run NAME --web`` start :class:`~lab.host.web.server.LiveView`
(the standard library's threading HTTP server, on 127.0.0.1 and a free port), print its address,
and feed it the run's events through an :class:`~lab.host.web.hub.EventHub`. The page
(``static/``, served from the package, nothing fetched from the internet) listens with
Server-Sent Events and draws the lanes, the fault band, errors and detections as they arrive;
at the end, the verdicts, the proofs and links to the captures.

Why the standard library and Server-Sent Events: the page only listens (one direction), an
EventSource reconnects by itself and replays from the hub's buffer, and the host side then needs
no web framework or websocket library to keep up to date. The host side may use third-party
packages, but this needs none.
"""
