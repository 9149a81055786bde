"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks: "OpenAI" without the network.

It speaks `POST /v1/chat/completions` (and the Azure deployment route), the Batch API (`/v1/files`, `/v1/batches`)
and lets a test script faults: 429 with `Retry-After`, 5xx, 401/404, slow replies, dropped connections and malformed
bodies. Every request is counted, so a test can assert that no paid call happened twice.

    with ChatServer(reply=lambda body: "relevancy: ...") as server:
        judge = Judge(model="gpt-4o", base_url=server.url, api_key_env="FAKE_KEY")

or, in pytest, the `chat_server` fixture (registered in `conftest.py`).
"""

import email.parser
import email.policy
import itertools
import json
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


def echo_reply(body: dict) -> str:
    """The default reply: the last user message, so a test can tell requests apart."""
    content = body["messages"][-1]["content"]
    if isinstance(content, list):  # multimodal content parts
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return f"echo: {content}"


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer (about 4 characters per token, like English BPE)."""
    return max(1, (len(text) + 3) // 4)


@dataclass
class Fault:
    """One injected fault. `kind` is 429, 500, 502, 503, 400, 401, 404, "slow", "drop" or "malformed"."""

    kind: int | str
    retry_after: float | None = None  # 429: the `Retry-After` header in seconds (None: no header)
    delay: float = 0.0  # "slow": seconds to wait before answering normally
    malformed_body: bytes = b'{"id": "x", "object": "chat.completion", "choices": [{"mess'


@dataclass
class Record:
    """What the server saw for one request (the headers are kept so tests can check the key is sent, not logged)."""

    path: str
    body: dict | None
    headers: Message  # looked up case-insensitively: aiohttp sends `authorization`, httpx `Authorization`
    outcome: str  # "pending", "ok", a status code as text, "drop", "malformed", "abandoned"
    time: float = field(default_factory=time.monotonic)


class ChatServer:
    """A threaded chat-completions server on 127.0.0.1 with a programmable reply and injected faults.

    Args:
        reply (`Callable[[dict], str | dict]`, *optional*):
            Maps the request body to the assistant text (or to a full response object). Defaults to an echo.
        latency (`float`, *optional*, defaults to `0.0`):
            Seconds every chat call waits before replying (a real judge takes ~1-10 s).
        batch_polls (`int`, *optional*, defaults to `1`):
            How many `GET /v1/batches/{id}` polls report `in_progress` before the batch completes.
        api_key (`str`, *optional*):
            When set, requests without `Authorization: Bearer <api_key>` (or `api-key: <api_key>`) get a 401.
    """

    def __init__(
        self,
        reply: Callable[[dict], str | dict] | None = None,
        latency: float = 0.0,
        batch_polls: int = 1,
        api_key: str | None = None,
    ):
        self.reply = reply or echo_reply
        self.latency = latency
        self.batch_polls = batch_polls
        self.api_key = api_key
        self.records: list[Record] = []
        self.faults: deque[Fault] = deque()
        self.fault_fn: Callable[[int, dict], Fault | None] | None = None
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.batch_lines = 0  # chat requests answered inside batches
        self._lock = threading.Lock()
        self._chat_index = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> "ChatServer":
        server = self

        class Handler(_Handler):
            chat = server

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "ChatServer":
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The `base_url` to hand a client: `http://127.0.0.1:<port>/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        """The server root, for the Azure route (`<root>/openai/deployments/<name>/chat/completions`)."""
        return f"http://127.0.0.1:{self.port}"

    # -- programming -----------------------------------------------------------------------------------------------
    def inject(self, kind: int | str, count: int = 1, **options) -> "ChatServer":
        """Queue `count` faults of one kind for the next chat calls (see `Fault`)."""
        for _ in range(count):
            self.faults.append(Fault(kind, **options))
        return self

    def reset(self):
        """Forget the request log and pending faults (the files and batches stay)."""
        with self._lock:
            self.records.clear()
            self.faults.clear()

    # -- counters --------------------------------------------------------------------------------------------------
    @property
    def chat_requests(self) -> list[Record]:
        """Every chat call that reached the server, faults included."""
        return [r for r in self.records if r.path.endswith("/chat/completions")]

    @property
    def completed(self) -> list[Record]:
        """Chat calls answered with a well-formed 200: the calls a real provider would bill."""
        return [r for r in self.chat_requests if r.outcome == "ok"]

    @property
    def request_count(self) -> int:
        return len(self.chat_requests)

    def completed_prompts(self) -> Counter:
        """How many times each distinct request body was answered (a value > 1 is a duplicate paid call)."""
        return Counter(json.dumps(r.body, sort_keys=True) for r in self.completed)

    # -- replies ---------------------------------------------------------------------------------------------------
    def completion(self, body: dict) -> dict:
        """A chat-completion object for `body`, with deterministic token usage."""
        reply = self.reply(body)
        if isinstance(reply, dict):
            return reply
        prompt = "".join(
            m["content"] if isinstance(m.get("content"), str) else json.dumps(m.get("content"))
            for m in body.get("messages", [])
        )
        usage = {"prompt_tokens": count_tokens(prompt), "completion_tokens": count_tokens(reply)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": usage,
        }

    def next_fault(self, body: dict) -> Fault | None:
        index = next(self._chat_index)
        if self.fault_fn is not None:
            fault = self.fault_fn(index, body)
            if fault is not None:
                return fault
        with self._lock:
            return self.faults.popleft() if self.faults else None

    def run_batch(self, batch: dict):
        """Answer every line of a batch's input file and store the output file (what OpenAI does offline)."""
        lines = self.files[batch["input_file_id"]].decode().splitlines()
        out = []
        for line in lines:
            if not line.strip():
                continue
            item = json.loads(line)
            self.batch_lines += 1
            response = {"status_code": 200, "request_id": uuid.uuid4().hex, "body": self.completion(item["body"])}
            out.append(json.dumps({"id": f"batch_req_{uuid.uuid4().hex[:8]}", "custom_id": item["custom_id"],
                                   "response": response, "error": None}))  # fmt: skip
        file_id = f"file-{uuid.uuid4().hex[:12]}"
        self.files[file_id] = ("\n".join(out) + "\n").encode()
        batch.update(status="completed", output_file_id=file_id, request_counts={"total": len(out),
                     "completed": len(out), "failed": 0})  # fmt: skip


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 128  # listen() backlog: the default 5 drops SYNs when 32 clients connect at once
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients that hang up mid-reply are part of the tests
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients pool connections as they do against real providers
    chat: ChatServer

    def setup(self):
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms to every reply
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, payload: dict | bytes, headers: dict | None = None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict | None = None):
        self._send(status, {"error": {"message": message, "type": "test_server", "code": status}}, headers)

    def _record(self, body, outcome: str) -> Record:
        record = Record(urlparse(self.path).path, body, self.headers, outcome)
        with self.chat._lock:
            self.chat.records.append(record)
        return record

    def _authorised(self) -> bool:
        if self.chat.api_key is None:
            return True
        return self.headers.get("Authorization") == f"Bearer {self.chat.api_key}" or (
            self.headers.get("api-key") == self.chat.api_key
        )

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self):
        path = urlparse(self.path).path
        raw = self._read()
        if not self._authorised():
            self._record(None, "401")
            return self._error(401, "Incorrect API key provided.")
        if path.endswith("/chat/completions"):
            return self._chat(raw)
        if path.endswith("/files"):
            return self._upload(raw)
        if path.endswith("/batches"):
            body = json.loads(raw)
            if body.get("input_file_id") not in self.chat.files:
                return self._error(400, "unknown input_file_id")
            batch_id = f"batch_{uuid.uuid4().hex[:12]}"
            batch = {"id": batch_id, "object": "batch", "endpoint": body.get("endpoint"), "status": "validating",
                     "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window"),
                     "output_file_id": None, "error_file_id": None, "polls": 0}  # fmt: skip
            self.chat.batches[batch_id] = batch
            self._record(body, "ok")
            return self._send(200, batch)
        self._error(404, f"no route {path}")

    def do_GET(self):
        path = urlparse(self.path).path
        if not self._authorised():
            self._record(None, "401")
            return self._error(401, "Incorrect API key provided.")
        parts = path.rstrip("/").split("/")
        if "batches" in parts and parts[-1] != "batches":
            batch = self.chat.batches.get(parts[-1])
            if batch is None:
                return self._error(404, "no such batch")
            batch["polls"] += 1
            if batch["status"] != "completed":
                if batch["polls"] > self.chat.batch_polls:
                    self.chat.run_batch(batch)
                else:
                    batch["status"] = "in_progress"
            self._record(None, "ok")
            return self._send(200, {k: v for k, v in batch.items() if k != "polls"})
        if "files" in parts and parts[-1] == "content":
            data = self.chat.files.get(parts[-2])
            if data is None:
                return self._error(404, "no such file")
            self._record(None, "ok")
            return self._send(200, data)
        self._error(404, f"no route {path}")

    def _upload(self, raw: bytes):
        head = f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        data, purpose = None, None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                data = part.get_payload(decode=True)
            elif name == "purpose":
                purpose = part.get_content().strip()
        if data is None:
            return self._error(400, "multipart field `file` is missing")
        file_id = f"file-{uuid.uuid4().hex[:12]}"
        self.chat.files[file_id] = data
        self._record({"purpose": purpose, "bytes": len(data)}, "ok")
        self._send(200, {"id": file_id, "object": "file", "bytes": len(data), "purpose": purpose})

    def _chat(self, raw: bytes):
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._record(None, "400")
            return self._error(400, "request body is not JSON")
        # counted on arrival (outcome filled in later), so a call still being served is already visible
        record = self._record(body, "pending")
        fault = self.chat.next_fault(body)
        if fault is not None:
            if fault.kind == "drop":
                record.outcome = "drop"
                self.close_connection = True
                # a reset, not a clean close: what a crashing proxy does
                self.connection.shutdown(2)
                return
            if fault.kind == "malformed":
                record.outcome = "malformed"
                return self._send(200, fault.malformed_body)
            if fault.kind == "slow":
                time.sleep(fault.delay)
            else:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                record.outcome = str(fault.kind)
                return self._error(int(fault.kind), f"injected {fault.kind}", headers)
        if self.chat.latency:
            time.sleep(self.chat.latency)
        try:
            response = self.chat.completion(body)
        except Exception as err:  # a reply function that raises is a 500, as a buggy server would send
            record.outcome = "500"
            return self._error(500, f"reply function failed: {err}")
        record.outcome = "ok"  # set before sending: the client may look at the log as soon as it has the reply
        try:
            self._send(200, response)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): it was never delivered
            record.outcome = "abandoned"


def _serve_in_child(conn, reply, latency: float):
    with ChatServer(reply=reply, latency=latency) as server:
        conn.send(server.url)
        while (command := conn.recv()) != "stop":
            if command == "count":
                conn.send(server.request_count)
            else:  # "sizes"
                conn.send([len(json.dumps(r.body).encode()) for r in server.chat_requests])


class ChatServerProcess:
    """A `ChatServer` in a child process, for benchmarks: a real endpoint never shares the client's interpreter, and an
    in-process server's threads would take the GIL from the client being measured. `reply` must be picklable (a
    module-level function); `url` and `request_count` work as on `ChatServer`.
    """

    def __init__(self, reply: Callable[[dict], str | dict] | None = None, latency: float = 0.0):
        self.reply, self.latency = reply or echo_reply, latency
        self.url: str | None = None

    def __enter__(self) -> "ChatServerProcess":
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_in_child, args=(child, self.reply, self.latency), daemon=True)
        self._process.start()
        self.url = self._conn.recv()
        return self

    @property
    def request_count(self) -> int:
        self._conn.send("count")
        return self._conn.recv()

    def body_sizes(self) -> list[int]:
        """The size in bytes of each chat request body the server answered (JSON, as sent)."""
        self._conn.send("sizes")
        return self._conn.recv()

    def __exit__(self, *exc):
        self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
