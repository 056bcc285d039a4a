"""``kind: federated``: FedAvg simulation over Dirichlet label-skewed clients (see :mod:`.kind`)."""

from polymodal.kinds.federated.kind import FederatedKind
from polymodal.kinds.federated.partition import dirichlet_split, label_histogram
from polymodal.kinds.federated.recipe import FederatedConfig, FederatedRecipe
from polymodal.registry import KINDS

KINDS.register("federated", FederatedRecipe)(FederatedKind)

__all__ = ["FederatedConfig", "FederatedKind", "FederatedRecipe", "dirichlet_split", "label_histogram"]
