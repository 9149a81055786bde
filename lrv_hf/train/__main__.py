"""`python -m lrv_hf.train`: the same flags as `lrv-hf train`, the entry point `accelerate launch -m` runs.

Example: `accelerate launch --config_file lrv_hf/recipes/accelerate/ddp-8xv100-fp16.yaml -m lrv_hf.train --recipe llava-1.5-7b/lora-v100`
"""

import sys

from .cli import main


if __name__ == "__main__":
    sys.exit(main())
