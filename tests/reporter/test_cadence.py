"""The eval and save cadence the callbacks read from a framework's settings, over
stand-ins shaped like HF's TrainingArguments/TrainerState and a Lightning Trainer."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from reporter.callbacks.cadence import Cadence, hf_cadence, lightning_cadence
from reporter.wire import ConfigFamily, RunRegistration


def hf(**args: Any) -> tuple[SimpleNamespace, SimpleNamespace]:
    state = SimpleNamespace(max_steps=args.pop("max_steps", 1_000), num_train_epochs=4)
    defaults = {"eval_strategy": "no", "eval_steps": None, "logging_steps": 10,
                "save_strategy": "no", "save_steps": 500, "num_train_epochs": 4}  # fmt: skip
    return SimpleNamespace(**{**defaults, **args}), state


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, Cadence()),
        ({"eval_strategy": "steps", "eval_steps": 200}, Cadence(200, False)),
        ({"eval_strategy": "steps", "eval_steps": 0.1}, Cadence(100, False)),  # a share
        ({"eval_strategy": "steps"}, Cadence(10, False)),  # falls back to logging_steps
        ({"eval_strategy": "epoch"}, Cadence(250, False)),  # 1,000 steps over 4 epochs
        ({"save_strategy": "steps"}, Cadence(save_every=500, final_save=True)),
        ({"save_strategy": "epoch"}, Cadence(save_every=250)),
    ],
)
def test_hf_cadence(args: dict[str, Any], expected: Cadence) -> None:
    found = hf_cadence(*hf(**args))
    assert replace(found, steps_per_epoch=None) == expected
    assert found.steps_per_epoch == 250  # 1,000 steps over 4 epochs


def lightning(**attrs: Any) -> SimpleNamespace:
    defaults = {"enable_validation": True, "val_check_interval": 1.0,
                "check_val_every_n_epoch": 1, "num_training_batches": 400,
                "accumulate_grad_batches": 2, "checkpoint_callback": None}  # fmt: skip
    return SimpleNamespace(**{**defaults, **attrs})


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        # the usual once-per-epoch validation: 400 batches / 2 accumulated = 200 steps
        ({}, Cadence(200, True)),
        ({"check_val_every_n_epoch": 3}, Cadence(600, True)),
        ({"val_check_interval": 0.25}, Cadence(50, False)),
        ({"val_check_interval": 100}, Cadence(50, False)),  # batches, not steps
        ({"enable_validation": False}, Cadence()),
        ({"num_training_batches": float("inf")}, Cadence()),  # an iterable of no length
        (
            {"checkpoint_callback": SimpleNamespace(_every_n_train_steps=0, _every_n_epochs=1)},
            Cadence(200, True, save_every=200),
        ),
        (
            {"checkpoint_callback": SimpleNamespace(_every_n_train_steps=300, _every_n_epochs=0)},
            Cadence(200, True, save_every=300),
        ),
    ],
)
def test_lightning_cadence(attrs: dict[str, Any], expected: Cadence) -> None:
    found = lightning_cadence(lightning(**attrs))
    assert replace(found, steps_per_epoch=None) == expected
    infinite = attrs.get("num_training_batches") == float("inf")
    assert found.steps_per_epoch == (None if infinite else 200)


def test_unset_cadence_fields_stay_off_the_wire() -> None:
    # An older, strict bot refuses unknown fields: a registration without them is as before.
    plain = RunRegistration(name="r", target_steps=10).model_dump(mode="json")
    assert plain["config"] == {"batch_size": None, "grad_accum": None, "precision": None}
    family = ConfigFamily(final_eval=True, save_every=50)
    sent = RunRegistration(name="r", target_steps=10, config=family).model_dump(mode="json")
    assert sent["config"]["final_eval"] is True and sent["config"]["save_every"] == 50
    assert "final_save" not in sent["config"]
    assert RunRegistration.model_validate(sent).config == family
