"""The BibTeX entry of the LRV-Instruction paper, in the one place every card, metric and builder takes it from.

Liu et al., "Mitigating Hallucination in Large Multi-Modal Models via Robust Instruction Tuning", ICLR 2024.
"""

CITATION = """\
@inproceedings{liu2023mitigating,
  title={Mitigating Hallucination in Large Multi-Modal Models via Robust Instruction Tuning},
  author={Liu, Fuxiao and Lin, Kevin and Li, Linjie and Wang, Jianfeng and Yacoob, Yaser and Wang, Lijuan},
  booktitle={The Twelfth International Conference on Learning Representations},
  year={2024},
  url={https://arxiv.org/abs/2306.14565}
}
"""
