"""Named readers for formats the generic reader cannot learn from a line's numbers alone.

- `Keras`: the epoch is on a line of its own (``Epoch 3/50``) above the batch bar.
- `Ultralytics`: a YOLO training bar whose columns (losses, instances) have no names.
- `HFDicts`: Hugging Face Trainer ``{'loss': …, 'epoch': 0.29}`` lines with no bar and no
  step (LLaMA-Factory's running log, a Trainer whose tqdm is off); the step comes from
  the epoch and what the Trainer printed before training (``Num Epochs``, ``Total
  optimization steps``), else from counting the lines.
- `SB3Tables`: stable-baselines3's ``verbose=1`` tables (``|    total_timesteps | 4096 |``),
  one per rollout or log interval, timed by their ``time_elapsed``.
"""

from __future__ import annotations

import math
import re

from reporter.logread.base import NUM, Format, Progress, WallClock, iso_stamp_us, number

#: The Hugging Face Trainer prints this each time ``train()`` starts: a new launch.
RELAUNCH = "***** Running training *****"


def _seconds(text: str) -> float | None:
    """Seconds of ``59.9s``, ``1:04`` or ``1:02:03``."""
    if text.endswith("s"):
        return number(text[:-1])
    parts = text.split(":")
    if not 2 <= len(parts) <= 3 or not all(p.replace(".", "", 1).isdigit() for p in parts):
        return None
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds


