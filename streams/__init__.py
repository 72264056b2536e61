"""The stream engine: windows, watermark, sketches, aggregates and joins, free of frameworks.

It imports only ``schemas``; the runners (``runners.embedded``, ``runners.faust_worker``) drive
it and the stores persist what it emits, never the other way round.
"""
