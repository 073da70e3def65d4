"""Writing files so that nothing is ever half written: the one atomic write of the package.

    with atomic_write("run.npz") as f:         # checkpoint.py, data/tokenizer.py, data/shakespeare.py
        np.savez(f, **arrays)

The content goes to a temporary file in the target's folder, is flushed to disk, and is then
renamed over the target (``os.replace``, atomic on one file system): a crash or a kill at any
moment leaves the old file or the new one, never half of one.

Two details make it a good citizen:

- permissions: the temporary file is created with mode 0o666 minus the user's umask, as
  ``open`` would create the target (``tempfile.mkstemp`` would give 0o600, so a checkpoint
  would silently become private);
- no litter: the temporary file is named ``.<target name>.<pid>-<random>.tmp``. A failed
  write removes its own; a killed process cannot, so the next write to the same target
  removes those of processes that no longer run.

``check_writable(path)`` probes a path the same way before a long computation whose result
will be written there, so that a typo costs seconds, not a finished training run.
"""

import contextlib
import os
import secrets

_TMP_SUFFIX = ".tmp"


def _temporary_prefix(path):
    return f".{os.path.basename(path)}."


def _process_alive(pid):
    if os.name != "posix":  # no cheap, harmless liveness test elsewhere: keep the file
        return True
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_orphans(path):
    """Delete the temporary files a killed writer of ``path`` left behind; returns their names."""
    folder, prefix = os.path.dirname(os.path.abspath(path)), _temporary_prefix(path)
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(_TMP_SUFFIX)):
            continue
        pid = name[len(prefix):-len(_TMP_SUFFIX)].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
                removed.append(name)
    return removed


def _create_temporary(path):
    """(file descriptor, name) of a new temporary file beside ``path``, mode 0o666 minus the umask."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f"{_temporary_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}{_TMP_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.open(tmp, flags, 0o666), tmp


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Open a temporary file for writing (``mode`` "wb" or "w"; ``open_kwargs`` such as
    encoding go to ``open``); when the block ends without error, rename it over ``path``.

    The folder is created if needed. On an error the temporary file is removed, the target is
    untouched, and the error propagates.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode: expected 'wb' or 'w', received {mode!r}")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    remove_orphans(path)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_writable(path, name="path"):
    """Refuse, with one line naming ``name``, a path ``atomic_write`` could not write.

    Creates the folder if needed and writes and removes a probe file in it: the only test
    that is true for every file system and user (``os.access`` is not, for root or /proc).
    Returns ``path``.
    """
    where = os.fspath(path)
    if os.path.isdir(where):
        raise ValueError(f"{name}: expected a file path, received {where!r}, which is a folder")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(where)), exist_ok=True)
        fd, tmp = _create_temporary(where)
        os.close(fd)
        os.unlink(tmp)
    except OSError as error:
        blocker = _existing_ancestor(where)
        why = f"{blocker} is a file, not a folder" if not os.path.isdir(blocker) else error.strerror or error
        raise ValueError(f"{name}: expected a path that can be written, received {where!r} ({why})") from None
    return path


def _existing_ancestor(path):
    """The longest prefix of ``path`` (absolute) that exists."""
    current = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current