class Keras(Format):
    """``Epoch 3/50`` then ``120/285 [=====>....] - ETA: 5s - loss: 0.61 - acc: 0.80``.

    The step is (epoch - 1) x batches per epoch + batch and the total epochs x batches.
    The clock sums the epoch durations printed at each epoch's end (``- 6s 22ms/step``),
    so only epoch-end rows carry a time; their ``val_loss`` is an eval row.
    """

    name = "keras"
    _EPOCH = re.compile(r"Epoch (\d{1,6})/(\d{1,6})\s*$")
    _BAR = re.compile(
        r"\s{0,12}(\d{1,9})/(\d{1,9}) (?:\[[=>.]{1,200}\]|[━─╸╺]{1,200}) {1,4}"
        r"(?:- )?(?:ETA: \S{1,12}|(\d{1,7})(m?s) \S{1,16}/step|\S{1,12} \S{1,16}/step)(.{0,2000})"
    )
    _LOSS = re.compile(r"(?<![\w])(val_)?loss: (" + NUM + ")")
    _PER_STEP = re.compile(r" (" + NUM + r")(m?s)/step")
    # ``verbose=2``: one line per epoch, no bar (``313/313 - 45s - loss: …``; Keras 1.x:
    # ``83s - loss: …``, the batches not printed: the epochs count the steps).
    _SUMMARY = re.compile(
        r"\s{0,12}(?:(\d{1,9})/(\d{1,9}) - )?(\d{1,7})(m?s)(?: \S{1,16}/step)? - (.{0,2000})"
    )

    def __init__(self) -> None:
        self._epoch: int | None = None
        self._epochs: int | None = None
        self._clock_s = 0.0
        self._last_step = -1
        self._launch = 0

    def rows(self, line: str) -> list[Progress]:
        if "Epoch " in line:
            m = self._EPOCH.search(line)
            if m is not None:
                epoch = int(m[1])
                if self._epoch is not None and epoch < self._epoch:
                    self._launch += 1  # another model.fit (or another run) in the same log
                    self._clock_s, self._last_step = 0.0, -1
                self._epoch, self._epochs = epoch, int(m[2])
            return []
        if self._epoch is not None and "s - " in line[:40] and "loss: " in line:
            summary = self._SUMMARY.match(line)
            if summary is not None:
                return self._epoch_summary(summary)
        if "/" not in line[:24]:
            return []
        m = self._BAR.match(line.lstrip("\x08"))
        if m is None or self._epoch is None:
            return []
        batch, batches = int(m[1]), int(m[2])
        step = (self._epoch - 1) * batches + batch
        if step <= self._last_step or batches <= 0:
            return []
        total = None if self._epochs is None else self._epochs * batches
        losses = {bool(v): number(x) for v, x in self._LOSS.findall(m[5])}
        t_s = None
        if batch == batches:
            epoch_s = self._epoch_seconds(m, batches)
            if epoch_s is None:
                # The bar's last redraw before the epoch's closing line (``ETA: 0s``; Keras
                # 3's ``0s 2s/step``): the closing line, after the callbacks' messages and
                # the validation, carries the epoch's time and repeats this step.
                return []
            self._clock_s += epoch_s
            t_s = self._clock_s
        self._last_step = step
        out = [Progress(step, t_s, "train", losses.get(False), False, total, self._launch)]
        if True in losses and t_s is not None:
            out.append(Progress(step, t_s, "train", losses[True], True, total, self._launch))
        return out

    @staticmethod
    def _epoch_seconds(m: re.Match[str], batches: int) -> float | None:
        """The epoch's seconds on its closing line; ``None`` on a redraw of the full bar.

        A closing line's seconds are about its batches times the per-step time beside
        them (``46s 2s/step`` for 23 batches); a redraw shows what is left (``0s``).
        """
        if m[3] is None:
            return None
        unit_s = 0.001 if m[4] == "ms" else 1.0
        epoch_s = float(m[3]) * unit_s
        per_step = Keras._PER_STEP.match(m.string, m.end(4))
        step_s = None if per_step is None else number(per_step[1])
        if per_step is not None and step_s is not None:
            step_s *= 0.001 if per_step[2] == "ms" else 1.0
            if epoch_s + unit_s < 0.5 * batches * step_s:
                return None
        return epoch_s

    def _epoch_summary(self, m: re.Match[str]) -> list[Progress]:
        """An epoch's one line (``verbose=2``): its end, timed by the seconds it took."""
        assert self._epoch is not None
        batches = int(m[2]) if m[2] else 1
        step = self._epoch * batches
        if step <= self._last_step:
            return []
        self._last_step = step
        self._clock_s += float(m[3]) / (1000 if m[4] == "ms" else 1)
        total = None if self._epochs is None else self._epochs * batches
        losses = {bool(v): number(x) for v, x in self._LOSS.findall(m[5])}
        t_s = self._clock_s
        out = [Progress(step, t_s, "train", losses.get(False), False, total, self._launch)]
        if True in losses:
            out.append(Progress(step, t_s, "train", losses[True], True, total, self._launch))
        return out


