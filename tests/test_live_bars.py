"""Progress bars as a live run shows them: tqdm, the Hugging Face Trainer, Lightning's
TQDM and Rich bars. Lines are as the real frameworks print them (ANSI escapes included
where they draw them), cut to the parts that matter."""

from __future__ import annotations

from reporter.logparse import LogParser, Progress, Record, parse_lines

RICH_BAR = "\x1b[35m━━━━━━━━━━\x1b[0m\x1b[90m╺━━━━━━\x1b[0m"


def bar(desc: str, n: int, total: int, elapsed: str, rate: str = "2.00it/s", post: str = "") -> str:
    width = 10
    filled = "█" * (width * n // total)
    pct = 100 * n // total
    prefix = f"{desc}: " if desc else ""
    return f"{prefix}{pct:3d}%|{filled:<{width}}| {n}/{total} [{elapsed}<00:10, {rate}{post}]"


def rich(desc: str, n: int, total: int, elapsed: str = "0:00:01", loss: float | None = None) -> str:
    """A line of Lightning's RichProgressBar as the pty shows it."""
    metrics = f" \x1b[3mtrain_loss: {loss:.3f}\x1b[0m" if loss is not None else ""
    return (
        f"\r\x1b[2K{desc}  {RICH_BAR} {n}/{total} \x1b[2m{elapsed} • 0:00:02\x1b[0m "
        f"\x1b[2;4m42.50it/s\x1b[0m{metrics}"
    )


def train_rows(lines: list[str]) -> list[Progress]:
    records: list[Record] = list(parse_lines(lines))
    return [r for r in records if isinstance(r, Progress) and not r.is_eval]


def test_hf_loss_goes_with_the_bar_redrawn_after_it_not_a_stale_one() -> None:
    # tqdm showed step 8 last (it redraws at most every 0.1 s); the Trainer logged at 10,
    # and tqdm.write redraws the bar at 10 right after the dict.
    lines = [
        bar("", 0, 20, "00:00", "?it/s"),
        bar("", 8, 20, "00:01", "8.00it/s"),
        "{'loss': '1.5', 'grad_norm': '0.7', 'learning_rate': '1e-05', 'epoch': '0.5'}",
        bar("", 10, 20, "00:01", "8.00it/s"),
        bar("", 16, 20, "00:02", "8.00it/s"),
        "{'loss': '1.25', 'grad_norm': '0.7', 'learning_rate': '1e-05', 'epoch': '1.0'}",
    ]
    got = [(r.step, r.loss) for r in train_rows(lines)]
    assert got == [(0, None), (8, None), (10, 1.5), (16, None), (16, 1.25)]


def test_lightning_tqdm_bar_never_goes_back_at_an_epoch_boundary() -> None:
    # Lightning resets the bar before it renames it: "Epoch 0 ... 0/30" comes first.
    post = ", train_loss=0.650"
    lines = [
        "Training: |          | 0/? [00:00<?, ?it/s]",
        bar("Epoch 0", 0, 30, "00:00", "?it/s"),
        bar("Epoch 0", 29, 30, "00:00", "41.88it/s", post),
        bar("Epoch 0", 30, 30, "00:00", "41.94it/s", post),
        bar("Epoch 0", 0, 30, "00:00", "?it/s", post),
        bar("Epoch 1", 0, 30, "00:00", "?it/s", post),
        bar("Epoch 1", 1, 30, "00:00", "40.99it/s", post),
        bar("Epoch 1", 17, 30, "00:00", "40.99it/s", post),  # stopped by max_steps: kept
    ]
    parser = LogParser()
    got = [r.step for line in lines for r in parser.feed(line) if isinstance(r, Progress)]
    assert parser.format == "lightning"
    assert got == [0, 29, 30, 31, 47]


def test_lightning_rich_bar_gives_global_steps_and_the_runs_total() -> None:
    lines = [
        "\x1b[?25l" + rich("Epoch 0/2", 0, 30, "0:00:00"),
        rich("Epoch 0/2", 1, 30, loss=0.888),
        rich("Epoch 0/2", 30, 30, loss=0.5),
        rich("Validation DataLoader 0", 2, 2),
        rich("Epoch 1/2", 0, 30, "0:00:00", loss=0.5),
        rich("Epoch 1/2", 12, 30, loss=0.4),
    ]
    parser = LogParser()
    rows = [r for line in lines for r in parser.feed(line) if isinstance(r, Progress)]
    assert parser.format == "lightning"
    assert [(r.step, r.loss, r.is_eval) for r in rows] == [
        (0, None, False),
        (1, 0.888, False),
        (30, 0.5, False),
        (30, None, True),
        (42, 0.4, False),
    ]
    assert {r.total_steps for r in rows} == {90}  # "Epoch 0/2": epochs 0, 1 and 2


def test_lightning_with_stated_accumulation_counts_optimizer_steps() -> None:
    # 5 batches an epoch, accumulate 2: the optimizer steps after batches 2, 4 and 5.
    lines = (
        ["hparams: accumulate_grad_batches=2, lr=0.01"]
        + [rich("Epoch 0/1", n, 5) for n in range(6)]
        + [rich("Epoch 1/1", n, 5) for n in range(1, 6)]
    )
    steps = [r.step for r in train_rows(lines)]
    assert steps == sorted(set(steps)) == [0, 1, 2, 3, 4, 5, 6]
    assert {r.total_steps for r in train_rows(lines)} == {6}


def test_max_steps_run_with_no_epoch_count_has_no_total() -> None:
    lines = [rich("Epoch 0/-2", n, 50) for n in range(3)]  # Trainer(max_steps=…)
    assert {r.total_steps for r in train_rows(lines)} == {None}
