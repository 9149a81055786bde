"""The POPE metric as a Space: paste yes/no answers with their references and read accuracy, F1 and the yes-ratio.

`python metrics/pope/app.py` serves it locally (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured).
"""

import json
from pathlib import Path

import evaluate
import gradio as gr


FIELDS = ("prediction", "reference")
EXAMPLE = "\n".join(
    json.dumps(dict(zip(FIELDS, row)))
    for row in [
        ("Yes, there is a dog.", "yes"),
        ("No.", "no"),
        ("There is no cat in the image.", "yes"),
        ("I cannot tell.", "no"),
    ]  # fmt: skip
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

    def score(text: str, unknown_as: str) -> str:
        columns = read_rows(text)
        try:
            result = metric.compute(predictions=columns["prediction"], references=columns["reference"],
                                    unknown_as=unknown_as)  # fmt: skip
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return json.dumps(result, indent=1)

    with gr.Blocks(title="POPE") as app:
        gr.Markdown("# POPE\nOne JSON object per line: `prediction` (the model's answer) and `reference` (yes/no). "
                    "Answers are read with POPE's rule; the yes-ratio is that of the model's answers.")  # fmt: skip
        rows = gr.Textbox(EXAMPLE, lines=8, label="answers (JSON lines)", elem_id="rows")
        unknown_as = gr.Radio(["yes", "wrong", "exclude"], value="yes", elem_id="unknown-as",
                              label="answers with neither yes nor a negation count as")  # fmt: skip
        button = gr.Button("Score", variant="primary", elem_id="score")
        result = gr.Code(language="json", label="scores", elem_id="result")
        button.click(score, [rows, unknown_as], result)
    return app


if __name__ == "__main__":
    build_app().launch()