class Ultralytics(Format):
    """``  3/50   8.4G   1.07   3.60   0.97   53   640: 30% ━━━╸──── 23/75 1.5s/it 43.0s<1:16``.

    Epoch e of E, batch i of N: the step is (e - 1) x N + i and the total E x N. The loss
    is the sum of the loss columns; the clock adds each epoch's bar time (it restarts).
    The older tqdm bar (``640: 30%|███ | 23/75 [00:43<01:16, 1.5it/s]``) reads the same.
    YOLOv5 and YOLOv7 count epochs from 0 to the last (``0/299``): a first epoch 0 makes
    the step e x N + i and the total (E + 1) x N; where the last loss column is the sum
    of the others (YOLOv7's ``total``), it is the loss.
    """

    name = "ultralytics"
    _BAR = re.compile(
        r"\s{0,16}(\d{1,6})/(\d{1,6})\s{1,16}(?:[\d.]{1,8}G\s{1,16})?((?:"
        + NUM
        + r"\s{1,16}){1,8})"
        r"\d{1,7}\s{1,16}\d{1,5}:\s{0,4}\d{1,3}%\s{0,4}\|?[^\d|]{0,200}\|?\s{0,4}(\d{1,9})/(\d{1,9})"
        r"\s{0,4}\[?(?:[\d.]{1,10}(?:s/it|it/s)\s{1,4})?([\d:.]{1,12}s?)?"
    )

    def __init__(self) -> None:
        self._epoch: int | None = None
        self._elapsed_s = 0.0
        self._offset_s = 0.0
        self._last_step = -1
        self._launch = 0
        self._first_epoch: int | None = None  # 0 where epochs count from 0 (YOLOv5, v7)

    def rows(self, line: str) -> list[Progress]:
        if "/" not in line[:40] or "%" not in line:
            return []
        m = self._BAR.match(line)
        if m is None:
            return []
        epoch, epochs, batch, batches = int(m[1]), int(m[2]), int(m[4]), int(m[5])
        if self._first_epoch is None:
            self._first_epoch = 0 if epoch == 0 else 1
        base = self._first_epoch
        if epoch != self._epoch:
            if self._epoch is not None and epoch < self._epoch:
                self._launch += 1  # a new training run appended to the same log
                self._offset_s, self._last_step = 0.0, -1
            elif self._epoch is not None:
                self._offset_s += self._elapsed_s
            self._epoch, self._elapsed_s = epoch, 0.0
        elapsed = _seconds(m[6]) if m[6] else None
        if elapsed is not None:
            self._elapsed_s = elapsed
        step = (epoch - base) * batches + batch
        if step <= self._last_step:
            return []
        self._last_step = step
        columns = [number(x) for x in m[3].split()]
        # The last column before Instances is the last loss; GPU memory was matched apart.
        losses = [x for x in columns if x is not None]
        loss = sum(losses) if losses else None
        if len(losses) >= 3 and math.isclose(losses[-1], sum(losses[:-1]), abs_tol=2e-4):
            loss = losses[-1]  # a total column after its parts
        t_s = self._offset_s + self._elapsed_s
        total = (epochs + 1 - base) * batches
        return [Progress(step, t_s, "train", loss, False, total, self._launch)]


class HFDicts(Format):
    """``{'loss': 2.28, 'learning_rate': 2.5e-06, 'epoch': 0.29}`` with no bar beside it.

    The step is the dict's own (``global_step/max_steps``, ``step``), else the epoch x
    optimizer steps per epoch (``Total optimization steps`` / ``Num Epochs``), else the
    count of such lines x ``logging_steps``. ``eval_loss`` dicts are eval rows.
    """

    name = "hf-dict"
    _ITEM = re.compile(r"['\"]([\w/().\- ]{1,60})['\"]: ['\"]?(" + NUM + r")(?:/(\d{1,12}))?['\"]?")
    _TOTAL = re.compile(r"Total optimization steps = ([\d,]{1,15})")
    _EPOCHS = re.compile(r"Num Epochs = ([\d,]{1,12})")
    _LOGGING = re.compile(r"logging_steps['\"]?\s{0,3}[:=]\s{0,3}(\d{1,9})")
    _MAX_STEPS = re.compile(r"max_steps['\"]?\s{0,3}[:=]\s{0,3}(\d{1,12})\b")

    def __init__(self) -> None:
        self._wall = WallClock()
        self._total: int | None = None
        self._epochs: int | None = None
        self._logging_steps = 1
        self._count = 0
        self._step = 0
        self._launch = 0

    def rows(self, line: str) -> list[Progress]:
        start = line.find("{'")  # a Python dict; JSON records (fairseq) are the generic's
        if start < 0 and RELAUNCH in line and self._count:
            self._launch += 1
            self._count = self._step = 0
        if start < 0:
            self._settings(line)
            return []
        items: dict[str, tuple[float | None, str | None]] = {
            key: (number(value), of) for key, value, of in self._ITEM.findall(line, start)
        }
        trainer = "epoch" in items or "learning_rate" in items or "grad_norm" in items
        if "loss" in items and trainer and "train_runtime" not in items:
            step = self._train_step(items)
            if step is None or step == self._step:
                return []
            if step < self._step:
                self._launch += 1  # trainer.train() again, in this process or another
            self._step = step
            loss = items["loss"][0]
            return [Progress(step, self._t_s(line), "wall", loss, False, self._total, self._launch)]
        if "eval_loss" in items and self._count:
            loss = items["eval_loss"][0]
            t_s = self._t_s(line)
            return [Progress(self._step, t_s, "wall", loss, True, self._total, self._launch)]
        return []

    def _settings(self, line: str) -> None:
        if "=" not in line and ":" not in line:
            return
        for pattern, name in (
            (self._TOTAL, "_total"),
            (self._EPOCHS, "_epochs"),
            (self._LOGGING, "_logging_steps"),
            (self._MAX_STEPS, "_total"),
        ):
            m = pattern.search(line)
            if m is not None and int(m[1].replace(",", "")) > 0:
                setattr(self, name, int(m[1].replace(",", "")))

    def _train_step(self, items: dict[str, tuple[float | None, str | None]]) -> int | None:
        self._count += 1
        for key in ("global_step/max_steps", "global_step", "step"):
            if key in items and items[key][0] is not None:
                value, of = items[key]
                if of:
                    self._total = int(of)
                return int(value or 0)
        epoch = items.get("epoch", (None, None))[0]
        if epoch is not None and self._total and self._epochs:
            return round(epoch * self._total / self._epochs)
        return self._count * self._logging_steps

    def _t_s(self, line: str) -> float | None:
        stamp = iso_stamp_us(line, anywhere=True)
        return None if stamp is None else self._wall.since_origin(stamp)


