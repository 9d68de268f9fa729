#!/usr/bin/env python3
"""llm-standin: a tiny OpenAI-compatible server standing in for the LLM in
demos and tests (`scripts/quickstart demo` uses it unless a real one is
named). It answers /v1/chat/completions and /v1/completions (whole, or
server-sent events with "stream": true) with a deterministic echo of the
last prompt, /v1/embeddings (a deterministic vector, float or base64),
/v1/responses, /v1/models and /v1/models/{id}. A streamed prompt containing
"[cut]" is cut after two events (the connection closes mid-answer);
"[halfcut]", "[slowhalf]" and "[bigevent]" send half events, a stalled
half event and a 3 MiB one, for tests of what clients see then; "[hold]"
sends the first word and then holds the rest until GET /_standin/release
(at most 60 s: a stop button's test). Loopback (or a UNIX socket) only.

HTTP/1.1 keep-alive, TCP_NODELAY and one write per whole answer, so it
never stalls a client on Nagle/delayed ACK (benchmarks measure the agent,
not this). GET /_standin/stats: {"connections": accepted so far,
"requests": answered so far}; tests count reused connections with it.

usage: llm-standin.py [--port N | --unix PATH] [--port-file F]"""
import argparse
import base64
import hashlib
import json
import struct
import os
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "attest-standin-1"


def reply_for(body, chat):
    if chat:
        msgs = body.get("messages") or [{}]
        prompt = str(msgs[-1].get("content", ""))
    else:
        prompt = str(body.get("prompt", ""))
    return f"You said: {prompt}"


STATS = {"connections": 0, "requests": 0}
STATS_LOCK = threading.Lock()
RELEASE = threading.Event()  # ends every "[hold]"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        if self.request.family in (socket.AF_INET, socket.AF_INET6):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with STATS_LOCK:
            STATS["connections"] += 1
        super().setup()

    def log_message(self, fmt, *args):
        pass

    def address_string(self):
        return str(self.client_address[0]) if self.client_address else "unix"

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        with STATS_LOCK:
            STATS["requests"] += 1
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
        self.wfile.write(head.encode() + data)  # one write: no Nagle/delayed-ACK stall

    def do_GET(self):
        if self.path == "/_standin/stats":
            with STATS_LOCK:
                snapshot = dict(STATS)
            self.send_json(200, snapshot)
        elif self.path == "/_standin/release":
            RELEASE.set()
            self.send_json(200, {"released": True})
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "attest"}]})
        elif self.path.startswith("/v1/models/"):
            mid = self.path[len("/v1/models/"):]
            if mid == MODEL:
                self.send_json(200, {"id": MODEL, "object": "model", "created": 0, "owned_by": "attest"})
            else:
                self.send_json(404, {"error": {"message": f"no model {mid}", "type": "invalid_request_error",
                                               "param": "model", "code": "model_not_found"}})
        elif self.path == "/healthz":
            self.send_json(200, {"ok": True})
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.path in ("/v1/embeddings", "/v1/responses"):
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self.send_json(400, {"error": {"message": "body is not JSON"}})
                return
            (self.embeddings if self.path == "/v1/embeddings" else self.response_api)(body)
            return
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self.send_json(400, {"error": {"message": "body is not JSON"}})
            return
        chat = self.path == "/v1/chat/completions"
        text = reply_for(body, chat)
        created = int(time.time())
        if not body.get("stream"):
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                      if chat else {"index": 0, "text": text, "finish_reason": "stop"})
            self.send_json(200, {"id": "cmpl-standin", "object": "chat.completion" if chat else "text_completion",
                                 "created": created, "model": body.get("model", MODEL), "choices": [choice],
                                 "usage": {"prompt_tokens": len(text.split()), "completion_tokens": len(text.split())}})
            return
        with STATS_LOCK:
            STATS["requests"] += 1
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")

        def send(data):
            chunk = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()

        def raw_chunk(data):
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        if "[halfcut]" in text:
            # one whole event and half the next in one write, then the cut
            raw_chunk(b'data: {"choices":[{"index":0,"delta":{"content":"whole"}}]}\n\ndata: {"choi')
            self.close_connection = True
            return
        if "[slowhalf]" in text:
            # half an event, a pause, then the rest: the client waits, never spins
            raw_chunk(b'data: {"choices":[{"index":0,"delta":{"content":"sl')
            time.sleep(3)
            raw_chunk(b'ow"}}]}\n\n')
            last = b"data: [DONE]\n\n"
            self.wfile.write(b"%x\r\n" % len(last) + last + b"\r\n0\r\n\r\n")
            self.wfile.flush()
            return
        if "[bigevent]" in text:
            # 3 MiB without a blank line: an event no client should buffer
            for _ in range(48):
                raw_chunk(b"data: " + b"x" * 65536)
            self.close_connection = True
            return
        cut = "[cut]" in text
        hold = "[hold]" in text
        for i, word in enumerate(text.split(" ")):
            if cut and i == 2:
                # the answer cut mid-stream: no last chunk, no [DONE]
                self.close_connection = True
                return
            piece = word if i == 0 else " " + word
            delta = {"content": piece} if chat else None
            ev = {"id": "cmpl-standin", "object": "chat.completion.chunk" if chat else "text_completion",
                  "created": created, "model": body.get("model", MODEL),
                  "choices": [{"index": 0, "delta": delta, "finish_reason": None} if chat
                              else {"index": 0, "text": piece, "finish_reason": None}]}
            send(json.dumps(ev))
            if hold and i == 0:
                RELEASE.wait(60)
            else:
                time.sleep(0.02)
        last = b"data: [DONE]\n\n"  # the last event and the end of the body in one write
        self.wfile.write(b"%x\r\n" % len(last) + last + b"\r\n0\r\n\r\n")
        self.wfile.flush()

    def embeddings(self, body):
        inputs = body.get("input", "")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for i, text in enumerate(inputs):
            digest = hashlib.sha256(str(text).encode()).digest()
            vec = [round(b / 255.0, 4) for b in digest[:8]]
            emb = (base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
                   if body.get("encoding_format") == "base64" else vec)
            data.append({"object": "embedding", "index": i, "embedding": emb})
        self.send_json(200, {"object": "list", "data": data, "model": body.get("model", MODEL),
                             "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})

    def response_api(self, body):
        inp = body.get("input", "")
        if isinstance(inp, list):
            inp = (inp[-1] or {}).get("content", "") if inp else ""
        if isinstance(inp, list):  # content parts: [{"type": "input_text", "text": ...}]
            inp = "".join(p.get("text", "") for p in inp if isinstance(p, dict) and p.get("type") == "input_text")
        text = f"You said: {inp}"
        self.send_json(200, {"id": "resp_standin", "object": "response", "created_at": int(time.time()),
                             "status": "completed", "model": body.get("model", MODEL),
                             "output": [{"type": "message", "id": "msg_standin", "status": "completed",
                                         "role": "assistant",
                                         "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                             "usage": {"input_tokens": 1, "output_tokens": len(text.split()), "total_tokens": 1 + len(text.split())}})


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--unix", help="serve on this UNIX socket path instead")
    ap.add_argument("--port-file")
    a = ap.parse_args()
    if a.unix:
        if os.path.exists(a.unix):
            os.unlink(a.unix)
        srv = UnixServer(a.unix, Handler)
        port = 0
    else:
        ThreadingHTTPServer.daemon_threads = True
        srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
        port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
