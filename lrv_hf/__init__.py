"""lrv-hf: LRV-Instruction (robust visual instruction tuning against hallucination) for the Hugging Face ecosystem.

Data (`lrv_hf.data`), the GAVIE metric (`lrv_hf.gavie`) over one judge client (`lrv_hf.judge`), LoRA recipes
(`lrv_hf.train`), inference (`lrv_hf.infer`) and the demo Space share this package; `lrv-hf` is its command line.
"""

from .errors import InputError


__version__ = "0.1.0"

CITATION = """\
@inproceedings{liu2023mitigating,
  title={Mitigating Hallucination in Large Multi-Modal Models via Robust Instruction Tuning},
  author={Liu, Fuxiao and Lin, Kevin and Li, Linjie and Wang, Jianfeng and Yacoob, Yaser and Wang, Lijuan},
  booktitle={The Twelfth International Conference on Learning Representations},
  year={2024},
  url={https://arxiv.org/abs/2306.14565}
}
"""  # the one BibTeX of LRV-Instruction: the dataset card, model cards and metric cards all use this string

__all__ = ["CITATION", "InputError", "__version__"]
