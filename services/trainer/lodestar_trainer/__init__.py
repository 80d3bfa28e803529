"""The trainer service: joins route decisions with request outcomes, updates the reward
predictor incrementally, and publishes versioned models to the compacted model topic."""
