"""`workbench gate`: a regression gate for CI — checks, JUnit/Markdown reports, the command."""
