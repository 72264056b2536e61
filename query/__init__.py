"""Queries over stored rollups: the metric catalogue (``catalog``) and the query engine
(``engine``: filter series, pick a resolution, merge rollups into points, compute stats).
Read by the API, the CLI's gate and exports; it imports ``store``, ``streams`` and ``schemas``."""
