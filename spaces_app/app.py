"""The LRV-Instruction Space: the base model's and the LRV adapter's answers side by side, streamed.

Set the Space's variables `LRV_BASE_MODEL` (REPO_ID@REVISION) and `LRV_ADAPTERS` (allowlist, REPO_ID@REVISION, ...).
"""

from lrv_hf.demo.app import LAUNCH_KWARGS, build_app, comparison_from_env


demo = build_app(comparison_from_env())

if __name__ == "__main__":
    demo.launch(**LAUNCH_KWARGS)
