"""MME (Fu et al., 2023): yes/no perception and cognition benchmark, scored as the authors' calculation.py.

Read the benchmark from the Hub's Parquet or the original release folders, join predictions, write the report.
"""

from .data import COGNITION, PERCEPTION, open_image, read_mme
from .scoring import MMEResult, mme_label, score_answers, score_mme


__all__ = ["COGNITION", "MMEResult", "PERCEPTION", "mme_label", "open_image", "read_mme", "score_answers", "score_mme"]
