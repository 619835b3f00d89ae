"""Reading pickles from datasets without running their code.

Datasets in this field ship pickles (VOCASET's ``templates.pkl``, ``raw_audio_fixed.pkl``,
``subj_seq_to_idx.pkl``; FLAME's ``FLAME_masks.pkl``; region dicts). A plain ``pickle.load`` runs whatever
the file asks for, so a poisoned dataset would run code under ``memorytalker data check``, ``train`` or
``evaluate``. :func:`load_pickle` allows only what such data files hold: the builtin containers and
scalars, ``collections.OrderedDict`` and numpy arrays, dtypes and scalars. Anything else is refused, with
the file and the refused global named, before it is called.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from memorytalker.errors import DatasetError

#: ``(module, name)`` pairs a data pickle may reference. numpy moved its internals from ``numpy.core``
#: to ``numpy._core`` in 2.0; pickles written by either carry one of the two names.
ALLOWED_GLOBALS = frozenset(
    {
        ("builtins", n)
        for n in (
            "dict",
            "list",
            "tuple",
            "set",
            "frozenset",
            "bytearray",
            "bytes",
            "str",
            "int",
            "float",
            "complex",
            "bool",
            "slice",
            "range",
        )  # fmt: skip
    }
    | {
        ("__builtin__", n)
        for n in (
            "dict",
            "list",
            "tuple",
            "set",
            "frozenset",
            "bytearray",
            "str",
            "int",
            "float",
            "complex",
            "bool",
            "unicode",
            "long",
        )
    }  # fmt: skip
    | {("collections", "OrderedDict"), ("_codecs", "encode")}
    | {
        (mod, name)
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    }
    | {("numpy", "ndarray"), ("numpy", "dtype")}
)


class UnsafePickleError(DatasetError):
    """A pickle asked for something a data file never needs (it may be malicious); nothing of it ran."""


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, fh: Any, where: str, encoding: str) -> None:
        super().__init__(fh, encoding=encoding)
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"refused to load {self.where}: it asks for {module}.{name}, which a data file never needs "
                "(only dicts, lists, numbers, strings and numpy arrays are allowed); the file may be "
                "malicious, nothing of it was run"
            )
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refused to load {self.where}: it uses persistent ids ({pid!r})")


def load_pickle(source: str | Path | bytes, encoding: str = "latin1", what: str | None = None) -> Any:
    """Unpickle a data file (path or bytes) allowing only containers, scalars and numpy arrays.

    ``encoding="latin1"`` reads Python 2 pickles (VOCASET, FLAME) with their byte strings intact.

    Raises:
        UnsafePickleError: the pickle references anything else (named).
        DatasetError: a missing, truncated or corrupt file (named).
    """
    if isinstance(source, (bytes, bytearray)):
        where, data = what or "pickle data", bytes(source)
    else:
        path = Path(source)
        where = what or str(path)
        if not path.is_file():
            raise DatasetError(f"file not found: {path}")
        data = path.read_bytes()
    try:
        return _DataUnpickler(io.BytesIO(data), where, encoding).load()
    except UnsafePickleError:
        raise
    except Exception as exc:
        raise DatasetError(f"cannot read {where} as a pickle: {type(exc).__name__}: {exc}") from None
