"""Self-supervised pretraining objectives, one registered objective per file (run by ``kind: pretrain``).

``mlm`` (masked language modelling), ``mae`` (masked patch / spectrogram modelling) and ``clip`` (contrastive
alignment of two inputs). Each objective is an ``nn.Module`` with the Trainable contract
(:mod:`polymodal.contracts`), holding the encoders under ``encoders.<input>`` exactly as
:class:`polymodal.model.MultimodalModel` does, so a downstream recipe's ``init_from`` copies them by name
(:mod:`polymodal.kinds.supervised.init_from`).
"""
