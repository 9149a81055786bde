"""One LRV generation run: dense captions -> one judge call per image and kind -> release-format rows + a summary.

Every reply lands in the judge's SQLite cache the moment it arrives, so an interrupted run is resumed by running it
again: answered calls come from the cache, only the rest are paid for.
"""

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..data.release import image_path, read_regions
from ..errors import InputError
from ..judge import Judge, JudgeRequest, JudgeResult
from .parse import DUPLICATE, KNOWN_TASKS, NEGATIVE_TASK, TRUNCATED, instruction_key, parse_reply, validate
from .prompt import DEFAULT_KINDS, KINDS, POSITIVE, build_messages


logger = logging.getLogger(__name__)

OUTPUT_FILE = "instructions.json"
SUMMARY_FILE = "summary.json"
DROPPED_FILE = "dropped.jsonl"
CACHE_FILE = "judge_cache.sqlite"
NO_INSTRUCTIONS = "reply without instructions"
# typical GPT-4 reply lengths under this protocol (20 items of ~60 tokens; 6 items of ~70), for `--dry-run`
EXPECTED_COMPLETION_TOKENS = {POSITIVE: 1200, "negative": 450}


@dataclass
class GenerationConfig:
    """What to generate, for how many images, and how to send it."""

    kinds: tuple[str, ...] = field(
        default=DEFAULT_KINDS,
        metadata={"help": f"Instruction kinds to generate, one judge call per image and kind; any of {KINDS}."},
    )
    max_images: int | None = field(
        default=None, metadata={"help": "Use only the first N images (in the regions file's order) that have a file."}
    )
    batch: bool = field(
        default=False, metadata={"help": "Send through the OpenAI Batch API (half price, results within 24 h)."}
    )
    poll_interval: float = field(default=30.0, metadata={"help": "Seconds between Batch API status polls."})

    def __post_init__(self):
        if isinstance(self.kinds, str):
            self.kinds = tuple(kind.strip() for kind in self.kinds.split(",") if kind.strip())
        self.kinds = tuple(self.kinds)
        if not self.kinds:
            raise ValueError(f"`kinds` is empty; choose from {', '.join(KINDS)}")
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown:
            raise ValueError(f"`kinds`: unknown kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
        if len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"`kinds` names a kind twice: {','.join(self.kinds)}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"`max_images` must be >= 1, got {self.max_images}")
        if self.poll_interval <= 0:
            raise ValueError(f"`poll_interval` must be > 0, got {self.poll_interval}")


@dataclass
class ImageSelection:
    """The regions of the images a run uses, and how many images of the regions file were left out and why."""

    regions: dict[str, list[dict]]
    scanned: int = 0
    missing_image: int = 0
    without_regions: int = 0

    def to_dict(self) -> dict:
        return {
            "used": len(self.regions),
            "scanned": self.scanned,
            "missing_image": self.missing_image,
            "without_regions": self.without_regions,
        }


def select_images(regions_file: str | Path, images_dir: str | Path, max_images: int | None = None) -> ImageSelection:
    """Dense captions of the images that have a file in `images_dir`, in file order, up to `max_images`.

    Reads LRV's `vg_annotation.json` and Visual Genome's `region_descriptions.json` (streamed: VG's is ~700 MB).
    """
    if not Path(images_dir).is_dir():
        raise InputError(f"{images_dir}: no such folder", "images_dir")
    selection = ImageSelection(regions={})
    for image_id, regions in read_regions(regions_file):
        if max_images is not None and len(selection.regions) >= max_images:
            break
        selection.scanned += 1
        if not regions:
            selection.without_regions += 1
        elif not image_path(images_dir, image_id).is_file():
            selection.missing_image += 1
        else:
            selection.regions[image_id] = regions
    if not selection.regions:
        raise InputError(
            f"{regions_file}: none of its {selection.scanned} images has both regions and a file in {images_dir} "
            "(expected <images>/<image_id>.jpg)"
        )
    return selection


def build_requests(regions: dict[str, list[dict]], kinds: tuple[str, ...]) -> list[JudgeRequest]:
    """One request per image and kind, image-major, tagged with both in its metadata."""
    return [
        JudgeRequest(build_messages(kind, image_regions), metadata={"image_id": image_id, "kind": kind})
        for image_id, image_regions in regions.items()
        for kind in kinds
    ]


def estimate(judge: Judge, requests: list[JudgeRequest]) -> dict:
    """Calls, tokens and USD a run would spend (cache hits excluded), with each kind's typical reply length."""
    total = Counter()
    costs = {"cost_usd": 0.0, "batch_cost_usd": 0.0, "max_cost_usd": 0.0}
    for kind in dict.fromkeys(r.metadata["kind"] for r in requests):
        part = judge.estimate(
            [r for r in requests if r.metadata["kind"] == kind],
            completion_tokens=EXPECTED_COMPLETION_TOKENS[POSITIVE if kind == POSITIVE else "negative"],
        )
        total.update(
            requests=part.requests,
            cached=part.cached,
            calls=part.calls,
            prompt_tokens=part.prompt_tokens,
            completion_tokens=part.completion_tokens,
        )
        for name in costs:
            value = getattr(part, name)
            costs[name] = None if value is None or costs[name] is None else costs[name] + value
    return {"judge_model": judge.model, **dict(total), **costs}


@dataclass
class Generation:
    """A run's result: release-format rows, the rejected ones with their reasons, and the summary."""

    rows: list[dict]
    dropped: list[dict]
    summary: dict


def collect(results: list[JudgeResult], judge: Judge) -> Generation:
    """Parse and check every reply; keep valid rows in request order, count the rest by reason."""
    rows, dropped = [], []
    seen: dict[str, set[str]] = {}
    # every kind asked appears in the summary, even one with no row kept
    kept = Counter(dict.fromkeys((r.request.metadata["kind"] for r in results), 0))
    replies = Counter()
    errors = []
    for result in results:
        image_id, kind = result.request.metadata["image_id"], result.request.metadata["kind"]
        if result.text is None:
            if len(errors) < 3:
                errors.append(f"{image_id}/{kind}: {result.error}")
            continue
        items = parse_reply(result.text)
        if not items:
            replies["without_instructions"] += 1
            dropped.append(
                {"image_id": image_id, "kind": kind, "problem": NO_INSTRUCTIONS, "reply": result.text[:500]}
            )
            continue
        # a reply stopped by the token limit ends mid-item: its last item cannot be trusted
        truncated = judge.max_tokens is not None and result.completion_tokens >= judge.max_tokens
        for index, item in enumerate(items):
            row, reason = validate(item, kind)
            if truncated and index == len(items) - 1:
                row, reason = None, TRUNCATED
            if reason is None:
                key = instruction_key(row["question"])
                if key in seen.setdefault(image_id, set()):
                    reason = DUPLICATE
                else:
                    seen[image_id].add(key)
                    rows.append({"image_id": image_id, **row})
                    kept[kind] += 1
                    continue
            # `problem`: an item has a `reason` field of its own (a negative's explanation)
            dropped.append({"image_id": image_id, "kind": kind, "problem": reason, **item.__dict__})
    usage = judge.usage(results)
    summary = {
        "judge_model": judge.model,
        "requests": usage.requests,
        "calls": usage.paid_calls,
        "cached": usage.cached,
        "failed": usage.failed_calls,
        "errors": errors,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost_usd": usage.cost_usd,
        "total_prompt_tokens": usage.total_prompt_tokens,
        "total_completion_tokens": usage.total_completion_tokens,
        "total_cost_usd": usage.total_cost_usd,
        "replies_without_instructions": replies["without_instructions"],
        "rows_kept": len(rows),
        "rows_by_kind": dict(kept),
        "rows_by_task": dict(sorted(Counter(row["task"] for row in rows).items())),
        # kept under the name the model wrote: a reader sees at once how many rows fall outside the known tasks
        "unlisted_tasks": dict(
            sorted(
                Counter(r["task"] for r in rows if r["task"] not in KNOWN_TASKS and r["task"] != NEGATIVE_TASK).items()
            )
        ),
        "rows_dropped": sum(1 for d in dropped if d["problem"] != NO_INSTRUCTIONS),
        "dropped_by_reason": dict(
            sorted(Counter(d["problem"] for d in dropped if d["problem"] != NO_INSTRUCTIONS).items())
        ),
    }
    return Generation(rows, dropped, summary)


def generate(
    regions: dict[str, list[dict]], judge: Judge, config: GenerationConfig | None = None, progress: bool = True
) -> Generation:
    """Generate LRV instructions for every image of `regions` with `judge`.

    Args:
        regions (`dict[str, list[dict]]`): `{image_id: [{"caption", "bbox": [x, y, w, h]}]}`, e.g. from
            `select_images(...).regions` or `lrv_hf.data.load_regions`.
        judge (`Judge`): The chat client; its cache makes a rerun free for every call already answered.
        config (`GenerationConfig`, *optional*): Kinds and sending mode; defaults to the release's three kinds.
        progress (`bool`, *optional*, defaults to `True`): Show a progress bar.

    Returns:
        `Generation`: rows in the release format (`image_id`, `question`, `answer`, `task`), dropped items with their
        reasons, and the summary (calls, tokens, cost, rows kept and dropped by reason).
    """
    config = config or GenerationConfig()
    if config.max_images is not None:
        regions = dict(list(regions.items())[: config.max_images])
    requests = build_requests(regions, config.kinds)
    if config.batch:
        results = judge.run_batch(requests, poll_interval=config.poll_interval, progress=progress)
    else:
        results = judge.run(requests, progress=progress)
    generation = collect(results, judge)
    generation.summary = {"kinds": list(config.kinds), "images": len(regions), **generation.summary}
    return generation


def _write_atomic(path: Path, text: str):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a file, even if the run is killed while writing


def write_generation(generation: Generation, output_dir: str | Path) -> Path:
    """Write `instructions.json` (a release-format list), `dropped.jsonl` and `summary.json`; returns the first."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / OUTPUT_FILE
    _write_atomic(output, json.dumps(generation.rows, indent=1, ensure_ascii=False) + "\n")
    _write_atomic(
        output_dir / DROPPED_FILE, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in generation.dropped)
    )
    summary = {**generation.summary, "output": OUTPUT_FILE}
    _write_atomic(output_dir / SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return output


@dataclass
class GenerateResult:
    """What `generate_files` did: the images it chose, and the estimate (a dry run) or the generation and its file."""

    selection: ImageSelection
    plan: dict | None = None
    generation: Generation | None = None
    output: Path | None = None


def generate_files(
    regions_file: str | Path,
    images_dir: str | Path,
    judge: Judge,
    output_dir: str | Path,
    config: GenerationConfig | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> GenerateResult:
    """LRV data generation over files: dense captions + images folder -> `instructions.json`, `summary.json` and
    `dropped.jsonl` in `output_dir` (only images with a file and regions; a dry run only estimates and sends nothing).

    Args:
        regions_file (`str` or `Path`): LRV's `vg_annotation.json` or Visual Genome's `region_descriptions.json`.
        images_dir (`str` or `Path`): the folder of `<image_id>.jpg`; images without a file are skipped and counted.
        judge (`Judge`): the generating model's client, built by the caller (its cache makes a rerun free).
        config (`GenerationConfig`, *optional*): kinds, image limit and sending mode.
    """
    config = config or GenerationConfig()
    selection = select_images(regions_file, images_dir, max_images=config.max_images)
    if dry_run:
        return GenerateResult(selection, plan=estimate(judge, build_requests(selection.regions, config.kinds)))
    generation = generate(selection.regions, judge, config, progress=progress)
    generation.summary["images"] = selection.to_dict()
    return GenerateResult(selection, generation=generation, output=write_generation(generation, output_dir))
