"""The `datasets.Features` of LRV-Instruction as published: one row per image, its instructions as lists.

LRV has about nine instructions per image; one row per image stores each image once (see BENCHMARKS.md for the
size against the raw release), and `lrv_hf.data.views` derives the per-instruction and chat views from it.
"""

from datasets import Features, Image, List, Value


REGION = {"caption": Value("string"), "bbox": List(Value("int32"), length=4)}

FEATURES = Features(
    {
        "image": Image(),
        "image_id": Value("string"),
        "question": List(Value("string")),
        "answer": List(Value("string")),
        "task": List(Value("string")),
        "polarity": List(Value("string")),
        "source": List(Value("string")),
        # the July-2023 evaluation set's `answer_gt`: a reference for scoring, null elsewhere; never trained on
        "reference_answer": List(Value("string")),
        "regions": List(REGION),
    }
)

# one row per instruction: what `views.instruction_view` returns
INSTRUCTION_FEATURES = Features(
    {
        "image": Image(),
        "image_id": Value("string"),
        "question": Value("string"),
        "answer": Value("string"),
        "task": Value("string"),
        "polarity": Value("string"),
        "source": Value("string"),
        "reference_answer": Value("string"),
        "regions": List(REGION),
    }
)

INSTRUCTION_FIELDS = ("question", "answer", "task", "polarity", "source", "reference_answer")
