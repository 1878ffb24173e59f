"""How the public functions are built: option parameters written once, the plain
form made from the generator form.

Every public entry point takes the same quantisation options (``channel_axis``,
``color_space``, ..., ``n_init``). Their names, annotations and defaults are
those of :func:`_option_parameters`, and :func:`with_options` gives a function
written as ``f(image, n_colors, *, own=..., **options)`` the explicit
keyword-only signature that ``inspect.signature`` and ``help()`` show; calls are
bound against it, so a misspelt option is a TypeError naming the function, as
for any Python function (at the first ``next()`` for a generator function, which
stays one). :func:`plain_form` makes ``quantize`` from
``quantize_iter`` (run to its end), with the same signature and the result as
its return annotation. Both fill the docstring's ``%(name)s`` fields from
:mod:`._docs`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np

from ._docs import fill_doc
from .options import (
    DEFAULT_COLOR_SPACE,
    DEFAULT_INIT,
    DEFAULT_MAX_ITER,
    DEFAULT_RANDOM_STATE,
    DEFAULT_TOL,
    QuantizeOptions,
)
from .progress import drain

F = TypeVar("F", bound=Callable[..., Any])
_KW = inspect.Parameter.KEYWORD_ONLY


def _option_parameters(
    *,
    channel_axis: int | None = -1,
    color_space: str = DEFAULT_COLOR_SPACE,
    dither: bool = False,
    random_state: int | np.random.Generator | None = DEFAULT_RANDOM_STATE,
    max_pixels: int | None = None,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    alpha: bool = True,
    standardize: bool = False,
    weights: np.ndarray | None = None,
    fixed_colors: np.ndarray | None = None,
    init: str = DEFAULT_INIT,
    n_init: int = 1,
) -> None:
    """The options of a quantisation, in the order the signatures list them."""


OPTIONS: dict[str, inspect.Parameter] = dict(
    inspect.signature(_option_parameters).parameters
)


def checked_options(
    n_colors: int, options: dict[str, Any]
) -> tuple[QuantizeOptions, int | None]:
    """The checked options of `n_colors` among a :func:`with_options`
    function's `options`, and its ``channel_axis`` (which is the image's)."""
    options = dict(options)
    axis = options.pop("channel_axis")
    return QuantizeOptions(n_colors, **options), axis


def with_options(
    *, only: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> Callable[[F], F]:
    """Give the decorated function the option parameters as keyword-only ones.

    The function takes its own parameters and ``**options``; its signature
    shows its positional parameters, its own keyword-only ones, then the
    options (all of them, those in `only`, less those in `exclude`; an option
    the function declares itself keeps the function's annotation and default).
    It is called with every option bound (defaults filled in), so ``options``
    is complete.
    """
    unknown = (set(only or ()) | set(exclude)) - set(OPTIONS)
    if unknown:
        raise ValueError(f"no such options: {sorted(unknown)}")

    def decorate(func: F) -> F:
        own = inspect.signature(func)
        params = [p for p in own.parameters.values() if p.kind != p.VAR_KEYWORD]
        own_kw = {p.name: p for p in params if p.kind == _KW}
        names = [
            name
            for name in OPTIONS
            if name in own_kw
            or ((only is None or name in only) and name not in exclude)
        ]
        signature = own.replace(
            parameters=[p for p in params if p.kind != _KW]
            + [p for name, p in own_kw.items() if name not in OPTIONS]
            + [own_kw.get(name, OPTIONS[name]) for name in names]
        )

        def bind(args: tuple, kwargs: dict) -> inspect.BoundArguments:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{func.__name__}() {error}") from None
            bound.apply_defaults()
            return bound

        if inspect.isgeneratorfunction(func):
            # Still a generator function (as tools such as napari's
            # thread_worker check); the arguments are then bound at the first
            # next(), where the options are checked too.
            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                bound = bind(args, kwargs)
                return (yield from func(*bound.args, **bound.kwargs))

        else:

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                bound = bind(args, kwargs)
                return func(*bound.args, **bound.kwargs)

        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        # The options documented by the shared entries (for plain_form's docs).
        taken = tuple(name for name in names if name not in own_kw)
        wrapper.option_names = taken  # type: ignore[attr-defined]
        wrapper.__doc__ = fill_doc(func.__doc__, taken)
        return wrapper  # type: ignore[return-value]

    return decorate


def plain_form(
    generator_form: Callable[..., Any], *, progress: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make the decorated stub the plain form of `generator_form`.

    The stub carries only the docstring and the return annotation; the
    function returned takes `generator_form`'s parameters (plus a keyword-only
    ``progress`` callback if `progress`, called with every fraction), runs the
    generator to its end and returns its value.
    """
    options = getattr(generator_form, "option_names", ())

    def decorate(stub: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(generator_form)
        params = list(signature.parameters.values())
        if progress:
            annotation = "Callable[[float], Any] | None"
            params.append(
                inspect.Parameter("progress", _KW, default=None, annotation=annotation)
            )
        signature = signature.replace(
            parameters=params,
            return_annotation=inspect.signature(stub).return_annotation,
        )

        @functools.wraps(stub)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{stub.__name__}() {error}") from None
            callback = kwargs.pop("progress", None) if progress else None
            return drain(generator_form(*args, **kwargs), callback)

        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        wrapper.__doc__ = fill_doc(stub.__doc__, options)
        return wrapper

    return decorate
