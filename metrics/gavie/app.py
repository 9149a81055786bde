"""The GAVIE metric as a Space: one instruction, the image's dense captions and answers, judged by an LLM endpoint.

`python metrics/gavie/app.py` serves it locally (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured). The judge
key comes from the environment variable named in the form (a Space secret), never from the page.
"""

import json
from pathlib import Path

import evaluate
import gradio as gr


REGIONS = [{"caption": "a black dog lying on grass", "bbox": [12, 40, 210, 130]},
           {"caption": "a red frisbee", "bbox": [250, 160, 60, 24]}]  # fmt: skip


def read_regions(text: str) -> list[dict]:
    try:
        regions = json.loads(text)
    except json.JSONDecodeError as err:
        raise gr.Error(f"dense captions: invalid JSON ({err.msg})") from None
    if not isinstance(regions, list) or not all(
        isinstance(r, dict) and isinstance(r.get("caption"), str) and isinstance(r.get("bbox"), list) for r in regions
    ):
        raise gr.Error('dense captions: expected a list of {"caption": str, "bbox": [x, y, w, h]}')
    return regions


def build_app(metric=None) -> gr.Blocks:
    metric = metric or evaluate.load(str(Path(__file__).parent))

    def run(question, answers, regions, judge_model, base_url, api_key_env, dry_run):
        answers = [a.strip() for a in answers.splitlines() if a.strip()]
        if not question.strip() or not answers:
            raise gr.Error("give an instruction and at least one answer (one per line)")
        boxes = read_regions(regions)
        try:
            result = metric.compute(predictions=answers, questions=[question] * len(answers),
                                    regions=[boxes] * len(answers), judge_model=judge_model,
                                    base_url=base_url.strip() or None, api_key_env=api_key_env.strip() or None,
                                    dry_run=dry_run)  # fmt: skip
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return json.dumps(result, indent=1)

    with gr.Blocks(title="GAVIE") as app:
        gr.Markdown("# GAVIE\nA judge LLM scores each answer 0-10 for accuracy (against the dense captions) and "
                    "relevancy (to the instruction). *Estimate* counts calls, tokens and cost without calling.")  # fmt: skip
        question = gr.Textbox("Describe the image.", label="instruction", elem_id="question")
        answers = gr.Textbox("A dog rests on the grass next to a red frisbee.", lines=3, elem_id="answers",
                             label="answers, one per line")  # fmt: skip
        regions = gr.Code(json.dumps(REGIONS, indent=1), language="json", label="dense captions", elem_id="regions")
        with gr.Row():
            judge_model = gr.Textbox("gpt-4o", label="judge model", elem_id="judge-model")
            base_url = gr.Textbox("", label="endpoint (empty: OpenAI)", elem_id="base-url")
            api_key_env = gr.Textbox("OPENAI_API_KEY", label="key variable (empty: none)", elem_id="api-key-env")
        with gr.Row():
            estimate = gr.Button("Estimate", elem_id="estimate")
            score = gr.Button("Score", variant="primary", elem_id="score")
        result = gr.Code(language="json", label="result", elem_id="result")
        inputs = [question, answers, regions, judge_model, base_url, api_key_env]
        estimate.click(lambda *values: run(*values, True), inputs, result)
        score.click(lambda *values: run(*values, False), inputs, result)
    return app


if __name__ == "__main__":
    build_app().launch()
