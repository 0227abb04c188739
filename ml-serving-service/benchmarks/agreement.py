"""Before any timing: every server must give the same answers on the same inputs.

The held-out digits go to each model server twice, as one batch and one image per request
(batch 1 takes the small-batch kernels, a batch of 64 oneDNN). Answers are read in each
server's own format: `/v1/predict` returns labels and probabilities, `/invocations` (this
service's and `mlflow models serve`'s) the logits, turned here into labels and softmax
probabilities. Labels must be identical to the first server's and probabilities within
`TOLERANCE`; otherwise the benchmark stops, since a faster wrong answer measures nothing.
The constant endpoints do no inference and are not checked here.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import numpy as np
from digits_model import RegisteredModel
from wrk_load import Target

TOLERANCE = 1e-4


class AnswersDisagree(RuntimeError):
    """Two servers answered the same inputs differently."""


@dataclass(frozen=True)
class Answers:
    labels: list[str]
    probabilities: np.ndarray  # (N, classes)


def _read(target: Target, payload: dict[str, object], classes: list[str]) -> Answers:
    r = httpx.post(target.url, json=payload, timeout=60)
    if r.status_code != 200:
        raise AnswersDisagree(f"{target.label} answered {r.status_code}: {r.text[:300]}")
    body = r.json()
    if "probabilities" in body:  # /v1/predict
        return Answers(list(body["predictions"]), np.asarray(body["probabilities"], np.float64))
    logits = np.asarray(body["predictions"], np.float64)  # the MLflow scoring protocol
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return Answers(
        [classes[i] for i in logits.argmax(axis=1)], shifted / shifted.sum(axis=1, keepdims=True)
    )


def _answers(target: Target, model: RegisteredModel) -> tuple[Answers, Answers]:
    x = model.x_held_out
    batch = _read(target, {"instances": x.tolist()}, model.classes)
    singles = [_read(target, {"instances": x[i : i + 1].tolist()}, model.classes)
               for i in range(len(x))]  # fmt: skip
    single = Answers(
        [a.labels[0] for a in singles], np.concatenate([a.probabilities for a in singles])
    )
    return batch, single


def check_agreement(targets: list[Target], model: RegisteredModel) -> str:
    """Raise `AnswersDisagree` unless all `targets` agree; return a line for the report."""
    if not targets:
        return "answers: no model server measured, nothing to compare"
    n = len(model.x_held_out)
    reference: Answers | None = None
    worst = 0.0
    for target in targets:
        ways = ("one batch", "one per request")
        for answers, how in zip(_answers(target, model), ways, strict=True):
            if reference is None:
                reference, first = answers, f"{target.label} ({how})"
                continue
            differ = [i for i in range(n) if answers.labels[i] != reference.labels[i]]
            if differ:
                raise AnswersDisagree(
                    f"{target.label} ({how}) and {first} disagree on {len(differ)} of {n} "
                    f"digits, e.g. #{differ[0]}: {answers.labels[differ[0]]} vs "
                    f"{reference.labels[differ[0]]}"
                )
            gap = float(np.abs(answers.probabilities - reference.probabilities).max())
            if gap > TOLERANCE:
                raise AnswersDisagree(
                    f"{target.label} ({how}) and {first}: probabilities differ by {gap:.2e} "
                    f"(> {TOLERANCE:g})"
                )
            worst = max(worst, gap)
    assert reference is not None
    accuracy = np.mean([a == b for a, b in zip(reference.labels, model.y_held_out, strict=True)])
    return (
        f"Answers agree: {n} held-out digits sent to {', '.join(t.label for t in targets)}, "
        f"as one batch and one per request: identical labels, probabilities within "
        f"{worst:.1e} (limit {TOLERANCE:g}); accuracy on them {accuracy:.3f}. "
        f"The constant endpoints do no inference and are not compared."
    )
