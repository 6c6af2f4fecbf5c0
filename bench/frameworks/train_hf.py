"""A real Hugging Face Trainer run: a tiny GPT-2 built from a config (no download)."""

from __future__ import annotations

import argparse
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments
from truth import finish, recorder


class _Pace(TrainerCallback):  # type: ignore[misc]
    """Makes each optimizer step take about ``step_s``, as a GPU step would."""

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self._begun = 0.0
        self._record = recorder()

    def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self._begun = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(max(0.0, self.step_s - (time.perf_counter() - self._begun)))
        self._record(state.global_step)


class _EvalPace(TrainerCallback):  # type: ignore[misc]
    """Makes each eval batch take about ``batch_s``: evals a real share of the run."""

    def __init__(self, batch_s: float) -> None:
        self.batch_s = batch_s

    def on_prediction_step(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(self.batch_s)


class _Tokens(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int, length: int, vocab: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocab, (n, length), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--step-ms", type=float, default=60.0)
    parser.add_argument("--accum", type=int, default=2)
    parser.add_argument("--out", default="hf-out")
    parser.add_argument("--callback", action="store_true", help="add probecast's callback")
    parser.add_argument("--eval-steps", type=int, default=0, help="evaluate every N steps")
    parser.add_argument("--eval-batches", type=int, default=10)
    parser.add_argument("--eval-batch-ms", type=float, default=100.0)
    args = parser.parse_args()
    torch.manual_seed(0)
    # A steady pace, as on a GPU: tiny gradients would turn into slow denormal floats on
    # the CPU, and a second thread only fights the reporter and the bot for 2 cores.
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    config = GPT2Config(vocab_size=128, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config)
    callbacks: list[TrainerCallback] = [_Pace(args.step_ms / 1000)]
    evals = args.eval_steps > 0
    if evals:
        callbacks.append(_EvalPace(args.eval_batch_ms / 1000))
    if args.callback:
        from reporter.callbacks.hf import ProbecastCallback

        callbacks.append(ProbecastCallback())
    training = TrainingArguments(
        output_dir=args.out,
        max_steps=args.max_steps,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=args.accum,
        logging_steps=10,
        save_strategy="no",
        eval_strategy="steps" if evals else "no",
        eval_steps=args.eval_steps if evals else None,
        per_device_eval_batch_size=4,
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    Trainer(
        model=model,
        args=training,
        train_dataset=_Tokens(512, 32, 128),
        eval_dataset=_Tokens(4 * args.eval_batches, 32, 128) if evals else None,
        callbacks=callbacks,
    ).train()
    finish()


if __name__ == "__main__":
    main()
