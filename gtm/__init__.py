"""gtm: global traffic manager."""
