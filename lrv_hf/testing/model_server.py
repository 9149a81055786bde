"""A loopback OpenAI-compatible server that answers from a local model in-process, as vLLM or `transformers serve`
would: the `data:` URL image decoded, the chat turned into the processor's template, greedy `generate`.

    with ModelServer("runs/quickstart/train/base", served_name="tiny") as server:
        run_endpoint_inference(EndpointConfig(server.url, "tiny"), ...)
"""

import base64
import io
import threading
from urllib.parse import urlparse

from .chat_server import ChatServer, _Handler, _QuietServer


def to_chat(messages: list[dict]) -> tuple[list[dict], list]:
    """OpenAI chat messages -> the processor's chat messages (`{"type": "image"}` parts) and the decoded images."""
    from PIL import Image

    chat, images = [], []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts = []
        for part in content:
            if part["type"] == "text":
                parts.append({"type": "text", "text": part["text"]})
            elif part["type"] == "image_url":
                url = part["image_url"]["url"]
                if not url.startswith("data:image/"):
                    raise ValueError("only data: URL images are served here")
                data = base64.b64decode(url.split(",", 1)[1])
                images.append(Image.open(io.BytesIO(data)).convert("RGB"))
                parts.append({"type": "image"})
            else:
                raise ValueError(f"unknown content part {part['type']!r}")
        chat.append({"role": message["role"], "content": parts})
    return chat, images


class ListingServer(ChatServer):
    """A `ChatServer` that also answers `GET /v1/models` with `models`, as vLLM and OpenAI do."""

    def __init__(self, models: list[str], **options):
        super().__init__(**options)
        self.models = models

    def start(self) -> "ListingServer":
        server = self

        class Handler(_Handler):
            chat = server

            def do_GET(self):
                if not urlparse(self.path).path.rstrip("/").endswith("/models"):
                    return super().do_GET()
                if not self._authorised():
                    return self._error(401, "Incorrect API key provided.")
                listing = [{"id": name, "object": "model", "owned_by": "lrv-hf"} for name in server.models]
                return self._send(200, {"object": "list", "data": listing})

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="chat-server", daemon=True)
        self._thread.start()
        return self


class ModelServer(ListingServer):
    """A server whose replies come from `model` (a local path or id), greedy unless `temperature` > 0.

    Args:
        model (`str`): the model to load (`lrv_hf.infer.load_model` forms).
        served_name (`str`): the name it is served under (what `/v1/models` lists and requests must name).
        adapter (`str`, *optional*): a LoRA adapter on `model`.
        latency (`float`, *optional*): extra seconds per reply.
    """

    def __init__(self, model: str, served_name: str, adapter: str | None = None, latency: float = 0.0, **options):
        from ..infer.load import load_model

        super().__init__([served_name], reply=self.generate, latency=latency, **options)
        self.served_name = served_name
        self.model, self.processor = load_model(model, adapter)
        self._generate_lock = threading.Lock()  # one generate at a time: the model is not shared across threads

    def generate(self, body: dict) -> str:
        import torch

        if body.get("model") != self.served_name:
            raise ValueError(f"model {body.get('model')!r} is not served here")
        chat, images = to_chat(body["messages"])
        text = self.processor.apply_chat_template(chat, add_generation_prompt=True)
        inputs = self.processor(images=images or None, text=[text], return_tensors="pt")
        greedy = not body.get("temperature")
        with self._generate_lock, torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=body.get("max_tokens") or 16,
                do_sample=not greedy,
                temperature=None if greedy else body["temperature"],
                pad_token_id=self.processor.tokenizer.pad_token_id,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0]
