"""lrv-hf: LRV-Instruction (robust visual instruction tuning against hallucination) for the Hugging Face ecosystem.

Data (`lrv_hf.data`), the GAVIE metric (`lrv_hf.gavie`) over one judge client (`lrv_hf.judge`), LoRA recipes
(`lrv_hf.train`), inference (`lrv_hf.infer`) and the demo Space share this package; `lrv-hf` is its command line.
"""

from .citation import CITATION
from .errors import InputError


__version__ = "0.1.0"

__all__ = ["CITATION", "InputError", "__version__"]