class SB3Tables(Format):
    """stable-baselines3's logger tables, one row per table that counts timesteps::

        -----------------------------------------
        | time/                   |             |
        |    fps                  | 773         |
        |    time_elapsed         | 5           |
        |    total_timesteps      | 4096        |
        | train/                  |             |
        |    loss                 | -0.016      |
        -----------------------------------------

    The step is ``total_timesteps`` (what ``learn(total_timesteps=…)`` counts, so a
    ``--target-steps`` is in the same unit), the clock ``time_elapsed``: whole seconds of
    wall time since ``learn()`` began. An ``EvalCallback`` table (``eval/mean_reward``)
    is an eval row. SB3 prints no total; fewer timesteps than before is another launch.
    """

    name = "sb3"
    _ROW = re.compile(r"\|\s{1,8}([a-z_][\w/]{0,60})\s*\|\s*(" + NUM + r")?\s*\|\s*$")
    _BORDER = re.compile(r"^-{10,}\s*$")

    def __init__(self) -> None:
        self._table: dict[str, float | None] = {}
        self._section = ""
        self._eval = False
        self._step = -1
        self._launch = 0

    def rows(self, line: str) -> list[Progress]:
        if line.startswith("|"):
            m = self._ROW.match(line)
            if m is not None:
                key = m[1]
                if key.endswith("/"):
                    self._section = key
                    self._eval = self._eval or key == "eval/"
                else:
                    self._table[self._section + key] = number(m[2]) if m[2] else None
            return []
        if self._BORDER.match(line) is None:
            return []
        table, is_eval = self._table, self._eval
        self._table, self._section, self._eval = {}, "", False
        step = table.get("time/total_timesteps")
        if step is None:
            return []
        if step < self._step:
            self._launch += 1  # learn() again with reset_num_timesteps, or another run
        self._step = int(step)
        elapsed_s = table.get("time/time_elapsed")
        # PPO, A2C and DQN log a loss; SAC and TD3 an actor's and a critic's
        loss = next(
            (table[k] for k in ("train/loss", "train/critic_loss") if table.get(k) is not None),
            None,
        )
        return [
            Progress(
                int(step),
                elapsed_s,
                "wall",
                loss,
                is_eval,
                None,
                self._launch,
                t_resolution_s=None if elapsed_s is None else 1.0,
            )
        ]


__all__ = ["RELAUNCH", "HFDicts", "Keras", "SB3Tables", "Ultralytics"]
