"""The package version: a leaf module, so the code generator can stamp it without importing the
package's public API (which imports the pipeline, which imports the code generator)."""

__version__ = "0.1.0"
