"""Training runs: configuration (config, torch-free), the loop (loop), validation, schedule
and distributed set-up. Import from the submodules: the package itself loads nothing, so a
service can build and check a TrainConfig without loading torch."""
