"""The SPARC sandbox: an offline HTTP emulation of Pennsieve Discover, zipit and S3-style file storage."""
