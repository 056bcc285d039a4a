"""Run kinds: one folder per kind of run, each registered in :data:`polymodal.registry.KINDS`.

=============  ==============================================================================================
supervised     inputs → encoders → fusion → head, trained on labelled rows (the default ``kind``)
federated      the same model trained by FedAvg rounds over simulated clients
pretrain       encoders trained by a self-supervised objective (MLM, MAE, CLIP), for ``init_from``
lm             a GPT language model trained on a text corpus
gan            a conditional WGAN-GP image generator
assistant      questions about images, sounds or series answered by a GPT that reads them (and chat)
=============  ==============================================================================================

Adding a kind is adding a folder here whose ``__init__`` registers a :class:`~polymodal.kinds.base.RunKind`
subclass with its recipe dataclass: ``KINDS.register("mykind", MyRecipe)(MyKind)``. The spine
(:mod:`polymodal.kinds.base`) reads its recipes, the one Trainer trains it with the kind's step strategy,
the CLI and the report find it by the ``kind`` its runs record, and tests/test_contracts.py trains, loads,
evaluates and reports the kind's own example recipe.
"""
