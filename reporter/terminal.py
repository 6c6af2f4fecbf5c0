"""The child's terminal: pseudo-terminals for its output, or pipes where there are none.

Under a pty a training program behaves as it does for a person: Python line-buffers
stdout, and tqdm and Rich draw their bars (Rich draws nothing into a pipe). Output
processing is switched off on the pty, so the bytes the child writes are the bytes we
read and pass on: no LF becomes CRLF. The window is the size of the user's terminal, or
`DEFAULT_COLUMNS` wide where there is none, so bars are not cut short.

Where stdout and stderr of ``probecast run`` go to the same place (a terminal, or one
log file), the child gets one pty for both, as a terminal gives it: the order between
the two streams is kept, which tells which bar position a loss line belongs to. Where
they go to different places, each gets its own pty and stays apart.

No pty (no ``/dev/ptmx``, all in use, not POSIX) raises `PtyUnavailable`; the runner then
falls back to pipes and says so in one line.
"""

from __future__ import annotations

import os
import struct
from contextlib import suppress
from dataclasses import dataclass

DEFAULT_COLUMNS = 120
DEFAULT_ROWS = 40


class PtyUnavailable(Exception):
    """No pseudo-terminal could be opened; the message says why, in a few words."""


@dataclass(frozen=True)
class Pty:
    """One pseudo-terminal: we read ``master``; the child writes to ``slave``."""

    master: int
    slave: int


def window_size(fds: tuple[int | None, ...]) -> tuple[int, int]:
    """(columns, rows) of the first of ``fds`` that is a terminal, else the default."""
    for fd in fds:
        if fd is None:
            continue
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        if size.columns > 0 and size.lines > 0:
            return size.columns, size.lines
    return DEFAULT_COLUMNS, DEFAULT_ROWS


def same_destination(a: int | None, b: int | None) -> bool:
    """Whether two file descriptors write to the same file, pipe or terminal."""
    if a is None or b is None:
        return False
    try:
        return os.path.samestat(os.fstat(a), os.fstat(b))
    except OSError:
        return False


def open_pty(columns: int, rows: int) -> Pty:
    """A pty whose output passes unchanged, sized ``columns`` × ``rows``."""
    try:
        import termios  # POSIX only

        master, slave = os.openpty()
    except (ImportError, AttributeError):
        raise PtyUnavailable("this system has no pseudo-terminals") from None
    except OSError as exc:
        raise PtyUnavailable(exc.strerror or str(exc)) from None
    try:
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST  # oflag: no LF -> CRLF, bytes pass as written
        attrs[3] &= ~(termios.ECHO | termios.ICANON)  # lflag: nobody types here
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        resize(Pty(master, slave), columns, rows)
    except (OSError, termios.error) as exc:
        close_fds(master, slave)
        raise PtyUnavailable(str(exc)) from None
    return Pty(master, slave)


def resize(pty: Pty, columns: int, rows: int) -> None:
    """Set the window size the child reads with ``os.get_terminal_size``."""
    import fcntl
    import termios

    fcntl.ioctl(pty.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def close_fds(*fds: int | None) -> None:
    for fd in fds:
        if fd is None:
            continue
        with suppress(OSError):
            os.close(fd)


__all__ = [
    "DEFAULT_COLUMNS",
    "DEFAULT_ROWS",
    "Pty",
    "PtyUnavailable",
    "close_fds",
    "open_pty",
    "resize",
    "same_destination",
    "window_size",
]
