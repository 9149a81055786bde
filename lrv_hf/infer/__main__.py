"""`python -m lrv_hf.infer` and `accelerate launch -m lrv_hf.infer`: the `lrv-hf infer` flags without the front.

Example: `accelerate launch -m lrv_hf.infer --model M --data built/ --config evaluation --output preds.jsonl`
"""

import sys

from .cli import main


sys.exit(main())
