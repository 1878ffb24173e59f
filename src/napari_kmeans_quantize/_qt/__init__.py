"""The dock widget's parts, one concern per module (napari, magicgui and Qt live here).

``inputs``
    the input controls and what a run is asked to do;
``controls``
    the job buttons, the progress bar and the status line;
``jobs``
    the job runner: one thread worker at a time, with an explicit job state;
``readout``
    the palette table and the compression figures of the shown result, and the
    scroll area the results sit in;
``sweep_panel``
    Compare k's plot and table, and the k browser over the kept results;
``compare``
    the Compare k and Auto k jobs: starting a sweep, picking and keeping a k;
``save``
    which file holds a result, and writing it (in a worker).

:class:`napari_kmeans_quantize._widget.QuantizeWidget` puts them together.
"""
