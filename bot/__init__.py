"""kimibot core: everything that is not platform-specific."""

__version__ = "0.1.0"
