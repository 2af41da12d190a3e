"""The digital twin's physics: pure, deterministic code (numpy, stim, qiskit's parser
and transpiler) driven by an explicit `np.random.Generator`; no I/O. Adapters feed it
configuration and controller events and publish what it produces."""
