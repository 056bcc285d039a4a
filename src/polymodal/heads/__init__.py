"""Heads: ``forward(h) -> logits``, ``loss(logits, target)``, ``metrics(logits, target)`` and
``describe(logits_row)`` (one prediction as JSON-able data).

Each head declares ``TARGET`` (``class``, ``multilabel`` or ``multitask``): the form of targets the data
pipeline builds for it (see :mod:`polymodal.data.targets`), and is built with the resulting ``target`` info.
"""
