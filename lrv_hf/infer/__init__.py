"""Inference: a model (+ LoRA adapter) answers LRV questions in batches -> the predictions JSONL scorers read.

`load` loads the model, `inputs` reads the questions, `generate` holds the answerers, `run` writes resumable and
sharded output (`run_inference`), `endpoint` asks an OpenAI-compatible server instead (`run_endpoint_inference`),
`cli` is `lrv-hf infer` and `python -m lrv_hf.infer`. Nothing here imports torch until a model is loaded.
"""

from .endpoint import EndpointAnswerer, EndpointConfig, EndpointError, EndpointResult, run_endpoint_inference
from .generate import Answerer, GenerationSettings, TransformersAnswerer, generate_answers, render_prompts
from .inputs import Item, read_items
from .load import ADAPTER_NAME, load_model
from .output import OutputLock, meta_path
from .run import InferResult, run_inference, write_answers


__all__ = [
    "ADAPTER_NAME",
    "Answerer",
    "EndpointAnswerer",
    "EndpointConfig",
    "EndpointError",
    "EndpointResult",
    "GenerationSettings",
    "InferResult",
    "Item",
    "OutputLock",
    "TransformersAnswerer",
    "generate_answers",
    "load_model",
    "meta_path",
    "read_items",
    "render_prompts",
    "run_endpoint_inference",
    "run_inference",
    "write_answers",
]
