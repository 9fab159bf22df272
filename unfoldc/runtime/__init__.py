"""Code that generated modules carry: written here as ordinary Python, copied verbatim."""
