"""The event contract: JSON Schema files (``json/``), their validator, and Snakepit's native shape.

Use :func:`schemas.decode.decode_body` for bytes off the wire and :func:`schemas.contract.validate`
for one already-parsed object; both say precisely why an event was rejected.
"""
