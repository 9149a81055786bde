"""GAVIE: GPT4-Assisted Visual Instruction Evaluation, the hallucination metric of LRV-Instruction.

A thin `evaluate` wrapper over `lrv_hf.gavie`: `evaluate.load("metrics/gavie")` from a checkout of lrv-hf.
"""

import math

import datasets
import evaluate

from lrv_hf import CITATION as _CITATION
from lrv_hf.gavie import estimate, score, write_outputs
from lrv_hf.gavie.score import Prediction
from lrv_hf.judge import Judge


_DESCRIPTION = """\
GAVIE scores a vision-language model's answers for hallucination without human-written references: a text-only judge
LLM (GPT-4 in the paper) reads the image's dense captions with their boxes, the instruction and the answer, and scores
the answer 0-10 for accuracy (does it agree with the image content, or does it hallucinate?) and relevancy (does it
follow the instruction?). The judge is any OpenAI-compatible chat endpoint (OpenAI, Azure OpenAI, vLLM,
`transformers serve`); replies are cached in SQLite, failed or unreadable replies are re-asked and then left
unscored (reported as coverage, never averaged in as 0), and `dry_run=True` estimates the cost without calling.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the model's answers.
    questions (`list` of `str`): the instruction each answer replies to.
    regions (`list` of `list` of `dict`): per answer, the image's dense captions `{"caption": str, "bbox": [x, y, w,
        h]}` (what `lrv_hf.data.load_regions` returns for its image).
    judge_model (`str`, *optional*, defaults to `"gpt-4o"`): the judge model (Azure: the deployment name).
    base_url (`str`, *optional*): an OpenAI-compatible endpoint; defaults to OpenAI's.
    api_key_env (`str`, *optional*, defaults to `"OPENAI_API_KEY"`): the environment variable holding the key.
    cache_path (`str`, *optional*): SQLite reply cache; reruns and resumed runs pay for nothing twice.
    concurrency (`int`, *optional*, defaults to `16`): judge calls in flight.
    answers_per_prompt (`int`, *optional*, defaults to `1`): answers to the same question (from several `models`)
        judged in one prompt, as in the paper.
    legacy_prompt (`bool`, *optional*, defaults to `False`): the released prompt byte for byte (it prints each box's
        width as its height); the default prints the real height.
    judge_samples (`int`, *optional*, defaults to `1`): draws per prompt; each answer gets the median.
    max_reasks (`int`, *optional*, defaults to `2`): re-asks of a reply that cannot be read.
    models (`list` of `str`, *optional*): which model wrote each answer (for packing and per-model figures).
    image_ids (`list` of `str`, *optional*): the image of each answer (defaults to one id per distinct regions list).
    output_dir (`str`, *optional*): also write summary.json, scores.jsonl and report.md there.
    dry_run (`bool`, *optional*, defaults to `False`): estimate the calls, tokens and cost; call nothing.

Returns:
    accuracy (`float`), relevancy (`float`): mean 0-10 scores over the scored answers (NaN when none was scored).
    accuracy_ci_low, accuracy_ci_high, relevancy_ci_low, relevancy_ci_high (`float`): 95% bootstrap interval.
    coverage (`float`): scored / total. n (`int`), n_scored (`int`).
    With `dry_run=True` instead: calls (`int`), cached (`int`), prompt_tokens (`int`), completion_tokens (`int`),
    cost_usd (`float`, NaN when the judge model has no known price).

Examples:
    >>> gavie = evaluate.load("metrics/gavie")
    >>> regions = [[{"caption": "a black dog lying on grass", "bbox": [12, 40, 210, 130]},
    ...             {"caption": "a red frisbee", "bbox": [250, 160, 60, 24]}]]
    >>> results = gavie.compute(predictions=["A dog rests on the grass next to a red frisbee."],
    ...                         questions=["Describe the image."], regions=regions, judge_model="gpt-4o", dry_run=True)
    >>> print(results)
    {'calls': 1, 'cached': 0, 'prompt_tokens': 214, 'completion_tokens': 90, 'cost_usd': 0.001435}
"""


def _nan(value) -> float:
    return math.nan if value is None else float(value)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Gavie(evaluate.Metric):
    def _info(self):
        region = {"caption": datasets.Value("string"), "bbox": datasets.List(datasets.Value("float64"))}
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "questions": datasets.Value("string"),
                    "regions": datasets.List(region),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2306.14565", "https://github.com/FuxiaoLiu/LRV-Instruction"],
        )

    def _compute(
        self,
        predictions,
        questions,
        regions,
        judge_model="gpt-4o",
        base_url=None,
        api_key_env="OPENAI_API_KEY",
        cache_path=None,
        concurrency=16,
        answers_per_prompt=1,
        legacy_prompt=False,
        judge_samples=1,
        max_reasks=2,
        models=None,
        image_ids=None,
        output_dir=None,
        dry_run=False,
    ):
        for name, values in (("models", models), ("image_ids", image_ids)):
            if values is not None and len(values) != len(predictions):
                raise ValueError(
                    f"`{name}` must hold one entry per prediction ({len(predictions)}), got {len(values)}"
                )
        if image_ids is None:  # answers about the same image share its regions list
            signatures = {}
            ids = [signatures.setdefault(repr(boxes), f"image{len(signatures)}") for boxes in regions]
        else:
            ids = [str(image_id) for image_id in image_ids]
        table = dict(zip(ids, regions))
        rows = [
            Prediction(i, ids[i], questions[i], predictions[i], models[i] if models is not None else None)
            for i in range(len(predictions))
        ]
        judge = Judge(judge_model, base_url=base_url, api_key_env=api_key_env, cache_path=cache_path,
                      concurrency=concurrency)  # fmt: skip
        common = {"answers_per_prompt": answers_per_prompt, "legacy_prompt": legacy_prompt,
                  "judge_samples": judge_samples}  # fmt: skip
        if dry_run:
            guess = estimate(rows, table, judge, **common)
            return {
                "calls": guess.calls,
                "cached": guess.cached,
                "prompt_tokens": guess.prompt_tokens,
                "completion_tokens": guess.completion_tokens,
                "cost_usd": _nan(guess.cost_usd),
            }
        run = score(rows, table, judge, max_reasks=max_reasks, progress=False, **common)
        summary = run.summary()
        if output_dir is not None:
            write_outputs(output_dir, run.rows, summary)
        result = {"accuracy": _nan(summary["accuracy"]), "relevancy": _nan(summary["relevancy"])}
        for criterion in ("accuracy", "relevancy"):
            low, high = summary[f"{criterion}_ci95"] or (None, None)
            result[f"{criterion}_ci_low"], result[f"{criterion}_ci_high"] = _nan(low), _nan(high)
        result.update(coverage=float(summary["coverage"]), n=summary["n"], n_scored=summary["n_scored"])
        return result
