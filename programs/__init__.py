"""DSPy programs, one task per module, each registered with `@workbench.registry.program`."""
