"""POPE: object-hallucination probing of vision-language models with yes/no "Is there a <object>?" questions.

A thin `evaluate` wrapper over `lrv_hf.pope`: `evaluate.load("metrics/pope")` from a checkout of lrv-hf.
"""

import datasets
import evaluate

from lrv_hf.pope import compute_metrics


_CITATION = """\
@inproceedings{li2023pope,
  title={Evaluating Object Hallucination in Large Vision-Language Models},
  author={Li, Yifan and Du, Yifan and Zhou, Kun and Wang, Jinpeng and Zhao, Wayne Xin and Wen, Ji-Rong},
  booktitle={Proceedings of the 2023 Conference on Empirical Methods in Natural Language Processing},
  year={2023},
  url={https://arxiv.org/abs/2305.10355}
}
"""

_DESCRIPTION = """\
POPE (Polling-based Object Probing Evaluation) asks a vision-language model yes/no questions "Is there a <object> in
the image?" about objects that are in the image (reference "yes") and objects that are not (reference "no", sampled
at random, among the most frequent objects, or among the objects that most often co-occur with the image's). Each
free-form answer is read as yes/no with POPE's rule: in its first sentence, a word "No", "no" or "not" means "no",
anything else "yes". The metric reports accuracy, precision, recall and F1 with "yes" as the positive class, and the
yes-ratio (the share of the model's answers read as "yes", as POPE's evaluate.py computes it, not the labels'
share; a well-calibrated model on a balanced set is near 0.5).

Answers that hold neither "yes" nor a negation (empty, "I cannot tell", "There is a dog") are counted as `unknown`.
POPE reads them as "yes"; `unknown_as` chooses whether they count as "yes" (default, comparable with published POPE
numbers), as wrong, or are excluded. `lrv-hf pope score` scores POPE's own files and lmms-lab/POPE per split;
`lrv-hf pope build` builds probe sets from object annotations.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the model's free-form answers.
    references (`list` of `str`): "yes" or "no" per answer (case and surrounding spaces are ignored).
    unknown_as (`str`, *optional*, defaults to `"yes"`): how an answer with neither "yes" nor a negation is scored:
        `"yes"` as POPE does, `"wrong"` as the opposite of its reference, or `"exclude"` (left out, `n` included).

Returns:
    accuracy (`float`), precision (`float`), recall (`float`), f1 (`float`): "yes" is the positive class; 0.0 when
        a ratio is undefined (e.g. precision when nothing is read as "yes").
    yes_ratio (`float`): the share of scored answers read as "yes".
    n (`int`): answers scored. unknown (`int`): answers with neither "yes" nor a negation, scored or not.
    tp, fp, tn, fn (`int`): the confusion counts.

Examples:
    >>> pope = evaluate.load("metrics/pope")
    >>> answers = ["Yes, there is a dog.", "No.", "There is no cat in the image.", "I cannot tell."]
    >>> results = pope.compute(predictions=answers, references=["yes", "no", "yes", "no"])
    >>> print({k: round(v, 3) for k, v in results.items()})
    {'accuracy': 0.5, 'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'yes_ratio': 0.5, 'n': 4, 'unknown': 1, 'tp': 1, 'fp': 1, 'tn': 1, 'fn': 1}

    Leaving out the answer that says neither yes nor no:

    >>> results = pope.compute(predictions=answers, references=["yes", "no", "yes", "no"], unknown_as="exclude")
    >>> print({k: round(v, 3) for k, v in results.items()})
    {'accuracy': 0.667, 'precision': 1.0, 'recall': 0.5, 'f1': 0.667, 'yes_ratio': 0.333, 'n': 3, 'unknown': 1, 'tp': 1, 'fp': 0, 'tn': 1, 'fn': 1}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Pope(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://arxiv.org/abs/2305.10355", "https://github.com/RUCAIBox/POPE"],
        )

    def _compute(self, predictions, references, unknown_as="yes"):
        return compute_metrics(list(predictions), list(references), unknown_as=unknown_as)
