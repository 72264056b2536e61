"""The stream engine: framework-free windows, sketches and aggregates, plus thin runners.

``aggregate``, ``series``, ``windows`` and ``engine`` import no framework or driver; the runners
(``embedded``, ``faust_app``) depend on them, never the other way round.
"""
