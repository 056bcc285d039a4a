"""Federated learning simulation: FedAvg over Dirichlet label-skewed clients (``polymodal federated``).

:mod:`polymodal.federated.fedavg` holds the loop (it imports the API, so it is not imported here).
"""

from polymodal.federated.config import FederatedConfig
from polymodal.federated.partition import dirichlet_split, label_histogram

__all__ = ["FederatedConfig", "dirichlet_split", "label_histogram"]
