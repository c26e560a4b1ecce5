"""Training-step benchmarks of minidl against PyTorch: ``python -m benchmarks``.

``workloads`` defines the five models (W1-W5) once for both engines, ``timing`` measures
steps and memory, ``__main__`` runs them and writes the table (see RESULTS.md).
"""
