"""The MME metric as a Space: paste answers as JSON lines and read the MME scores (perception, cognition, per category).

`python metrics/mme/app.py` serves it locally (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured).
"""

import json
from pathlib import Path

import evaluate
import gradio as gr


FIELDS = ("prediction", "reference", "question_id", "category")
EXAMPLE = "\n".join(
    json.dumps(dict(zip(FIELDS, row)))
    for row in [
        ("Yes, there is a dog.", "Yes", "existence/1.jpg", "existence"),
        ("No", "No", "existence/1.jpg", "existence"),
        ("yes", "Yes", "existence/2.jpg", "existence"),
        ("I cannot tell", "No", "existence/2.jpg", "existence"),
        ("No.", "No", "count/3.jpg", "count"),
    ]
)


def read_rows(text: str, fields=FIELDS) -> dict[str, list[str]]:
    """One JSON object per line -> one list per field; a bad line is a one-line error naming it."""
    columns = {field: [] for field in fields}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise gr.Error(f"line {number}: invalid JSON ({err.msg})") from None
        for field in fields:
            if not isinstance(row, dict) or not isinstance(row.get(field), str):
                raise gr.Error(f"line {number}: field `{field}` is missing or not a string")
            columns[field].append(row[field])
    if not columns[fields[0]]:
        raise gr.Error("no rows: paste one JSON object per line")
    return columns


def build_app(metric=None) -> gr.Blocks:
    metric = metric or evaluate.load(str(Path(__file__).parent))

    def score(text: str) -> str:
        columns = read_rows(text)
        try:
            result = metric.compute(predictions=columns["prediction"], references=columns["reference"],
                                    question_ids=columns["question_id"], categories=columns["category"])  # fmt: skip
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return json.dumps(result, indent=1)

    with gr.Blocks(title="MME") as app:
        gr.Markdown("# MME\nOne JSON object per line: `prediction`, `reference` (Yes/No), `question_id` (the image, "
                    "shared by its two questions), `category`. Scored as MME's `calculation.py`.")  # fmt: skip
        rows = gr.Textbox(EXAMPLE, lines=10, label="answers (JSON lines)", elem_id="rows")
        button = gr.Button("Score", variant="primary", elem_id="score")
        result = gr.Code(language="json", label="scores", elem_id="result")
        button.click(score, rows, result)
    return app


if __name__ == "__main__":
    build_app().launch()
