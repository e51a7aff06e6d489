"""A SCRIPTED OpenAI-compatible server on loopback, for control-flow tests only.

It replays fixed replies in order over real HTTP, so the agent's real `openai` client talks to
it through a socket. It is not a model: tests that judge model output use llama.cpp instead.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    """`replies` is a list of turns; each turn is a list of choice texts (one per `n`)."""

    def __init__(self, replies: list[list[str]], model: str = "scripted-model", status: int = 200,
                 delay: float = 0.0):
        self.replies = list(replies)
        self.model = model
        self.status = status
        self.delay = delay
        self.requests: list[dict] = []
        self.answered = 0  # replies sent in full
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    return self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                time.sleep(server.delay)
                if server.status != 200:
                    return self._send(server.status, {"error": {"message": f"scripted {server.status}"}})
                n = int(body.get("n") or 1)
                turn = server.replies.pop(0) if server.replies else ["(no more scripted replies)"]
                texts = (turn * n)[:n] if len(turn) < n else turn[:n]
                chat = self.path.endswith("/chat/completions")
                choices = [{"index": i, "finish_reason": "stop",
                            **({"message": {"role": "assistant", "content": t}} if chat else {"text": t})}
                           for i, t in enumerate(texts)]
                completion = sum(len(t.split()) for t in texts)
                self._send(200, {"id": "scripted", "object": "chat.completion" if chat else "text_completion",
                                 "created": int(time.time()), "model": server.model, "choices": choices,
                                 "usage": {"prompt_tokens": 100, "completion_tokens": completion,
                                           "total_tokens": 100 + completion}})
                server.answered += 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def answer(code: str, cause: str = "The function uses the wrong value.", simulation: str = "") -> str:
    """A reply in SemCoder's refine layout."""
    return (f"[MONOLOGUE]\n### Execution Simulation\n{simulation or 'The test calls the function.'}\n\n"
            f"### Root Cause Analysis\n{cause}\n\n### Bug Fixing\n[Refined]\n```python\n{code}```\n[/Refined]\n")
