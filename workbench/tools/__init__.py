"""Tools for function-calling programs: JSON schemas as typed argument models."""
