"""The engine's internals: numpy, scipy and numba only, no public API.

The public modules (``quantize``, ``chunked``, ``sweep``, ``kmeans``, ``metrics``)
take their option parameters and docs from one list (``api``, ``_docs``), check
what the caller passed, build a :class:`~.options.QuantizeOptions` and hand on to
the steps here: image checks (``image``), the fit pipeline (``pipeline``:
histogram -> fit space (``fitspace``) -> k-means -> palette -> assignment
(``assignment``)), the sweep's table (``table``), the dask backend
(``dask_backend``, ``dask_histogram``, ``multiscale``), the quality figures (``quality``,
``ciede2000``) and the k-means (``kmeans``). Of the public modules only the
leaves (``colorspace``, ``gather``, ``histogram``, ``palette_io``, which import
nothing of the engine) are imported here, so the dependencies run one way:
public modules -> ``_engine`` -> leaves.
"""
