"""Rule pack data files (YAML); this package marker lets setuptools ship them as package data."""
