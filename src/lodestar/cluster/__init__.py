"""Fleet descriptions: which instances (hardware × model × TP) a cluster has. Shared by the
simulator, the emulator and the benchmarks; presets ship as YAML."""
