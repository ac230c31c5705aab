"""Loading Great Expectations off the critical path, and three costs of its validations that the gate avoids.

`preload()` imports the package in a background thread (~1.5 CPU-seconds) while silver runs in the engine. Its
imports of `scipy.stats` and `altair` (~0.7 and ~0.2 CPU-second; only the KL-divergence expectation, which no contract
uses, calls them) are deferred to their first use (defer_unused_imports). The hourly run keeps both cores busy
(~88% over the run), so what the import costs is time taken from the engine. `tuned()` waits for that import, then,
while the gate validates:
  - skips GX's per-batch MD5 fingerprint of the whole DataFrame (great_expectations#4774): it is only a batch
    marker, and was most of a validation's time on large frames;
  - reads an expectation's configuration once per kwargs lookup instead of once per key
    (`Expectation._get_domain_kwargs`, `_get_success_kwargs`, `_get_runtime_kwargs`, `_get_success_kwarg`). Each
    `Expectation.configuration` access serializes the whole pydantic model into a new ExpectationConfiguration,
    and GX 1.x reads it per key of every lookup: 28k times for the gold gate's 203 expectations, about half of its
    Great Expectations time. The replacements return the same values (tests/test_quality.py compares them with
    GX's own methods on every generated expectation); `configuration` itself is not cached, so whatever GX does
    with the object it returns is unchanged;
  - makes the id of a metric's kwargs (`IDDict.to_id`, 21k calls in the gold gate) without GX's general JSON
    conversion when the kwargs hold only plain JSON values (str, int, float, bool, None, and dicts and lists of
    them), which it runs through a dozen isinstance and numpy dtype checks per value; the id is the same MD5 of
    the same JSON text, and any other value goes to GX's own method.
All three are undone when the last open block ends. The gate is the only user of Great Expectations here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)
_preloading: list[threading.Thread] = []


def quiet_logs() -> None:
    gx_log = logging.getLogger("great_expectations")
    if gx_log.level == logging.NOTSET:  # GX logs hundreds of INFO lines at import; keep task logs readable
        gx_log.setLevel(logging.WARNING)


def await_preload() -> None:
    """Wait for preload()'s import to end before importing any part of the package here. Python's per-module import
    locks do not make a submodule import wait for its package's: while the preload is halfway through
    `great_expectations`, importing `great_expectations.execution_engine...` can meet a partially initialized module
    (ImportError 'most likely due to a circular import'; seen when a small run's gate began ~2 s after silver
    started)."""
    while _preloading:
        _preloading.pop().join()


# Modules Great Expectations imports at its own import but that only expectations no contract uses call (in function
# bodies): loaded at their first use instead (importlib.util.LazyLoader). Python 3.11's lazy module is not safe to
# load from two threads at once; nothing here uses it, and the deferral itself is made under a lock. Only on Python
# 3.11 (pyproject's requires-python): later versions' lazy module loads only when its class is exactly its own, so
# the subclass below would not load at all there; elsewhere nothing is deferred.
DEFERRED_IMPORTS = ("scipy.stats", "altair")
_deferring = threading.Lock()


def _lazy_module_class() -> type:
    """importlib's lazy module, except that reading `__spec__` does not load it: `import altair` finds the module in
    sys.modules and reads its __spec__ to see whether it is still being initialized, which would load it at once."""
    import importlib.util
    import types

    class LazyModule(importlib.util._LazyModule):  # type: ignore[name-defined,misc]  # noqa: SLF001
        def __getattribute__(self, attr: str) -> Any:
            if attr == "__spec__":
                return types.ModuleType.__getattribute__(self, attr)
            return super().__getattribute__(attr)

    return LazyModule


def defer_unused_imports() -> list[str]:
    """Make each of DEFERRED_IMPORTS that is installed and not imported yet a lazy module: importing it (as Great
    Expectations' `from scipy import stats` and `import altair` do) costs nothing, and its first attribute access
    loads it for real. Returns the modules deferred. The module is also set on its package, so that `from package
    import name` finds it there without scipy's lazy `__getattr__`."""
    import importlib.util
    import sys

    deferred: list[str] = []
    if sys.version_info[:2] != (3, 11):
        return deferred
    with _deferring:
        for name in DEFERRED_IMPORTS:
            if name in sys.modules:
                continue
            try:
                spec = importlib.util.find_spec(name)
            except ImportError:
                continue
            if spec is None or spec.loader is None:
                continue
            loader = importlib.util.LazyLoader(spec.loader)
            spec.loader = loader
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            module.__class__ = LAZY_MODULE  # before any other thread can find it
            sys.modules[name] = module
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)
            deferred.append(name)
    return deferred


LAZY_MODULE = _lazy_module_class()


def preload() -> threading.Thread:
    """Import Great Expectations in a background thread. Imported while silver runs (the main thread then waits on
    the engine, not on the GIL), the gate after silver does not pay it. The gate waits for it to end
    (await_preload, through tuned()) before its own imports."""
    quiet_logs()

    def load() -> None:
        try:
            defer_unused_imports()
            import great_expectations  # noqa: F401
        except Exception:  # noqa: BLE001 - the gate's own import reports the problem
            log.debug("preloading great_expectations failed", exc_info=True)

    thread = threading.Thread(target=load, name="preload-great_expectations", daemon=True)
    _preloading.append(thread)
    thread.start()
    return thread


# --- the kwargs lookups, each reading the configuration once ------------------------------------------------------


def _defaults(expectation: Any, kwargs: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: kwargs.get(key, expectation._get_default_value(key)) for key in keys}


