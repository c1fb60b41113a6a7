"""Candidate-species clustering methods, one module each (see ``discovery.clustering``).

A module here is a method: it exposes ``Clusterer``, a
:class:`~biodiscover.discovery.clustering.SpeciesClusterer` subclass, and is chosen
by ``ClusteringConfig(method="<module name>")``. Nothing else registers it.
"""
