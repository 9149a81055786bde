"""MME: yes/no perception and cognition benchmark for multimodal LLMs, scored as the authors' calculation.py.

A thin `evaluate` wrapper over `lrv_hf.mme`: `evaluate.load("metrics/mme")` from a checkout of lrv-hf.
"""

import math

import datasets
import evaluate

from lrv_hf.mme import COGNITION, PERCEPTION, score_answers


_CITATION = """\
@article{fu2023mme,
  title={MME: A Comprehensive Evaluation Benchmark for Multimodal Large Language Models},
  author={Fu, Chaoyou and Chen, Peixian and Shen, Yunhang and Qin, Yulei and Zhang, Mengdan and Lin, Xu and Yang,
          Jinrui and Zheng, Xiawu and Li, Ke and Sun, Xing and Wu, Yunsheng and Ji, Rongrong},
  journal={arXiv preprint arXiv:2306.13394},
  year={2023}
}
"""

_DESCRIPTION = """\
MME asks two yes/no questions about each image, in 10 perception categories (existence, count, position, color,
posters, celebrity, scene, landmark, artwork, OCR) and 4 cognition categories (commonsense_reasoning,
numerical_calculation, text_translation, code_reasoning). An answer reads "yes" or "no" by the rule of MME's
`eval_tool/calculation.py` ("yes"/"no" as is, else "yes" then "no" searched in its first four characters, else
"other", which is wrong). Per category, acc is the share of questions answered right and acc+ the share of images
with both questions right; the category score is (acc + acc+) x 100 (max 200). Perception sums its 10 categories
(max 2000), cognition its 4 (max 800). An image with only one answered question is missing: left out and counted.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the model's answers.
    references (`list` of `str`): "Yes" or "No" per answer.
    question_ids (`list` of `str`): the image each question is about (MME's `question_id`, e.g.
        `"count/000000006040.jpg"`); an image's two questions share it.
    categories (`list` of `str`): the MME category of each question.

Returns:
    perception (`float`): the sum of the perception categories' scores (NaN when none is present).
    cognition (`float`): the sum of the cognition categories' scores (NaN when none is present).
    one key per category present (`float`): its score, acc + acc+ (x100); NaN when all its images are missing.
    other_answers (`int`): answers read as neither yes nor no (scored as wrong).
    missing_images (`int`): images with a single answered question, left out.

Examples:
    >>> mme = evaluate.load("metrics/mme")
    >>> results = mme.compute(
    ...     predictions=["Yes, there is a dog.", "No", "yes", "I cannot tell", "No."],
    ...     references=["Yes", "No", "Yes", "No", "No"],
    ...     question_ids=["existence/1.jpg", "existence/1.jpg", "existence/2.jpg", "existence/2.jpg", "count/3.jpg"],
    ...     categories=["existence", "existence", "existence", "existence", "count"],
    ... )
    >>> print(results)
    {'perception': 125.0, 'cognition': nan, 'existence': 125.0, 'count': nan, 'other_answers': 1, 'missing_images': 1}
"""


def _nan(value) -> float:
    return math.nan if value is None else float(value)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Mme(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                    "question_ids": datasets.Value("string"),
                    "categories": datasets.Value("string"),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2306.13394", "https://huggingface.co/datasets/lmms-lab/MME"],
        )

    def _compute(self, predictions, references, question_ids, categories):
        figures = score_answers(list(predictions), list(references), list(question_ids), list(categories))
        result = {"perception": _nan(figures["perception"]), "cognition": _nan(figures["cognition"])}
        known = [c for c in PERCEPTION + COGNITION if c in figures["categories"]]
        for category in known + sorted(set(figures["categories"]) - set(known)):
            result[category] = _nan(figures["categories"][category]["score"])
        result.update(other_answers=figures["other_answers"], missing_images=figures["missing_images"])
        return result
