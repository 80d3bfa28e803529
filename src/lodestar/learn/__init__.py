"""The Lodestar policy: features the router can observe, an online-trained ensemble reward
predictor with uncertainty, exploration with logged propensities, cold-start fallback and
drift monitoring. Shared by the live router, the trainer service and the simulator.

Modules: ``features`` (per-candidate features and self-measured instance statistics),
``model`` (the torch ensemble MLP), ``blob`` (versioned, self-describing model state),
``buffer`` (bounded recency-weighted replay), ``trainer`` (incremental updates),
``predictor`` (fast numpy inference from a blob), ``objective`` (runtime-weighted cost),
``explore`` (ε-greedy + Thompson with exact propensities), ``policy`` (the plugin),
``sim_trainer`` (the trainer's cadence and publish delay inside the simulator),
``plugins`` (registration into a policy registry).
"""
