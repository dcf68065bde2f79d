"""The small library every generated Oratio agent imports.

An agent is an HTTP server speaking the Bedrock AgentCore Runtime contract:

* ``GET /ping`` answers ``{"status": "Healthy", "time_of_last_update": <epoch seconds>}``;
* ``POST /invocations`` takes a JSON object and answers a JSON object.

``serve(handle)`` runs that server around the agent's ``handle(request) -> dict`` on the
port in ``$PORT`` (8080 by default, AgentCore's), on ``$HOST`` (``0.0.0.0``; the embedded
platform sets ``127.0.0.1``). ``retrieve`` and ``complete`` reach the agent's knowledge and
the platform's model. It uses only the standard library.
"""

import json
import os
import sys
import threading
import time
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["serve", "handoff", "retrieve", "complete", "MAX_REQUEST_BYTES"]

MAX_REQUEST_BYTES = 1024 * 1024
_started = int(time.time())


def handoff(reason):
    """The signal an agent returns to hand the conversation to a person."""
    return {"requested": True, "reason": str(reason)}


def _handler_class(handle):
    class AgentHandler(BaseHTTPRequestHandler):
        server_version = "oratio-agent/1"

        def log_message(self, fmt, *args):  # one JSON line per request, on stderr
            sys.stderr.write(json.dumps({"level": "INFO", "message": fmt % args}) + "\n")

        def _answer(self, status, body):
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/ping":
                self._answer(200, {"status": "Healthy", "time_of_last_update": _started})
            else:
                self._answer(404, {"error": "no such route"})

        def do_POST(self):
            if self.path != "/invocations":
                self._answer(404, {"error": "no such route"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                self._answer(413, {"error": "the request is too large"})
                return
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._answer(400, {"error": "the request is not JSON"})
                return
            if not isinstance(request, dict):
                self._answer(400, {"error": "the request must be a JSON object"})
                return
            try:
                reply = handle(request)
            except Exception:  # the agent's own fault: report it, keep serving
                sys.stderr.write(json.dumps({"level": "ERROR", "message": traceback.format_exc()}) + "\n")
                self._answer(500, {"error": "the agent failed"})
                return
            self._answer(200, reply if isinstance(reply, dict) else {"reply": reply})

    return AgentHandler


def _exit_with_parent(parent_pid):
    """The embedded platform names itself in $ORATIO_PARENT_PID: when it is gone, so are we."""
    while True:
        time.sleep(1)
        if os.getppid() != parent_pid:
            os._exit(0)


def serve(handle, port=None):
    """Serves ``handle`` until the process is stopped."""
    parent = os.environ.get("ORATIO_PARENT_PID")
    if parent and parent.isdigit():
        threading.Thread(target=_exit_with_parent, args=(int(parent),), daemon=True).start()
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(port or os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((host, port), _handler_class(handle))
    server.daemon_threads = True
    sys.stderr.write(json.dumps({"level": "INFO", "message": f"agent listening on {host}:{port}"}) + "\n")
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _platform(path, body):
    """Calls the embedded platform's runtime API (``$ORATIO_PLATFORM_URL``), or ``None``
    when the agent runs on its own (code review, local experiments)."""
    base = os.environ.get("ORATIO_PLATFORM_URL")
    if not base:
        return None
    request = urllib.request.Request(
        base.rstrip("/") + path,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + os.environ.get("ORATIO_RUNTIME_TOKEN", "")},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"{}")


def retrieve(query, limit=4):
    """Passages of the agent's documents that answer ``query``, best first:
    ``[{"document_id", "title", "location", "text", "score"}]``."""
    answer = _platform("/v1/runtime/retrieve", {"query": str(query), "limit": int(limit)})
    return [] if answer is None else answer.get("passages", [])


def complete(system, messages, max_tokens=512):
    """One completion of the platform's model: ``{"text", "model", "input_tokens", "output_tokens"}``.
    ``messages`` are ``{"role": "user"|"assistant", "text": ...}``, ending with the user's turn."""
    answer = _platform("/v1/runtime/complete", {"system": system, "messages": messages, "max_tokens": int(max_tokens)})
    if answer is None:
        return {"text": "(offline: no model is reachable)", "model": "offline", "input_tokens": 0, "output_tokens": 0}
    return answer