def _success_from(expectation: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    success = _defaults(expectation, kwargs, expectation.success_keys)
    success.update(_defaults(expectation, kwargs, expectation.domain_keys))
    return success


def _get_domain_kwargs(self: Any) -> dict[str, Any]:
    return _defaults(self, self.configuration.kwargs, self.domain_keys)


def _get_success_kwargs(self: Any) -> dict[str, Any]:
    return _success_from(self, self.configuration.kwargs)


def _lookups(original_success_kwarg: Any) -> dict[str, Any]:
    """The replacement methods; `original_success_kwarg` is GX's own."""
    from great_expectations.expectations import expectation as module

    def absent(self: Any, key: str, default: Any = None) -> Any:
        """GX's answer for a key the configuration lacks: the field's default (`default` for a required field); GX's
        own method, which warns, for a key that is no field."""
        field = self.__fields__.get(key)
        if field is None:
            return original_success_kwarg(self, key, default)
        return default if field.required else field.default

    def _get_success_kwarg(self: Any, key: str, default: Any = None) -> Any:
        kwargs = self.configuration.kwargs
        return kwargs[key] if key in kwargs else absent(self, key, default)

    def _get_runtime_kwargs(self: Any, runtime_configuration: dict[str, Any] | None = None) -> dict[str, Any]:
        runtime_configuration = runtime_configuration or {}
        kwargs = self.configuration.kwargs
        success = _success_from(self, kwargs)
        runtime = {  # the default is evaluated for every key, as GX's dict.get(key, self._get_success_kwarg(key))
            key: runtime_configuration.get(key, kwargs[key] if key in kwargs else absent(self, key))
            for key in self.runtime_keys
        }
        runtime.update(success)
        runtime["result_format"] = module.parse_result_format(runtime["result_format"])
        return runtime

    return {
        "_get_domain_kwargs": _get_domain_kwargs,
        "_get_success_kwargs": _get_success_kwargs,
        "_get_success_kwarg": _get_success_kwarg,
        "_get_runtime_kwargs": _get_runtime_kwargs,
    }


# --- metric ids without the general JSON conversion for plain values ------------------------------------------------


class _NotPlain(Exception):
    """A value _plain leaves to GX's own conversion."""


def _plain(value: Any) -> Any:
    """`value` as great_expectations.util.convert_to_json_serializable converts it, for plain JSON values (exact
    types only: a subclass, e.g. an IntEnum or GX's dict types, may convert otherwise); _NotPlain for anything
    else."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is float:
        return None if value != value else value  # NaN -> None, as GX  # noqa: PLR0124
    if kind is dict:
        return {str(k): _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
    raise _NotPlain


def _to_id(original: Any) -> Any:
    """IDDict.to_id with _plain's conversion, GX's `original` for kwargs that are not plain JSON."""
    import hashlib
    import json

    def to_id(self: Any, id_keys: Any = None, id_ignore_keys: Any = None) -> Any:
        keys = set(self.keys() if id_keys is None else id_keys) - set(
            self._id_ignore_keys if id_ignore_keys is None else id_ignore_keys)
        if len(keys) < 2:  # '' / 'key=value': no conversion in GX's either
            return original(self, id_keys, id_ignore_keys)
        try:
            converted = _plain({k: self[k] for k in keys})
        except _NotPlain:
            return original(self, id_keys, id_ignore_keys)
        return hashlib.md5(json.dumps(converted, sort_keys=True).encode("utf-8"), usedforsecurity=False).hexdigest()

    return to_id


# --- the block that applies them ----------------------------------------------------------------------------------

_LOOKUPS = ("_get_domain_kwargs", "_get_success_kwargs", "_get_success_kwarg", "_get_runtime_kwargs")
_tuning = threading.Lock()
_users = 0  # tuned() blocks open in this process: the first applies the changes, the last restores GX's own
_saved: dict[str, Any] = {}


def _apply() -> None:
    from great_expectations.core.id_dict import IDDict
    from great_expectations.execution_engine import pandas_execution_engine as engine
    from great_expectations.expectations.expectation import Expectation

    _saved.update({"HASH_THRESHOLD": engine.HASH_THRESHOLD, "to_id": IDDict.__dict__["to_id"],
                   **{name: Expectation.__dict__[name] for name in _LOOKUPS}})
    engine.HASH_THRESHOLD = 0
    for name, method in _lookups(_saved["_get_success_kwarg"]).items():
        setattr(Expectation, name, method)
    IDDict.to_id = _to_id(_saved["to_id"])  # type: ignore[method-assign]


def _restore() -> None:
    from great_expectations.core.id_dict import IDDict
    from great_expectations.execution_engine import pandas_execution_engine as engine
    from great_expectations.expectations.expectation import Expectation

    engine.HASH_THRESHOLD = _saved.pop("HASH_THRESHOLD")
    IDDict.to_id = _saved.pop("to_id")  # type: ignore[method-assign]
    for name in _LOOKUPS:
        setattr(Expectation, name, _saved.pop(name))


@contextmanager
def tuned() -> Iterator[None]:
    """Great Expectations imported (after the preload), without the batch fingerprint, with the lookups reading the
    configuration once and plain metric ids, while the block runs. Blocks may overlap (threads): GX's own behaviour
    is back when the last one ends."""
    global _users
    await_preload()
    defer_unused_imports()  # when nothing preloaded the package (a gate on its own); no-op once imported
    quiet_logs()
    with _tuning:
        if _users == 0:
            _apply()
        _users += 1
    try:
        yield
    finally:
        with _tuning:
            _users -= 1
            if _users == 0:
                _restore()
