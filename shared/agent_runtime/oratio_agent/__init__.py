"""The small library every generated Oratio agent imports.

An agent is an HTTP server speaking the Bedrock AgentCore Runtime contract:

* ``GET /ping`` answers ``{"status": "Healthy", "time_of_last_update": <epoch seconds>}``;
* ``POST /invocations`` takes a JSON object and answers a JSON object, or, when the caller
  accepts ``text/event-stream``, Server-Sent Events: ``token`` ``{"text"}`` pieces of the
  reply as the model writes them, then ``answer`` with the whole answer (or ``error``).

``serve(handle)`` runs that server around the agent's ``handle(request) -> dict`` on the
port in ``$PORT`` (8080 by default, AgentCore's), on ``$HOST`` (``0.0.0.0``; the embedded
platform sets ``127.0.0.1``). ``retrieve`` and ``complete`` reach the agent's knowledge and
the platform's model; ``complete`` streams the model's text to the caller when the
invocation streams, and ``say`` streams text of the agent's own. It uses only the standard
library.
"""

import hmac
import json
import os
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["serve", "handoff", "retrieve", "complete", "call_tool", "say", "MAX_REQUEST_BYTES", "PlatformError"]

MAX_REQUEST_BYTES = 1024 * 1024
_started = int(time.time())
_local = threading.local()


class PlatformError(Exception):
    """The platform's runtime API refused or failed a call."""


def handoff(reason, summary=""):
    """The signal an agent returns to hand the conversation to a person."""
    return {"requested": True, "reason": str(reason), "summary": str(summary)}


def _emit(event, data):
    """Writes one Server-Sent Event to the invocation being answered, if it streams."""
    stream = getattr(_local, "stream", None)
    if stream is None:
        return
    try:
        stream.write(("event: %s\ndata: %s\n\n" % (event, json.dumps(data))).encode("utf-8"))
        stream.flush()
    except OSError:
        _local.stream = None  # the caller went away; finish the turn anyway


def say(text):
    """Streams ``text`` as part of the reply (nothing happens when the invocation does not stream)."""
    if text:
        _emit("token", {"text": str(text)})


def _handler_class(handle):
    class AgentHandler(BaseHTTPRequestHandler):
        server_version = "oratio-agent/2"

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

        def _authorised(self):
            """On one machine the platform signs every invocation with the agent's secret."""
            secret = os.environ.get("ORATIO_INVOCATION_SECRET")
            if not secret:
                return True
            given = self.headers.get("X-Oratio-Invocation-Secret") or ""
            return hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8"))

        def do_POST(self):
            if self.path != "/invocations":
                self._answer(404, {"error": "no such route"})
                return
            if not self._authorised():
                self._answer(401, {"error": "invocations come from the platform only"})
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
            if "text/event-stream" in (self.headers.get("Accept") or ""):
                self._stream(request)
                return
            try:
                reply = handle(request)
            except Exception:  # the agent's own fault: report it, keep serving
                sys.stderr.write(json.dumps({"level": "ERROR", "message": traceback.format_exc()}) + "\n")
                self._answer(500, {"error": "the agent failed"})
                return
            self._answer(200, reply if isinstance(reply, dict) else {"reply": reply})

        def _stream(self, request):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            _local.stream = self.wfile
            try:
                reply = handle(request)
                _emit("answer", reply if isinstance(reply, dict) else {"reply": reply})
            except Exception:
                sys.stderr.write(json.dumps({"level": "ERROR", "message": traceback.format_exc()}) + "\n")
                _emit("error", {"error": "the agent failed"})
            finally:
                _local.stream = None
            self.close_connection = True

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


def _request(path, body, stream=False):
    base = os.environ.get("ORATIO_PLATFORM_URL")
    if not base:
        return None
    if stream:  # where the platform streams answers, when that is another address (AWS)
        base = os.environ.get("ORATIO_STREAM_URL") or base
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Bearer " + os.environ.get("ORATIO_RUNTIME_TOKEN", ""),
    }
    if stream:
        headers["Accept"] = "text/event-stream"
    request = urllib.request.Request(
        base.rstrip("/") + path, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
    )
    try:
        return urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read() or b"{}").get("error", "")
        except ValueError:
            detail = ""
        raise PlatformError("%s %s: %s" % (error.code, path, detail or error.reason)) from None


def _platform(path, body):
    """Calls the platform's runtime API (``$ORATIO_PLATFORM_URL``), or ``None`` when the
    agent runs on its own (local experiments)."""
    response = _request(path, body)
    if response is None:
        return None
    with response:
        return json.loads(response.read() or b"{}")


def retrieve(query, limit=4):
    """Passages of the agent's documents that answer ``query``, best first:
    ``[{"document_id", "title", "location", "text", "score"}]``."""
    answer = _platform("/v1/runtime/retrieve", {"query": str(query), "limit": int(limit)})
    return [] if answer is None else answer.get("passages", [])


def call_tool(name, arguments, session_id=None):
    """Calls one of the tenant's tools through the platform, which checks the arguments
    against the tool's schema, signs, sends, retries and records the call:
    ``{"execution_id", "status": "succeeded"|"failed"|"timed_out", "attempts", "result"?,
    "error"?: {"code", "message"}}``."""
    body = {"name": str(name), "arguments": arguments if isinstance(arguments, dict) else {}}
    if session_id:
        body["session_id"] = str(session_id)
    answer = _platform("/v1/runtime/tools", body)
    if answer is None:
        return {"status": "failed", "attempts": 0, "error": {"code": "offline", "message": "no platform is reachable"}}
    return answer


def _events(response):
    """The Server-Sent Events of a response, as (event, data) pairs."""
    name, data = "message", []
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:
        yield name, "\n".join(data)


def complete(system, messages, tools=None, max_tokens=512, lead=""):
    """One turn of the platform's model: ``{"text", "tool_calls": [{"id", "name", "input"}],
    "stop_reason", "model", "fallback_used", "input_tokens", "output_tokens"}``.

    ``messages`` are ``{"role": "user"|"assistant", "content": [blocks]}`` with blocks
    ``{"text"}``, ``{"tool_use": {"id", "name", "input"}}`` (assistant) and
    ``{"tool_result": {"tool_use_id", "content", "is_error"}}`` (user), ending with the
    user's turn or with tool results. ``tools`` are ``{"name", "description",
    "input_schema"}``. When the invocation streams, the model's text goes to the caller as
    it comes, preceded by ``lead`` if there is any."""
    body = {"system": system, "messages": messages, "tools": tools or [], "max_tokens": int(max_tokens)}
    streaming = getattr(_local, "stream", None) is not None
    if streaming:
        body["stream"] = True
    response = _request("/v1/runtime/complete", body, stream=streaming)
    if response is None:
        text = "(offline: no model is reachable)"
        say(lead + text)
        return {"text": text, "tool_calls": [], "model": "offline", "input_tokens": 0, "output_tokens": 0}
    with response:
        if not streaming:
            return json.loads(response.read() or b"{}")
        started = False
        for event, data in _events(response):
            payload = json.loads(data)
            if event == "token":
                if not started:
                    say(lead)
                    started = True
                say(payload.get("text", ""))
            elif event == "completion":
                return payload
            elif event == "error":
                raise PlatformError(payload.get("error", "the model failed"))
    raise PlatformError("the platform's stream ended without a completion")
