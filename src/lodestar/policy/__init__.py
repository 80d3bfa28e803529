"""Routing policies: one contract (``contracts``), plugin contracts and the engine that runs
them (``framework``, ``profile_policy``), a registry (``registry.default_registry``) and YAML
profiles (``profile_spec``, ``profiles/*.yaml``) that compose filters, weighted scorers and a
picker, one module per filter/scorer/picker (``filters``, ``scorers/``, ``pickers/``), the
shared index structures (``prefix_index``, ``chain_lru``, ``radix_tree``) and the router-side
fleet view every host keeps (``fleet``). Build a policy from a shipped profile::

    from lodestar.policy.profile_spec import build_policy, load_profile
    from lodestar.policy.registry import default_registry
    policy = build_policy(load_profile("llm-d"), default_registry(), seed=7)
"""
