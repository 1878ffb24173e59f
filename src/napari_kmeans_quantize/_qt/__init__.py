"""The dock widget's parts, one concern per module (napari, magicgui and Qt live here).

``inputs``
    the input controls and what a run is asked to do;
``jobs``
    the job runner: one thread worker at a time, with an explicit job state;
``readout``
    the palette table and the compression figures of the shown result;
``sweep_panel``
    Compare k's plot and table, and the k browser over the kept results;
``save``
    which file holds a result, and writing it (in a worker).

:class:`napari_kmeans_quantize._widget.QuantizeWidget` puts them together.
"""
